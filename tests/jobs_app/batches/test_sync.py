"""Sync: one list call per connection per tick, finished batches not polled, errors back off,
stale replies ignored, signed webhooks sync a batch at once and replays change nothing."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from jobs_app.batches import sync
from jobs_app.batches.models import Batch, BatchGroup, BatchStatus, RequestStatus, ResultsState
from jobs_app.batches.services import batch_group_mark_submitting, batch_group_submit
from project.providers.client import client_for
from project.providers.models import ProviderConnection
from project.teams.models import Team
from project.webhooks.models import WebhookDelivery
from sandbox.webhooks import sign
from tests.factories import batch_chat_line, make_batch_group, make_connection
from tests.jobs_app.batches.conftest import WEBHOOK_SECRET, sandbox_connection, sync_until_terminal, wait_until


def submitted_group(team: Team, connection: ProviderConnection, n: int = 3, **kwargs: Any) -> BatchGroup:
    group = make_batch_group(team, connection, lines=[batch_chat_line(f"r{i}", f"echo: {i}") for i in range(n)], **kwargs)
    assert isinstance(group, BatchGroup)
    batch_group_mark_submitting(group=group, actor=None)
    batch_group_submit(group=group, actor=None)
    return group


@pytest.fixture
def provider_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the provider calls the sync makes (it still makes them, over real HTTP)."""
    calls: list[str] = []
    real = sync.provider_call

    def counting(connection: ProviderConnection, call: Callable[[Any], Any], *args: Any) -> Any:
        calls.append(connection.base_url)
        return real(connection, call, *args)

    monkeypatch.setattr(sync, "provider_call", counting)
    return calls


@pytest.mark.django_db
def test_one_tick_makes_one_list_call_per_connection_and_none_for_finished_batches(
        team: Team, slow_sandbox_url: str, settings: Any, provider_calls: list[str]) -> None:
    settings.BATCH_MAX_REQUESTS = 2
    first = sandbox_connection(team, slow_sandbox_url)
    second = sandbox_connection(team, slow_sandbox_url)
    groups = [submitted_group(team, first, n=5), submitted_group(team, first, n=1), submitted_group(team, second, n=2)]
    assert Batch.objects.filter(connection=first).exclude(remote_id="").count() == 4
    provider_calls.clear()
    assert sync.batches_sync_connection(connection=first) == 1
    assert sync.batches_sync_connection(connection=second) == 1
    assert len(provider_calls) == 2
    assert Batch.objects.filter(last_synced_at__isnull=False).count() == 5  # every active batch updated by those calls
    for group in groups:
        sync_until_terminal(group)
    provider_calls.clear()
    assert sync.batches_sync_connection(connection=first) == 0
    assert provider_calls == []


@pytest.mark.django_db
def test_sync_errors_back_off(team: Team, provider_calls: list[str]) -> None:
    dead = make_connection(team, base_url="http://127.0.0.1:9/v1")
    group = make_batch_group(team, dead)
    assert isinstance(group, BatchGroup)
    Batch.objects.filter(group=group).update(remote_id="batch_unreachable", status=BatchStatus.IN_PROGRESS)
    assert sync.batches_sync_connection(connection=dead) == 1
    part = group.parts.get()
    assert part.sync_failures == 1 and "reach" in part.sync_error and part.next_sync_at is not None
    assert sync.batches_sync_connection(connection=dead) == 0  # not due again until the back-off passes
    assert sync.connections_with_active_batches() == [dead.pk]


@pytest.mark.django_db
def test_a_stale_reply_never_moves_a_batch_back(team: Team, sandbox_conn: ProviderConnection) -> None:
    group = submitted_group(team, sandbox_conn)
    sync_until_terminal(group)
    part = group.parts.get()
    remote = client_for(sandbox_conn).batches.retrieve(part.remote_id)
    assert part.status == BatchStatus.COMPLETED
    assert sync.batch_apply_remote(batch=part, remote=remote) is False  # the same state again changes nothing
    stale = remote.model_copy(update={"status": "in_progress"})
    assert sync.batch_apply_remote(batch=part, remote=stale) is False
    part.refresh_from_db()
    assert part.status == BatchStatus.COMPLETED and part.results_state == ResultsState.QUEUED


def signed_post(client: Client, connection: ProviderConnection, event: dict[str, Any], *, webhook_id: str | None = None,
                secret: str = WEBHOOK_SECRET) -> Any:
    body = json.dumps(event)
    webhook_id = webhook_id or "wh_" + secrets.token_hex(8)
    timestamp = int(time.time())
    return client.post(reverse("webhook_receive", args=[connection.public_id]), data=body,
                       content_type="application/json", headers={
                           "webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                           "webhook-signature": sign(secret, webhook_id, timestamp, body)})


def event_for(batch: Batch, kind: str = "batch.completed") -> dict[str, Any]:
    return {"id": "evt_" + secrets.token_hex(8), "object": "event", "created_at": int(time.time()), "type": kind,
            "data": {"id": batch.remote_id}}


@pytest.mark.django_db
def test_a_webhook_with_a_bad_signature_is_rejected_and_a_replay_changes_nothing(
        team: Team, sandbox_conn: ProviderConnection, django_capture_on_commit_callbacks: Any) -> None:
    group = submitted_group(team, sandbox_conn)
    part = group.parts.get()
    client = Client()
    forged = signed_post(client, sandbox_conn, event_for(part), secret="whsec_" + "d3Jvbmcta2V5LXdyb25nLWtleQ==")
    assert forged.status_code == 400
    assert not WebhookDelivery.objects.exists()

    with django_capture_on_commit_callbacks() as callbacks:
        accepted = signed_post(client, sandbox_conn, event_for(part), webhook_id="wh_once")
        replay = signed_post(client, sandbox_conn, event_for(part), webhook_id="wh_once")
    assert accepted.json() == {"status": "accepted"} and replay.json() == {"status": "duplicate ignored"}
    assert len(callbacks) == 1  # one sync enqueued, not two
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_signed_webhook_syncs_the_batch_at_once_and_its_results_are_collected(
        team: Team, sandbox_url: str, celery_worker_session: object, settings: Any, tmp_path: Any) -> None:
    connection = sandbox_connection(team, sandbox_url, webhook_secret=WEBHOOK_SECRET)
    group = make_batch_group(team, connection, lines=[batch_chat_line("a", "echo: one"),
                                                      batch_chat_line("b", "x", sandbox_fail=True)])
    assert isinstance(group, BatchGroup)
    batch_group_mark_submitting(group=group, actor=None)
    batch_group_submit(group=group, actor=None)
    part = group.parts.get()
    client_for(connection).batches.retrieve(part.remote_id)  # let the sandbox's clock settle it
    wait_until(lambda: client_for(connection).batches.retrieve(part.remote_id).status == "completed")
    response = signed_post(Client(), connection, event_for(part))
    assert response.json() == {"status": "accepted"}

    def collected() -> bool:
        part.refresh_from_db()
        return part.results_state == ResultsState.DONE

    wait_until(collected, timeout=30)
    assert part.status == BatchStatus.COMPLETED
    statuses = dict(part.requests.values_list("custom_id", "status"))
    assert statuses == {"a": RequestStatus.SUCCEEDED, "b": RequestStatus.FAILED}

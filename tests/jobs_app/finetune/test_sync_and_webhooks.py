"""Polling costs one list call per connection however many jobs are active; it backs
off on errors and leaves finished jobs alone. Webhooks are verified with the SDK,
replays are ignored, and the sandbox's own signed deliveries bring a job up to date."""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx2
import openai
import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from jobs_app.finetune import services as finetune_services
from jobs_app.finetune import sync as finetune_sync
from jobs_app.finetune.models import FineTuneJob, FineTuneSyncState, JobStatus
from jobs_app.finetune.services import finetune_job_create
from jobs_app.finetune.sync import LIST_PAGE, sync_connection
from jobs_app.finetune.tasks import finetune_job_refresh_task
from project.files.services import file_upload
from project.notifications.models import Notification
from project.webhooks.models import WebhookDelivery
from sandbox.webhooks import sign
from tests.factories import chat_example, jsonl, make_dataset, make_finetune_job
from tests.jobs_app.finetune.conftest import sandbox_connection, wait_until


class CallCounter:
    """A spy around provider_call: the calls still go over real HTTP; we only count them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        for module in (finetune_sync, finetune_services):
            original = module.provider_call
            monkeypatch.setattr(module, "provider_call", self._wrap(original, module.__name__))

    def _wrap(self, original: Any, name: str) -> Any:
        def counted(connection: Any, call: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls[name.rsplit(".", 1)[-1]] += 1
            return original(connection, call, *args, **kwargs)

        return counted

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def _active_jobs_on_sandbox(team, connection, count: int) -> list[FineTuneJob]:
    training = file_upload(team=team, connection=connection, purpose="fine-tune", name="t.jsonl",
                           chunks=[jsonl([chat_example(i) for i in range(10)])], actor=None)
    client = openai.OpenAI(base_url=connection.base_url, api_key=connection.get_api_key())
    remote_ids = [client.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=training.remote_id).id
                  for _ in range(count)]
    return FineTuneJob.objects.bulk_create([
        FineTuneJob(team=team, connection=connection, remote_id=rid, base_model="gpt-4.1-mini",
                    status=JobStatus.VALIDATING_FILES) for rid in remote_ids
    ])


@pytest.mark.django_db
def test_one_tick_costs_list_calls_per_connection_not_per_job(team, realtime_sandbox_url, monkeypatch) -> None:
    connection = sandbox_connection(team, realtime_sandbox_url)
    jobs = _active_jobs_on_sandbox(team, connection, 250)
    finished = make_finetune_job(team, connection=connection, status=JobStatus.SUCCEEDED)
    counter = CallCounter(monkeypatch)

    first = sync_connection(connection)

    assert first.list_calls == math.ceil(len(jobs) / LIST_PAGE) == 3
    assert first.event_calls <= finetune_sync.EVENT_FETCHES_PER_TICK
    assert counter.total == first.api_calls <= 3 + finetune_sync.EVENT_FETCHES_PER_TICK
    second = sync_connection(connection)
    assert second.list_calls == 3 and second.updated == 0
    # The finished job was never asked about.
    finished.refresh_from_db()
    assert finished.synced_at is None
    assert FineTuneJob.objects.filter(connection=connection, synced_at__isnull=False).count() == len(jobs)


@pytest.mark.django_db
def test_a_failing_connection_backs_off_and_is_skipped_until_due(team, monkeypatch) -> None:
    connection = sandbox_connection(team, "http://127.0.0.1:9/v1")  # nothing listens there
    make_finetune_job(team, connection=connection)
    counter = CallCounter(monkeypatch)

    result = sync_connection(connection)

    assert result.error and "unreachable" in result.error
    state = FineTuneSyncState.objects.get(connection=connection)
    assert state.consecutive_failures == 1 and state.next_sync_at is not None
    again = sync_connection(connection)
    assert again.skipped == "backing off"
    assert counter.total == 1
    sync_connection(connection, force=True)
    state.refresh_from_db()
    first_delay = finetune_sync.BACKOFF_BASE_SECONDS
    assert state.consecutive_failures == 2
    assert state.next_sync_at is not None
    assert (state.next_sync_at - timezone.now()).total_seconds() > 1.5 * first_delay  # doubled


def _secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _signed(secret: str, payload: dict[str, Any], webhook_id: str | None = None) -> tuple[str, dict[str, str]]:
    body = json.dumps(payload)
    webhook_id = webhook_id or "wh_" + secrets.token_hex(8)
    stamp = int(time.time())
    return body, {"HTTP_WEBHOOK_ID": webhook_id, "HTTP_WEBHOOK_TIMESTAMP": str(stamp),
                  "HTTP_WEBHOOK_SIGNATURE": sign(secret, webhook_id, stamp, body)}


def _event(job: FineTuneJob, kind: str = "succeeded") -> dict[str, Any]:
    return {"id": "evt_" + secrets.token_hex(6), "object": "event", "created_at": int(time.time()),
            "type": f"fine_tuning.job.{kind}", "data": {"id": job.remote_id}}


@pytest.mark.django_db
def test_a_webhook_with_a_bad_signature_is_rejected(client, team) -> None:
    connection = sandbox_connection(team, "http://127.0.0.1:9/v1", webhook_secret=_secret())
    job = make_finetune_job(team, connection=connection)
    body, headers = _signed(_secret(), _event(job))  # signed with someone else's secret
    response = client.post(reverse("webhook_receive", args=[connection.public_id]), body,
                           content_type="application/json", **headers)
    assert response.status_code == 400
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_a_signed_webhook_syncs_the_job_and_a_replay_is_ignored(client, team, owner, sandbox_url,
                                                                 django_capture_on_commit_callbacks) -> None:
    secret = _secret()
    connection = sandbox_connection(team, sandbox_url, webhook_secret=secret)
    job = finetune_job_create(team=team, connection=connection, dataset=make_dataset(team), validation_dataset=None,
                              base_model="gpt-4.1-mini", method="supervised", hyperparameters={}, suffix="", seed=None,
                              metadata={}, actor=owner)
    time.sleep(0.3)  # the sandbox finishes the job in about 0.1 s
    url = reverse("webhook_receive", args=[connection.public_id])
    body, headers = _signed(secret, _event(job))
    with django_capture_on_commit_callbacks() as callbacks:
        first = client.post(url, body, content_type="application/json", **headers)
        replay = client.post(url, body, content_type="application/json", **headers)
    assert first.json() == {"status": "accepted"}
    assert replay.json() == {"status": "duplicate ignored"}
    assert len(callbacks) == 1  # one sync queued, not two
    # Run the queued task's body here (no worker in this test) to see what it does.
    finetune_job_refresh_task(job.pk)
    finetune_job_refresh_task(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert Notification.objects.filter(team=team).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_sandbox_delivers_a_signed_webhook_and_the_worker_syncs_the_job(live_server, sandbox_url,
                                                                           celery_worker_session) -> None:
    from tests.factories import make_team, make_user

    owner = make_user()
    team = make_team(owner=owner)
    secret = _secret()
    connection = sandbox_connection(team, sandbox_url, webhook_secret=secret)
    endpoint = live_server.url + reverse("webhook_receive", args=[connection.public_id])
    registered = httpx2.post(sandbox_url.removesuffix("/v1") + "/sandbox/webhooks",
                             json={"url": endpoint, "secret": secret},
                             headers={"Authorization": f"Bearer {connection.get_api_key()}"})
    assert registered.status_code == 200
    job = finetune_job_create(team=team, connection=connection, dataset=make_dataset(team), validation_dataset=None,
                              base_model="gpt-4.1-mini", method="supervised", hyperparameters={}, suffix="", seed=None,
                              metadata={}, actor=owner)

    # No polling here: only the webhook can bring the news.
    def synced() -> bool:
        job.refresh_from_db()
        return job.status == JobStatus.SUCCEEDED and job.finalized_at is not None

    wait_until(synced, timeout=20, every=0.1)
    assert WebhookDelivery.objects.filter(connection=connection, event_type="fine_tuning.job.succeeded").count() == 1
    assert Notification.objects.filter(team=team).count() == 1
    connections.close_all()


@pytest.mark.django_db
def test_the_beat_tick_visits_only_connections_with_active_jobs_that_are_due(team, realtime_sandbox_url,
                                                                             monkeypatch) -> None:
    from project.celery import app

    entry = app.conf.beat_schedule["finetune-sync"]
    assert entry["task"] in app.tasks  # the beat entry names a registered task
    busy = sandbox_connection(team, realtime_sandbox_url)
    _active_jobs_on_sandbox(team, busy, 3)
    idle = sandbox_connection(team, realtime_sandbox_url)
    make_finetune_job(team, connection=idle, status=JobStatus.SUCCEEDED)
    resting = sandbox_connection(team, realtime_sandbox_url)
    make_finetune_job(team, connection=resting)
    FineTuneSyncState.objects.create(connection=resting, consecutive_failures=2,
                                     next_sync_at=timezone.now() + timedelta(minutes=5))
    counter = CallCounter(monkeypatch)

    results = finetune_sync.sync_all_connections()

    assert set(results) == {busy.pk}
    assert results[busy.pk].list_calls == 1
    assert counter.total == results[busy.pk].api_calls


@pytest.mark.django_db
def test_a_job_missing_from_the_provider_does_not_make_every_tick_walk_the_whole_list(team, realtime_sandbox_url,
                                                                                   monkeypatch) -> None:
    connection = sandbox_connection(team, realtime_sandbox_url)
    older = _active_jobs_on_sandbox(team, connection, 150)
    FineTuneJob.objects.filter(pk__in=[job.pk for job in older]).update(status=JobStatus.SUCCEEDED)
    phantom = make_finetune_job(team, connection=connection, remote_id="ftjob-deleted-elsewhere")
    FineTuneJob.objects.filter(pk=phantom.pk).update(remote_created_at=timezone.now() + timedelta(seconds=5))
    counter = CallCounter(monkeypatch)

    result = sync_connection(connection)

    assert result.list_calls == 1  # not ceil(150 / 100) = 2 or more: older jobs cannot include it
    assert result.error == ""  # its events answer 404; the tick goes on and does not back off
    assert counter.total == result.api_calls == 2


@pytest.mark.django_db
def test_a_job_deleted_on_the_provider_is_ended_with_the_reason_not_polled_for_ever(team, realtime_sandbox_url,
                                                                                 monkeypatch) -> None:
    connection = sandbox_connection(team, realtime_sandbox_url)
    [listed] = _active_jobs_on_sandbox(team, connection, 1)
    gone = make_finetune_job(team, connection=connection, remote_id="ftjob-deleted-elsewhere")
    counter = CallCounter(monkeypatch)

    result = sync_connection(connection)

    gone.refresh_from_db()
    assert gone.status == JobStatus.FAILED and gone.is_terminal and gone.finalized_at is not None
    assert gone.error_message.startswith(f"The job no longer exists on {connection.name}: ")
    assert Notification.objects.filter(team=team, text__contains="ftjob-deleted-elsewhere").count() == 1
    assert result.missing_checks == 1 and counter.total == result.api_calls
    listed.refresh_from_db()
    assert listed.synced_at is not None  # the listed job went on as before
    again = sync_connection(connection)
    assert again.missing_checks == 0  # ended: no longer asked about


@pytest.mark.django_db
def test_events_that_announce_a_checkpoint_bring_the_checkpoint_with_them(team, sandbox_url) -> None:
    connection = sandbox_connection(team, sandbox_url)
    job = _active_jobs_on_sandbox(team, connection, 1)[0]
    client = openai.OpenAI(base_url=connection.base_url, api_key=connection.get_api_key())
    wait_until(lambda: any("Checkpoint created" in e.message
                           for e in client.fine_tuning.jobs.list_events(job.remote_id, limit=100).data))

    finetune_services.finetune_job_sync_events(job=job)  # what a sync tick does for a running job

    announced = {int(e.message.split("step ")[1].split()[0]) for e in job.events.all() if "Checkpoint created" in e.message}
    assert announced and announced <= {c.step for c in job.checkpoints.all()}

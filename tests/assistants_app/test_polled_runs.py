"""Background responses whose stream cannot be followed: the run awaits the provider, its
worker is let go, and beat's task fetches the response with backoff until it is over, then
ends the run as the streaming loop does. A response.* webhook and Stop fetch it at once;
Stop cancels it on the provider; the stale-run sweep leaves it alone; two fetches that race
finish it once."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from django.urls import reverse
from django.utils import timezone

from assistants_app import recovery, responses_loop, responses_poll, responses_stream, run_engines, streams, tasks
from assistants_app.models import Message, Role, Run, RunStatus
from assistants_app.services import run_cancel
from project.celery import app
from project.providers.client import ProviderNotFound, ProviderRateLimited, ProviderRejected, ProviderUnreachable
from project.providers.models import ProviderConnection
from project.spend.models import SpendEntry
from sandbox.webhooks import sign
from tests import factories
from tests.assistants_app.conftest import ended_stream_text, wait_for_run
from tests.assistants_app.test_background_runs import WorkerKilled, _connection, _created, _die_at_third_cursor
from tests.assistants_app.test_responses_runs import CALCULATOR
from tests.factories import make_assistant, make_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]

SECRET = "whsec_" + base64.b64encode(b"responses-webhook-test-secret").decode()


def _polled_run(team: factories.Team, url: str, monkeypatch: pytest.MonkeyPatch, text: str, *, cursor: int = 3,
                **config: Any) -> tuple[Run, ProviderConnection]:
    """A long-running run whose worker died mid-stream and whose next worker finds that the
    provider will not stream the response again: it hands the run to polling and returns."""
    connection = _connection(team, url, webhook_secret=SECRET)
    assistant = make_assistant(team, connection, long_running=True, **config)
    message = factories.make_message(make_thread(team, assistant), text)
    run = factories.make_run(message.thread, user_message=message)
    _die_at_third_cursor(monkeypatch, cursor)
    with pytest.raises(WorkerKilled):
        run_engines.run_execute(run.pk)
    monkeypatch.undo()
    real_open = responses_stream.open_stream

    def no_resumed_streams(run: Run, body: dict[str, Any], resume: Any) -> Any:
        if resume is not None:
            raise ProviderRejected("The provider refused the request (400): streaming is not available.")
        return real_open(run, body, resume)

    monkeypatch.setattr(responses_stream, "open_stream", no_resumed_streams)
    # The next worker takes the run over (as after the stale-run sweep) and returns at once.
    Run.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)
    run_engines.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.poll_at is not None and run.poll_attempts == 0, run.error
    return run, connection


def _remote(url: str, connection: ProviderConnection, response_id: str) -> dict[str, Any]:
    return dict(httpx2.get(f"{url}/responses/{response_id}",
                           headers={"Authorization": f"Bearer {connection.get_api_key()}"}).json())


def _wait_remote(url: str, connection: ProviderConnection, response_id: str, status: str = "completed") -> None:
    deadline = time.monotonic() + 20
    while _remote(url, connection, response_id)["status"] != status:
        assert time.monotonic() < deadline, f"the sandbox's response is not {status}"
        time.sleep(0.05)


def _poll_to_end(run_id: int) -> tuple[Run, int]:
    """Beat's task, called as beat would, its next look made due each time (the backoff's wait passes)."""
    ticks = 0
    deadline = time.monotonic() + 30
    while True:
        Run.objects.filter(pk=run_id, poll_at__isnull=False).update(poll_at=timezone.now())
        tasks.responses_poll_due_task()
        ticks += 1
        run = Run.objects.get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return run, ticks
        assert time.monotonic() < deadline, "the polled run did not end"
        time.sleep(0.05)


def _spend_rows(run: Run) -> int:
    return SpendEntry.objects.filter(source_kind="run", source_id=run.pk).count()


def test_beat_polls_a_response_whose_stream_cannot_be_followed_to_its_end(team, owner, background_sandbox,
                                                                          monkeypatch) -> None:
    run, connection = _polled_run(team, background_sandbox, monkeypatch, "write 300 words")
    # Its heartbeat goes stale (no worker holds it): the sweep must not send it again.
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (0, 0)
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING

    run, ticks = _poll_to_end(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    reply = Message.objects.get(run=run, role=Role.ASSISTANT).text
    assert len(reply.split()) == 300 and ended_stream_text(run.pk) == reply  # nothing lost, nothing shown twice
    assert _created(background_sandbox, connection) == 1  # generated once
    assert run.output_tokens > 0 and run.cost_usd is not None and run.poll_at is None
    assert run.poll_attempts == ticks
    assert SpendEntry.objects.filter(source_kind="run", source_id=run.pk, key=f"run:{run.pk}:attempt:2").count() == 1
    assert Message.objects.filter(run__isnull=True, thread=run.thread, role=Role.USER).exists()  # the question stays
    # A tick after the end fetches nothing.
    assert responses_poll.responses_poll_due() == 0 and responses_poll.response_fetch(run.pk, now_too=True) is False


def test_a_response_not_due_is_left_for_later_and_the_wait_grows(team, owner, background_sandbox, monkeypatch) -> None:
    run, _ = _polled_run(team, background_sandbox, monkeypatch, "write 2000 words")
    Run.objects.filter(pk=run.pk).update(poll_at=timezone.now() + timedelta(hours=1))
    assert responses_poll.responses_poll_due() == 0  # not due: not fetched
    waits = []
    for _ in range(3):
        Run.objects.filter(pk=run.pk).update(poll_at=timezone.now())
        before = timezone.now()
        assert responses_poll.responses_poll_due() == 1
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING and run.poll_lease_until is None and run.poll_at is not None
        waits.append((run.poll_at - before).total_seconds())
    # The project's poll backoff: 1 s, then 2 s, then 4 s between looks.
    assert [round(wait) for wait in waits] == [1, 2, 4]
    run_cancel(run=run, actor=owner)
    wait_for_run(run.pk)


def test_a_response_webhook_fetches_the_polled_run_at_once(team, owner, client, background_sandbox,
                                                           monkeypatch) -> None:
    run, connection = _polled_run(team, background_sandbox, monkeypatch, "write 300 words")
    # Its next look is an hour away: only the webhook can end it within the test.
    later = timezone.now() + timedelta(hours=1)
    Run.objects.filter(pk=run.pk).update(poll_at=later)
    other_team = factories.make_team("Other")
    stranger = factories.make_run(make_thread(other_team, make_assistant(other_team, factories.make_connection(
        other_team), long_running=True)), status=RunStatus.RUNNING, response_id=run.response_id, poll_at=later)
    _wait_remote(background_sandbox, connection, run.response_id)

    body = json.dumps({"id": "evt_r1", "object": "event", "created_at": int(time.time()),
                       "type": "response.completed", "data": {"id": run.response_id}})
    webhook_id, stamp = "wh_" + secrets.token_hex(8), int(time.time())
    response = client.post(reverse("webhook_receive", args=[connection.public_id]), body,
                           content_type="application/json",
                           headers={"webhook-id": webhook_id, "webhook-timestamp": str(stamp),
                                    "webhook-signature": sign(SECRET, webhook_id, stamp, body)})
    assert response.status_code == 200, response.content
    run = wait_for_run(run.pk)  # the worker's fetch task, sent by the webhook
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert len(Message.objects.get(run=run, role=Role.ASSISTANT).text.split()) == 300
    stranger.refresh_from_db()
    assert stranger.poll_at == later and stranger.status == RunStatus.RUNNING  # another team's run is not touched


def test_the_providers_own_signed_webhook_ends_the_polled_run(team, owner, asgi_url, background_sandbox,
                                                              monkeypatch) -> None:
    """End to end: the sandbox delivers response.completed, signed, to the dashboard's
    webhook endpoint, and that alone ends the run (its next poll is an hour away). 2000 words
    take the provider seconds: the endpoint is registered well before the response ends."""
    run, connection = _polled_run(team, background_sandbox, monkeypatch, "write 2000 words")
    Run.objects.filter(pk=run.pk).update(poll_at=timezone.now() + timedelta(hours=1))
    registered = httpx2.post(background_sandbox.removesuffix("/v1") + "/sandbox/webhooks",
                             headers={"Authorization": f"Bearer {connection.get_api_key()}"},
                             json={"url": asgi_url + reverse("webhook_receive", args=[connection.public_id]),
                                   "secret": SECRET})
    assert registered.status_code == 200, registered.text
    run = wait_for_run(run.pk, timeout=30)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert len(Message.objects.get(run=run, role=Role.ASSISTANT).text.split()) == 2000


def test_stop_while_polling_cancels_the_response_on_the_provider(team, owner, background_sandbox,
                                                                 monkeypatch) -> None:
    run, connection = _polled_run(team, background_sandbox, monkeypatch, "write 2000 words")
    Run.objects.filter(pk=run.pk).update(poll_at=timezone.now() + timedelta(hours=1))
    shown_before = "".join(data for kind, data in streams.fold(
        streams.redis_client().xrange(streams.stream_key(run.pk)))[0] if kind == "delta")
    run_cancel(run=Run.objects.get(pk=run.pk), actor=owner)
    run = wait_for_run(run.pk)  # the fetch Stop sent at once
    assert run.status == RunStatus.CANCELLED and run.error == "Stopped by a person.", run.error
    assert _remote(background_sandbox, connection, run.response_id)["status"] == "cancelled"
    kept = Message.objects.get(run=run, role=Role.ASSISTANT).text
    assert kept == shown_before + " …"  # what the page showed is kept, marked as cut short
    assert Message.objects.filter(run__isnull=True, thread=run.thread, role=Role.USER).exists()  # the question stays


def test_an_incomplete_polled_response_fails_the_run_in_words(team, owner, background_sandbox, monkeypatch) -> None:
    run, connection = _polled_run(team, background_sandbox, monkeypatch, "write 300 words", cursor=1,
                                  max_output_tokens=40)
    run, _ = _poll_to_end(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error == ("The reply is incomplete: the reply reached the version's output limit "
                         "(max output tokens).")
    kept = Message.objects.get(run=run, role=Role.ASSISTANT).text
    assert kept.endswith(" …") and 0 < len(kept.split()) < 300
    assert Message.objects.filter(run__isnull=True, thread=run.thread, role=Role.USER).exists()  # the question stays
    assert _remote(background_sandbox, connection, run.response_id)["status"] == "incomplete"
    assert _spend_rows(run) == 1 and run.output_tokens > 0


def test_two_fetches_at_once_finish_the_run_once(team, owner, background_sandbox, monkeypatch) -> None:
    run, connection = _polled_run(team, background_sandbox, monkeypatch, "write 300 words")
    _wait_remote(background_sandbox, connection, run.response_id)
    barrier = threading.Barrier(2)
    fetched: list[bool] = []

    def fetch() -> None:
        barrier.wait()
        fetched.append(responses_poll.response_fetch(run.pk, now_too=True))

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and sorted(fetched) == [False, True]
    assert Message.objects.filter(run=run, role=Role.ASSISTANT).count() == 1
    assert _spend_rows(run) == 1
    reply = Message.objects.get(run=run, role=Role.ASSISTANT).text
    assert ended_stream_text(run.pk) == reply
    entries: Any = streams.redis_client().xrange(streams.stream_key(run.pk))
    assert sum(1 for _, fields in entries if fields.get(b"t") == b"done") == 1  # ended once on the page


def test_a_fetch_whose_lease_lapsed_does_not_finish_a_run_another_finished(team, owner, background_sandbox,
                                                                           monkeypatch) -> None:
    """Past the lease (a fetcher thought dead), two fetches can hold the run: the end is
    still written once, by whichever comes first."""
    run, connection = _polled_run(team, background_sandbox, monkeypatch, "write 300 words")
    _wait_remote(background_sandbox, connection, run.response_id)
    slow = responses_poll._claim(run.pk, now_too=True)
    assert slow is not None
    Run.objects.filter(pk=run.pk).update(poll_lease_until=timezone.now() - timedelta(seconds=1))
    assert responses_poll.response_fetch(run.pk, now_too=True)  # the second fetch ends the run
    with pytest.raises(responses_poll.RunSuperseded):
        responses_poll._fetch_claimed(slow)  # the first one, late, writes nothing
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert Message.objects.filter(run=run, role=Role.ASSISTANT).count() == 1 and _spend_rows(run) == 1


def test_a_broken_stream_that_cannot_be_resumed_is_polled_and_its_tool_round_goes_on(team, owner, background_sandbox,
                                                                                    monkeypatch) -> None:
    """The stream breaks right after the response is created and every resume fails too: the
    response is polled; it calls a tool, whose result is saved, and a worker asks again."""
    monkeypatch.setattr(responses_loop, "backoff", lambda attempt, error: 0.0)
    real_events, real_open = responses_stream._events, responses_stream.open_stream

    def broken(response: Any, on_idle: Any = None) -> Any:
        for event in real_events(response, on_idle):
            yield event
            if event.get("type") == "response.created":
                raise ProviderUnreachable("The connection to the provider broke in the middle of the reply.")

    def resumes_fail(run: Run, body: dict[str, Any], resume: Any) -> Any:
        if resume is not None:
            raise ProviderUnreachable("Could not reach the provider: the connection failed (ConnectError).")
        return real_open(run, body, resume)

    monkeypatch.setattr(responses_stream, "_events", broken)
    monkeypatch.setattr(responses_stream, "open_stream", resumes_fail)
    connection = _connection(team, background_sandbox)
    assistant = make_assistant(team, connection, long_running=True, tools=[CALCULATOR])
    message = factories.make_message(make_thread(team, assistant), "use calculator expression=6*7")
    run = factories.make_run(message.thread, user_message=message)
    run_engines.run_execute(run.pk)  # the worker returns: the run awaits the provider
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.poll_at is not None and run.response_id
    monkeypatch.undo()  # the next round streams again

    _poll_to_end(run.pk)
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert Message.objects.get(run=run, role=Role.TOOL).text == "6*7 = 42"
    assert Message.objects.get(run=run, role=Role.ASSISTANT, tool_calls=[]).text.startswith(
        "Tool results: calculator: 6*7 = 42")
    assert run.attempts == 2 and run.provider_calls == 2 and _spend_rows(run) == 2
    assert _created(background_sandbox, connection) == 2  # one response per round, none twice


class _FailingClient:
    """A provider whose GET of the response fails with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @property
    def responses(self) -> Any:
        return self

    @property
    def with_raw_response(self) -> Any:
        return self

    def retrieve(self, response_id: str) -> Any:
        raise self.error


class _Parsed:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def parse(self) -> Any:
        return self

    def model_dump(self, mode: str) -> dict[str, Any]:
        return self.document


class _InProgressClient(_FailingClient):
    """A provider whose GET shows the response still being written, with `text` so far."""

    def __init__(self, text: str) -> None:
        super().__init__(RuntimeError("not used"))
        self.text = text

    def retrieve(self, response_id: str) -> Any:
        return _Parsed({"id": response_id, "object": "response", "status": "in_progress", "output": [
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress",
             "content": [{"type": "output_text", "text": self.text, "annotations": []}]}]})


def test_a_fetch_of_a_response_still_being_written_shows_its_new_text_on_the_page(team, owner, background_sandbox,
                                                                                   monkeypatch) -> None:
    run, _ = _polled_run(team, background_sandbox, monkeypatch, "write 2000 words")
    shown = "".join(data for kind, data in streams.fold(
        streams.redis_client().xrange(streams.stream_key(run.pk)))[0] if kind == "delta")
    with monkeypatch.context() as patched:
        patched.setattr(responses_poll, "provider_client", lambda connection: _InProgressClient(shown + " and more words"))
        assert responses_poll.response_fetch(run.pk, now_too=True)
        # A look that shows less than the page (it cannot continue it) changes nothing.
        patched.setattr(responses_poll, "provider_client", lambda connection: _InProgressClient("other"))
        assert responses_poll.response_fetch(run.pk, now_too=True)
    now_shown, _, ended = streams.fold(streams.redis_client().xrange(streams.stream_key(run.pk)))
    assert "".join(data for kind, data in now_shown if kind == "delta") == shown + " and more words"
    assert not ended and Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    run_cancel(run=Run.objects.get(pk=run.pk), actor=owner)
    wait_for_run(run.pk)


def test_a_rate_limited_fetch_waits_out_retry_after_then_the_next_look_ends_the_run(team, owner, background_sandbox,
                                                                                     monkeypatch) -> None:
    run, connection = _polled_run(team, background_sandbox, monkeypatch, "write 300 words")
    _wait_remote(background_sandbox, connection, run.response_id)
    with monkeypatch.context() as patched:
        patched.setattr(responses_poll, "provider_client", lambda connection: _FailingClient(ProviderRateLimited(
            "The provider is rate limiting requests.", status_code=429, retry_after=7.0)))
        before = timezone.now()
        assert responses_poll.response_fetch(run.pk, now_too=True)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.poll_lease_until is None
    assert run.poll_at is not None and (run.poll_at - before).total_seconds() >= 7.0  # retry-after, not 1 s
    run, _ = _poll_to_end(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error


def test_a_response_the_provider_no_longer_has_fails_the_run_in_words(team, owner, background_sandbox,
                                                                      monkeypatch) -> None:
    run, _ = _polled_run(team, background_sandbox, monkeypatch, "write 300 words")
    monkeypatch.setattr(responses_poll, "provider_client", lambda connection: _FailingClient(ProviderNotFound(
        "The provider has no response with that id (404).", status_code=404)))
    run, _ = _poll_to_end(run.pk)
    assert run.status == RunStatus.FAILED and run.error == "The provider has no response with that id (404)."
    assert run.poll_at is None and run.poll_lease_until is None


def test_a_provider_that_keeps_failing_is_not_polled_past_the_give_up(team, owner, background_sandbox,
                                                                       monkeypatch) -> None:
    # A GET that fails with a transient error every time was answered with a later look, for
    # ever: past POLL_GIVE_UP_AFTER the run ends in words instead.
    run, _ = _polled_run(team, background_sandbox, monkeypatch, "write 300 words")
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - responses_poll.POLL_GIVE_UP_AFTER
                                         - timedelta(minutes=1))
    monkeypatch.setattr(responses_poll, "provider_client", lambda connection: _FailingClient(ProviderRateLimited(
        "The provider is rate limiting requests.", status_code=429, retry_after=7.0)))
    monkeypatch.setattr(responses_poll, "cancel_background", lambda run: None)
    assert responses_poll.response_fetch(run.pk, now_too=True)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "had not finished the reply after 6 hours" in run.error
    assert run.poll_at is None and run.poll_lease_until is None


def test_beat_runs_the_poll_every_two_seconds() -> None:
    entry = app.conf.beat_schedule["chat-poll-background-responses"]
    assert entry["task"] == "assistants_app.responses_poll_due" and entry["schedule"] == 2.0

"""Long-running versions on the Responses engine: the provider writes the reply in the
background; a worker that dies mid-stream is replaced by one that resumes the provider's
stream after the last event shown (nothing lost, nothing shown twice, nothing generated
twice), or polls the response when its stream cannot be followed; Stop cancels it."""

from __future__ import annotations

from datetime import timedelta

import httpx2
import pytest
from django.utils import timezone

from assistants_app import recovery, run_engines, streams
from assistants_app.models import Message, Run, RunStatus
from assistants_app.services import run_cancel, thread_post_message
from project.providers.models import Engine, ProviderConnection, ProviderKind
from tests import factories
from tests.assistants_app.conftest import ended_stream_text, wait_for_run
from tests.factories import make_assistant, make_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


class WorkerKilled(BaseException):
    """What a worker's death looks like to the run: it stops where it is, writing nothing more."""


def _connection(team: factories.Team, url: str, *, webhook_secret: str = "") -> ProviderConnection:
    connection = factories.make_connection(team, base_url=url, kind=ProviderKind.SANDBOX, name="Background",
                                           webhook_secret=webhook_secret)
    connection.engine = Engine.RESPONSES
    connection.save(update_fields=["engine"])
    return connection


def _created(url: str, connection: ProviderConnection) -> int:
    stats = httpx2.get(url.removesuffix("/v1") + "/sandbox/responses/stats",
                       headers={"Authorization": f"Bearer {connection.get_api_key()}"}).json()
    return int(stats["create_requests"])


def _die_at_third_cursor(monkeypatch: pytest.MonkeyPatch, cursor: int = 3) -> None:
    """The worker dies after a flush has put its deltas on the stream but before their cursor:
    the next worker replays a little of what is already shown and must not show it twice."""
    real_publish = streams.publish
    cursors: list[str] = []

    def publish(run_id: int, kind: str, data: str = "") -> str:
        if kind == "cursor":
            cursors.append(data)
            if len(cursors) == cursor:
                raise WorkerKilled()
        return real_publish(run_id, kind, data)

    monkeypatch.setattr(streams, "publish", publish)


def _take_over(run: Run) -> Run:
    """The stale-run sweep finds the dead worker's run and sends it to another worker."""
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (1, 0)
    return wait_for_run(run.pk)


def test_a_long_running_reply_is_created_once_in_the_background(team, owner, sandbox_url) -> None:
    connection = _connection(team, sandbox_url)
    assistant = make_assistant(team, connection, long_running=True)
    _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="write 40 words")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    reply = Message.objects.get(run=run, role="assistant").text
    assert len(reply.split()) == 40 and ended_stream_text(run.pk) == reply
    assert run.response_id.startswith("resp_") and _created(sandbox_url, connection) == 1
    assert run.output_tokens > 0 and run.cost_usd is not None


def test_a_killed_worker_is_replaced_by_one_that_resumes_the_stream(team, owner, background_sandbox, monkeypatch) -> None:
    connection = _connection(team, background_sandbox)
    assistant = make_assistant(team, connection, long_running=True)
    message = factories.make_message(make_thread(team, assistant), "write 300 words")
    run = factories.make_run(message.thread, user_message=message)
    _die_at_third_cursor(monkeypatch)
    with pytest.raises(WorkerKilled):
        run_engines.run_execute(run.pk)
    monkeypatch.undo()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.response_id
    partial = "".join(data for kind, data in streams.fold(
        streams.redis_client().xrange(streams.stream_key(run.pk)))[0] if kind == "delta")
    assert 0 < len(partial.split()) < 300

    run = _take_over(run)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert run.attempts == 2
    reply = Message.objects.get(run=run, role="assistant").text
    assert len(reply.split()) == 300 and reply.startswith(partial)
    assert ended_stream_text(run.pk) == reply  # nothing lost, nothing shown twice
    assert _created(background_sandbox, connection) == 1  # the provider wrote it once


def test_stop_cancels_the_background_response_on_the_provider(team, owner, background_sandbox) -> None:
    connection = _connection(team, background_sandbox)
    assistant = make_assistant(team, connection, long_running=True)
    _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="write 2000 words")
    wait_for_run(run.pk, statuses=("running",))
    while not Run.objects.get(pk=run.pk).response_id:
        pass
    run = run_cancel(run=Run.objects.get(pk=run.pk), actor=owner)
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.CANCELLED
    remote = httpx2.get(f"{background_sandbox}/responses/{run.response_id}",
                        headers={"Authorization": f"Bearer {connection.get_api_key()}"}).json()
    assert remote["status"] == "cancelled"



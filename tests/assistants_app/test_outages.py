"""Redis and PostgreSQL going away under a run that is streaming: the reply the provider
is writing is kept and saved once, and the live display catches up.

Redis here is a real server of the test's own (tests/outages.py), really killed and
started again; PostgreSQL is the test database, whose server really drops the run's
connections (pg_terminate_backend, what a restart does to every client)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.backends import ModelBackend
from django.db import OperationalError, connection
from django.utils import timezone

from assistants_app import run_loop, streams
from assistants_app.models import Message, Run, RunStatus
from project.providers.models import ProviderConnection, ProviderKind
from tests import factories
from tests.assistants_app.conftest import wait_for_run
from tests.outages import StoppableRedis, stoppable_redis

pytestmark = pytest.mark.django_db(transaction=True)

# 80 words at 40 tokens a second: a reply streams for about two seconds.
REPLY_WORDS = 80
TOKENS_PER_SECOND = 40


@pytest.fixture
def live_redis(settings: Any) -> Iterator[StoppableRedis]:
    """The live display (assistants_app.streams) on a Redis this test may kill."""
    with stoppable_redis() as server:
        settings.REDIS_URL = server.url
        streams.redis_client.cache_clear()
        try:
            yield server
        finally:
            streams.redis_client.cache_clear()


@pytest.fixture
def slow_connection(team: factories.Team, tmp_path: Path) -> Iterator[ProviderConnection]:
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path / "sandbox", ttft_ms=0, tokens_per_second=TOKENS_PER_SECOND) as url:
        yield factories.make_connection(team, base_url=url, kind=ProviderKind.SANDBOX, name="Slow sandbox")


def _shown(run_id: int) -> tuple[str, bool]:
    shown, _, ended = streams.fold(streams.redis_client().xrange(streams.stream_key(run_id)))
    return "".join(data for kind, data in shown if kind == "delta"), ended


def _start_run(team: factories.Team, connection: ProviderConnection) -> tuple[Run, threading.Thread]:
    thread = factories.make_thread(team, factories.make_assistant(team, connection))
    run = factories.make_run(thread, user_message=factories.make_message(thread, f"write {REPLY_WORDS} words"))
    # The worker, in a thread of this test so the test decides when Redis goes away.
    worker = threading.Thread(target=run_loop.run_execute, args=(run.pk,), daemon=True)
    worker.start()
    return run, worker


def _wait_for_words(run_id: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_shown(run_id)[0].split()) < 10:
        assert time.monotonic() < deadline, "the reply never began streaming"
        time.sleep(0.02)


def test_a_reply_goes_on_and_is_saved_once_while_redis_is_killed_and_restarted(team, slow_connection,
                                                                                live_redis) -> None:
    run, worker = _start_run(team, slow_connection)
    _wait_for_words(run.pk)
    live_redis.kill()
    time.sleep(1.5)  # about what the issue saw: killed, back 1.3 s later, without its data
    live_redis.start()
    worker.join(timeout=30)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    reply = Message.objects.get(run=run, role="assistant")  # exactly one
    assert len(reply.text.split()) == REPLY_WORDS
    # The display caught up: a page opened now sees the whole reply, then its end.
    text, ended = _shown(run.pk)
    assert ended and text == reply.text


def test_a_reply_is_saved_when_redis_stays_down_until_it_ends(team, slow_connection, live_redis) -> None:
    run, worker = _start_run(team, slow_connection)
    _wait_for_words(run.pk)
    live_redis.kill()
    worker.join(timeout=30)
    run = wait_for_run(run.pk, timeout=1)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(Message.objects.get(run=run, role="assistant").text.split()) == REPLY_WORDS


def test_a_reply_is_saved_once_when_postgresql_drops_its_connections_mid_stream(team, slow_connection) -> None:
    run, worker = _start_run(team, slow_connection)
    _wait_for_words(run.pk)
    with connection.cursor() as cursor:
        # Every other connection to the test database, the worker's pooled ones included.
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    worker.join(timeout=30)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(Message.objects.get(run=run, role="assistant").text.split()) == REPLY_WORDS


@pytest.fixture
def whole_redis(settings: Any, live_redis: StoppableRedis) -> StoppableRedis:
    """The cache (and so the sessions' cache) on the killable Redis too, as in a deployment
    where one Redis is down for everything."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": live_redis.url}}
    return live_redis


def test_logged_in_pages_work_while_redis_is_down_and_a_message_sent_then_is_kept(team, owner, chat_connection,
                                                                                  whole_redis) -> None:
    from tests.conftest import client_for

    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    browser = client_for(owner)
    assert browser.get("/threads/").status_code == 200  # the session is in the cache now
    whole_redis.kill()

    assert browser.get("/threads/").status_code == 200
    page = browser.get(f"/threads/{thread.pk}/")
    assert page.status_code == 200
    assert "Live updates are paused: Redis" in page.content.decode()
    posted = browser.post(f"/threads/{thread.pk}/messages/", {"text": "echo: kept"}, HTTP_HX_REQUEST="true")
    assert posted.status_code == 200
    assert "Your message is saved. Live updates are paused" in posted.content.decode()
    run = Run.objects.get(thread=thread)
    assert run.status == RunStatus.QUEUED and run.user_message is not None and run.user_message.text == "echo: kept"


def test_stopping_a_reply_while_redis_is_down_says_why_it_cannot(team, owner, chat_connection, whole_redis) -> None:
    from tests.conftest import client_for

    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    run = factories.make_run(thread, status=RunStatus.RUNNING, attempts=1)
    browser = client_for(owner)
    whole_redis.kill()
    answer = browser.post(f"/runs/{run.pk}/stop/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    assert "cannot be stopped right now: Redis" in answer.content.decode()


class WorkerDied(BaseException):
    """What a SIGKILL does to the code after it: nothing more runs (not an Exception, so no handler runs)."""


def test_a_worker_dying_right_after_the_reply_is_saved_leaves_one_reply_and_a_finished_run(
        team, chat_connection, monkeypatch) -> None:
    from assistants_app import recovery
    from assistants_app.live import LiveDisplay

    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    run = factories.make_run(thread, user_message=factories.make_message(thread, "echo: once"))

    def died(self: LiveDisplay) -> None:
        raise WorkerDied()

    monkeypatch.setattr(LiveDisplay, "end", died)  # the first thing after the commit
    with pytest.raises(WorkerDied):
        run_loop.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED  # saved with its reply, in one transaction
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (0, 0)
    assert list(Message.objects.filter(run=run, role="assistant").values_list("text", flat=True)) == ["once"]


def test_a_run_sent_again_after_its_reply_was_saved_ends_without_calling_the_provider(team) -> None:
    # A provider nobody listens on: a call to it would fail the run.
    unreachable = factories.make_connection(team, base_url="http://127.0.0.1:9/v1")
    thread = factories.make_thread(team, factories.make_assistant(team, unreachable))
    # Its first attempt saved the reply and vanished before it could say so; the sweep sent it again.
    run = factories.make_run(thread, user_message=factories.make_message(thread, "hello"), attempts=1)
    factories.make_message(thread, "Hi.", role="assistant", run=run)
    run_loop.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.provider_calls == 0
    assert Message.objects.filter(run=run, role="assistant").count() == 1


def test_pages_work_right_after_postgresql_dropped_the_pools_connections(team, owner) -> None:
    """What a PostgreSQL restart leaves in every process's pool: connections that look
    idle and are dead. Without a check as they are handed out, the next pages were 500s;
    with psycopg_pool's own check, which finds them one at a time 1, 2, 4, 8 s apart, a
    pool of eight dead ones made the first page time out (PoolTimeout after 10 s)."""
    from tests.conftest import client_for

    browser = client_for(owner)
    pool: Any = getattr(connection, "pool")  # noqa: B009 - PostgreSQL's wrapper; the stubs know the base class
    held = [pool.getconn() for _ in range(8)]
    dead = [held_connection.info.backend_pid for held_connection in held]
    for held_connection in held:
        pool.putconn(held_connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [dead])
    connection.close()  # back to the pool too, behind the dead ones
    assert [browser.get("/threads/").status_code for _ in range(4)] == [200] * 4


@pytest.mark.parametrize(("error", "status", "words"), [
    (OperationalError("couldn't get a connection after 10.00 sec"), 503, "The database is unreachable"),
    (RuntimeError("a bug"), 500, "Something went wrong on our side"),
])
def test_a_page_that_cannot_reach_postgresql_says_so(owner, monkeypatch, error: Exception, status: int,
                                                     words: str) -> None:
    """Where the pool gives up (PostgreSQL down longer than its timeout), the page names
    the database and when to try again; any other error keeps the generic page."""
    from tests.conftest import client_for

    browser = client_for(owner)
    browser.raise_request_exception = False

    def fails(*args: object, **kwargs: object) -> None:
        raise error

    # The first query of a page: the session's user, read by the middleware.
    monkeypatch.setattr(ModelBackend, "get_user", fails)
    response = browser.get("/threads/")
    assert response.status_code == status
    assert words in response.content.decode()
    assert ("Retry-After" in response) is (status == 503)

"""A chat run whose Celery worker is really killed (SIGKILL, mid-stream): the stale-run
recovery queues it again and another worker writes the whole reply, or, once the
attempts are used up, the run ends as failed with a reason the user can act on.

The workers here are `celery worker` subprocesses against the test database, so the
kill takes away a real process with its threads, sockets and pooled connections.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from assistants_app import recovery, streams
from assistants_app.models import Message, Run, RunStatus
from assistants_app.services import thread_post_message
from project.celery import app as celery_app
from project.providers.models import ProviderConnection, ProviderKind
from tests import factories
from tests.assistants_app.conftest import wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)

# 80 words at 40 tokens a second: each attempt streams for about two seconds, long
# enough to be killed half-way, short enough to keep each test near ten seconds.
REPLY_WORDS = 80
TOKENS_PER_SECOND = 40
# Production waits 60 s (assistants_app.tasks.STALE_AFTER_SECONDS); the logic is the same.
STALE_AFTER_SECONDS = 1.0
# A cold `celery worker` needs about three seconds to import Django and connect.
WORKER_START_TIMEOUT = 30.0


@dataclass
class CeleryWorkers:
    """Start `celery worker` subprocesses on one queue; SIGKILL them like a crashed host would."""

    queue: str
    env: dict[str, str]
    log_dir: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        name = f"killable{len(self.started) + 1}"
        with (self.log_dir / f"{name}.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project.celery", "worker", "-P", "threads", "-c", "4",
                 "-Q", self.queue, "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "-l", "warning"],
                cwd=settings.BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                # Its own process group, so killing the group takes every process the worker made.
                start_new_session=True)
        self.started.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.log_dir.glob("*.log")))


@pytest.fixture
def celery_workers(transactional_db: None, tmp_path: Path) -> Iterator[CeleryWorkers]:
    # The in-process worker of other tests (celery_worker_session) also consumes "io"; had it
    # taken this run, the kill would hit nothing. So for this test the run's task goes to a
    # queue only these subprocesses read.
    queue = f"killable-{uuid.uuid4().hex[:8]}"
    routes = celery_app.conf.task_routes
    celery_app.conf.update(task_routes=({"assistants_app.run_execute": {"queue": queue}}, *routes))
    # pytest-django renamed the database to the test one; the subprocesses must use it too.
    database_url = urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + connection.settings_dict["NAME"]).geturl()
    log_dir = tmp_path / "workers"
    log_dir.mkdir()
    workers = CeleryWorkers(queue=queue, env={**os.environ, "DATABASE_URL": database_url}, log_dir=log_dir)
    try:
        yield workers
    finally:
        # Runs before the database is flushed (this fixture needs transactional_db), so no
        # worker is left holding connections or writing to a table being truncated.
        for worker in workers.started:
            if worker.poll() is None:
                workers.kill(worker)
        celery_app.conf.update(task_routes=routes)


@pytest.fixture
def slow_connection(team: factories.Team, tmp_path: Path) -> Iterator[ProviderConnection]:
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path / "sandbox", ttft_ms=0, tokens_per_second=TOKENS_PER_SECOND) as url:
        yield factories.make_connection(team, base_url=url, kind=ProviderKind.SANDBOX, name="Slow sandbox")


def _stream_kinds(run_id: int) -> list[str]:
    entries: Any = streams.redis_client().xrange(streams.stream_key(run_id))
    return [fields[b"t"].decode() for _, fields in entries]


def _shown(run_id: int) -> tuple[list[tuple[str, str]], bool]:
    """What a viewer opening the thread now is shown live, and whether the run has ended."""
    shown, _, ended = streams.fold(streams.redis_client().xrange(streams.stream_key(run_id)))
    return shown, ended


def _wait_until(condition: Callable[[], bool], what: str, workers: CeleryWorkers, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}\n{workers.logs()}")
        time.sleep(0.02)


def _kill_mid_reply(run_id: int, worker: subprocess.Popen[bytes], workers: CeleryWorkers, attempt: int) -> None:
    """Wait until the worker streams part of the reply, then SIGKILL it."""

    def streaming() -> bool:
        run = Run.objects.get(pk=run_id)
        return (run.status == RunStatus.RUNNING and run.attempts == attempt
                and any(kind == "delta" for kind, _ in _shown(run_id)[0]))

    _wait_until(streaming, f"attempt {attempt} of run {run_id} streams", workers, WORKER_START_TIMEOUT)
    workers.kill(worker)
    assert worker.returncode == -signal.SIGKILL
    run = Run.objects.get(pk=run_id)
    # Killed half-way: nothing was saved or ended, the row still says a worker has it.
    assert run.status == RunStatus.RUNNING, (run.status, run.error)
    assert not Message.objects.filter(run=run).exists()
    assert not _shown(run_id)[1]
    shown_words = len("".join(data for kind, data in _shown(run_id)[0] if kind == "delta").split())
    assert 0 < shown_words < REPLY_WORDS


def _wait_until_stale(run_id: int, workers: CeleryWorkers) -> None:
    """Until the dead worker's last heartbeat, written when it claimed the run, is older than the threshold."""

    def stale() -> bool:
        heartbeat = Run.objects.get(pk=run_id).heartbeat_at
        assert heartbeat is not None
        return timezone.now() - heartbeat > timedelta(seconds=STALE_AFTER_SECONDS)

    _wait_until(stale, f"run {run_id}'s heartbeat is stale", workers, STALE_AFTER_SECONDS + 5)


def test_a_reply_whose_worker_is_killed_mid_stream_is_written_again_by_another_worker(
        team, owner, slow_connection, celery_workers) -> None:
    thread = factories.make_thread(team, factories.make_assistant(team, slow_connection))
    first_worker = celery_workers.start()
    text = f"write {REPLY_WORDS} words"
    _, run = thread_post_message(thread=thread, actor=owner, text=text)
    _kill_mid_reply(run.pk, first_worker, celery_workers, attempt=1)

    _wait_until_stale(run.pk, celery_workers)
    assert recovery.runs_recover_stale(stale_after_seconds=STALE_AFTER_SECONDS) == (1, 0)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    kinds = _stream_kinds(run.pk)
    assert "reset" in kinds[kinds.index("delta"):], kinds
    # A viewer no longer sees the dead attempt's half reply, only the note that it is being rewritten.
    shown, ended = _shown(run.pk)
    assert [kind for kind, _ in shown] == ["note"] and not ended

    celery_workers.start()
    run = wait_for_run(run.pk, timeout=WORKER_START_TIMEOUT)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error, celery_workers.logs())
    assert run.attempts == 2
    assert list(thread.messages.filter(role="user").values_list("text", flat=True)) == [text]
    reply = Message.objects.get(thread=thread, role="assistant")  # one reply: the dead attempt saved nothing
    assert reply.run_id == run.pk
    assert len(reply.text.split()) == REPLY_WORDS
    # Live viewers got the whole reply once, from the start, after the reset.
    _wait_until(lambda: _shown(run.pk)[1], f"run {run.pk}'s stream ends", celery_workers, 5)
    assert "".join(data for kind, data in _shown(run.pk)[0] if kind == "delta") == reply.text


def test_a_reply_whose_worker_is_killed_on_every_attempt_fails_with_the_reason(
        team, owner, slow_connection, celery_workers) -> None:
    thread = factories.make_thread(team, factories.make_assistant(team, slow_connection))
    first_worker = celery_workers.start()
    text = f"write {REPLY_WORDS} words"
    _, run = thread_post_message(thread=thread, actor=owner, text=text)
    _kill_mid_reply(run.pk, first_worker, celery_workers, attempt=1)
    _wait_until_stale(run.pk, celery_workers)
    assert recovery.runs_recover_stale(stale_after_seconds=STALE_AFTER_SECONDS) == (1, 0)

    # The second attempt's worker dies too: with the default two attempts, that is the last.
    _kill_mid_reply(run.pk, celery_workers.start(), celery_workers, attempt=2)
    _wait_until_stale(run.pk, celery_workers)
    assert recovery.runs_recover_stale(stale_after_seconds=STALE_AFTER_SECONDS) == (0, 1)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == ("The worker running this reply stopped and it could not be finished. "
                         "Send the message again.")
    assert run.finished_at is not None
    assert list(thread.messages.filter(role="user").values_list("text", flat=True)) == [text]
    assert not thread.messages.filter(role="assistant").exists()
    # Viewers are told the run ended, so the page shows the failure instead of waiting.
    assert _shown(run.pk)[1]

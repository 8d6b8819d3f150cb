"""`make run` as a newcomer starts it: on a fresh database it prints the one-time login
after the web server and both workers are up (so start-up output cannot scroll it away),
serves with one web process per core (WEB_PROCESSES here), starts a killed worker again,
and Ctrl-C leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import pytest
import redis
from django.conf import settings

from devtools.asgi_thread import free_port
from devtools.run import BASE_DIR

STARTUP_SECONDS = 180


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database no one has used, on the tests' PostgreSQL: `make run`'s first start."""
    name = f"makerun_{uuid.uuid4().hex[:12]}"
    server = urlsplit(os.environ["DATABASE_URL"])
    admin_url = urlunsplit(server._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(server._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def spare_redis_url() -> Iterator[str]:
    """The tests' Redis, on a database of its own, so this stack's Celery sees no other work."""
    base = settings.REDIS_URL
    unix = base.startswith("unix://")
    url = base.split("?")[0] + "?db=13" if unix else urlunsplit(urlsplit(base)._replace(path="/13"))
    yield url
    redis.Redis.from_url(url).flushdb()


class Output:
    """The stack's merged output, read in a thread so the pipe never fills."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.process = process
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float, after: int = 0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            for index in range(after, len(self.lines)):
                if text in self.lines[index]:
                    return index
            after = max(after, len(self.lines))
            try:
                self.lines.append(self._queue.get(timeout=min(1.0, max(0.01, deadline - time.monotonic()))))
                continue
            except queue.Empty:
                if self.process.poll() is None and time.monotonic() < deadline:
                    continue
                tail = "\n".join(self.lines[-40:])
                raise AssertionError(f"{text!r} not seen within {timeout:.0f} s; last lines:\n{tail}") from None


def _pid_from(line: str) -> int:
    return int(line.split("(pid ")[1].split(")")[0].split(",")[0])


def test_make_run_prints_the_login_last_restarts_a_killed_worker_and_stops_cleanly(
    fresh_database: str, spare_redis_url: str, sandbox_url: str
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="makerun-"))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE",)}
    env.update({"DATABASE_URL": fresh_database, "REDIS_URL": spare_redis_url, "SANDBOX_URL": sandbox_url,
                "SWITCHBOARD_DATA_DIR": str(data_dir), "PORT": str(port), "WEB_PROCESSES": "2",
                "IO_CONCURRENCY": "2", "CPU_CONCURRENCY": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("CELERY_BROKER_URL", None)
    stack = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=BASE_DIR, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = Output(stack)
    try:
        password_at = output.wait_for("password:", STARTUP_SECONDS)
        lines = output.lines
        # Both workers said they are ready, and the web server answered, before the login.
        io_ready = next(i for i, line in enumerate(lines) if "io@" in line and "ready." in line)
        cpu_ready = next(i for i, line in enumerate(lines) if "cpu@" in line and "ready." in line)
        up = next(i for i, line in enumerate(lines) if "Switchboard is up" in line)
        assert io_ready < password_at and cpu_ready < password_at and up < password_at
        assert "with 2 web process(es)" in lines[up]
        assert "setpassword admin" in output.lines[output.wait_for("setpassword", 5, after=password_at)]

        web = psutil.Process(_pid_from(next(line for line in lines if "started web (pid" in line)))
        serving = [p for p in web.children() if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(serving) == 2, [p.cmdline() for p in serving]

        io_pid = _pid_from(next(line for line in lines if "started worker (io) (pid" in line))
        os.kill(io_pid, signal.SIGKILL)
        restarted_at = output.wait_for("worker (io) exited with code -9; restarted it", 30, after=password_at)
        output.wait_for("ready.", STARTUP_SECONDS, after=restarted_at)
        assert stack.poll() is None, "one dead worker must not stop the stack"

        everything = [p.pid for p in psutil.Process(stack.pid).children(recursive=True)]
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=60) == 0
        output.wait_for("[run] stopped.", 5)
        left = [pid for pid in everything if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        assert not left, f"processes outlived the stack: {left}"
    finally:
        if stack.poll() is None:
            leftovers = psutil.Process(stack.pid).children(recursive=True)
            stack.send_signal(signal.SIGINT)
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stack.kill()
            for process in leftovers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
        shutil.rmtree(data_dir, ignore_errors=True)

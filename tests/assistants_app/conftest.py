"""Chat fixtures: a connection to the sandbox, a way to wait for a run, an HTTP tool
endpoint. The dashboard under uvicorn (`asgi_url`) is in tests/conftest.py."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assistants_app import streams
from assistants_app.models import Run
from project.providers.models import ProviderConnection, ProviderKind
from tests import factories


@pytest.fixture
def paced_sandbox(tmp_path: Path) -> Iterator[str]:
    """A sandbox that streams at 400 tokens a second, so a reply takes long enough to watch or stop."""
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path, ttft_ms=0, tokens_per_second=400) as url:
        yield url


@pytest.fixture
def background_sandbox(tmp_path: Path) -> Iterator[str]:
    """A sandbox whose background clock runs at 10x: a 300-word reply takes about half a second to write."""
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path, ttft_ms=0, tokens_per_second=0, time_scale=10.0) as url:
        yield url


@pytest.fixture
def chat_connection(team: factories.Team, sandbox_url: str) -> ProviderConnection:
    return factories.make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")


def wait_for_run(run_id: int, timeout: float = 20.0, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled",
                                                                                 "waiting")) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status} after {timeout}s")
        time.sleep(0.05)


def ended_stream_entries(run_id: int, timeout: float = 5.0) -> Any:
    """The run's Redis Stream once its "done" entry is in: "done" goes out just after the
    run's row is final (viewers render it from there), so a test that saw the row final
    must wait for it rather than race it."""
    deadline = time.monotonic() + timeout
    while True:
        entries: Any = streams.redis_client().xrange(streams.stream_key(run_id))
        if streams.fold(entries)[2]:
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id}'s stream has no end after {timeout}s")
        time.sleep(0.02)


def ended_stream_text(run_id: int, kind: str = "delta", timeout: float = 5.0) -> str:
    """What a fresh viewer is shown of one kind ("delta": the reply, "thinking": the
    reasoning summary) once the run's stream has ended."""
    shown, _, _ = streams.fold(ended_stream_entries(run_id, timeout))
    return "".join(data for shown_kind, data in shown if shown_kind == kind)


class Recorder(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    delay = 0.0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.received.append((dict(self.headers), body))
        time.sleep(Recorder.delay)
        payload = json.dumps({"stock": 7}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        # The tool's caller may have given up waiting, which is what the timeout test wants.
        with contextlib.suppress(BrokenPipeError):
            self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tool_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.received, Recorder.delay = [], 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stock"
    server.shutdown()

"""running_sandbox(): a real sandbox server on a free port, for tests.

uvicorn runs in a background thread with its own event loop, so the tests speak
real HTTP to it while staying in one process (fast start, shared coverage).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from .app import create_app
from .config import SandboxConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


@contextmanager
def running_sandbox(data_dir: Path, **config_overrides: Any) -> Iterator[str]:
    """Yield the base URL ("http://127.0.0.1:<port>/v1") of a sandbox serving data_dir."""
    port = _free_port()
    defaults: dict[str, Any] = {"ttft_ms": 0.0, "tokens_per_second": 0.0}
    config = SandboxConfig.from_env().with_overrides(
        **{**defaults, **config_overrides, "data_dir": Path(data_dir), "port": port, "host": "127.0.0.1"}
    )
    server = _ThreadedServer(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                       timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, name=f"sandbox-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

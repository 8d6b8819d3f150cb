"""Serve an ASGI app with uvicorn in a background thread on a free local port.

Used by tests and benchmarks to reach the sandbox and the dashboard over real
HTTP in the same process. Imports nothing from Django (the sandbox uses it too).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


@contextmanager
def serving_in_thread(app: Any, *, port: int | None = None, lifespan: Literal["on", "off"] = "off",
                      name: str = "asgi", start_timeout: float = 15.0) -> Iterator[int]:
    """Run `app` on 127.0.0.1 until the block ends; yields the port."""
    port = port or free_port()
    server = _ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan,
                                            timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name=f"{name}-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} server did not start on port {port}")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)

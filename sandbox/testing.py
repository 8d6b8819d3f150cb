"""running_sandbox(): a real sandbox server on a free port, for tests.

uvicorn runs in a background thread with its own event loop, so the tests speak
real HTTP to it while staying in one process (fast start, shared coverage).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devtools.asgi_thread import free_port, serving_in_thread

from .app import create_app
from .config import SandboxConfig


@contextmanager
def running_sandbox(data_dir: Path, **config_overrides: Any) -> Iterator[str]:
    """Yield the base URL ("http://127.0.0.1:<port>/v1") of a sandbox serving data_dir."""
    port = free_port()
    defaults: dict[str, Any] = {"ttft_ms": 0.0, "tokens_per_second": 0.0}
    config = SandboxConfig.from_env().with_overrides(
        **{**defaults, **config_overrides, "data_dir": Path(data_dir), "port": port, "host": "127.0.0.1"}
    )
    with serving_in_thread(create_app(config), port=port, lifespan="on", name="sandbox"):
        yield f"http://127.0.0.1:{port}/v1"

"""Fine-tuning fixtures: sandbox connections with their own API key (the sandbox routes
webhooks per key), and sandboxes with slower clocks where a test must catch a job mid-way."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from project.providers.models import ProviderConnection, ProviderKind
from tests.factories import make_connection


@pytest.fixture(scope="module")
def slow_sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Time 100× faster than real: a job validates in 0.3 s, queues 0.6 s, then 30 ms per step."""
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path_factory.mktemp("sandbox-slow"), time_scale=100.0) as url:
        yield url


@pytest.fixture(scope="module")
def realtime_sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Real time: jobs stay active (validating for 30 s) for the whole test."""
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path_factory.mktemp("sandbox-realtime"), time_scale=1.0) as url:
        yield url


def sandbox_connection(team: Any, base_url: str, *, webhook_secret: str = "") -> ProviderConnection:
    return make_connection(team, base_url=base_url, kind=ProviderKind.SANDBOX, api_key=f"sk-ft-{uuid.uuid4().hex}",
                           webhook_secret=webhook_secret)


def wait_until(check: Callable[[], bool], timeout: float = 20.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(every)

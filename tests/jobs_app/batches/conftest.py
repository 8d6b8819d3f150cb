"""Fixtures for batch tests: media in a temporary folder, connections to the real sandbox."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobs_app.batches.models import TERMINAL_STATUSES, BatchGroup
from jobs_app.batches.sync import batches_sync_connection
from project.providers.models import ProviderConnection, ProviderKind
from project.teams.models import Team
from sandbox.testing import running_sandbox
from tests.factories import make_connection

_keys = itertools.count(1)
WEBHOOK_SECRET = "whsec_c2VjcmV0LWZvci1iYXRjaC13ZWJob29rcy10ZXN0cw=="


@pytest.fixture(scope="session")
def slow_sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sandbox whose clock runs slowly enough to cancel a batch while it runs."""
    with running_sandbox(tmp_path_factory.mktemp("slow-sandbox"), time_scale=40.0, ttft_ms=0,
                         tokens_per_second=0) as url:
        yield url


def sandbox_connection(team: Team, url: str, **extra: Any) -> ProviderConnection:
    # A key per connection keeps the sandbox's per-key webhook registrations apart.
    return make_connection(team, base_url=url, api_key=f"sk-batch-test-{next(_keys)}-{time.time_ns()}",
                           kind=ProviderKind.SANDBOX, **extra)


@pytest.fixture
def sandbox_conn(team: Team, sandbox_url: str) -> ProviderConnection:
    return sandbox_connection(team, sandbox_url, webhook_secret=WEBHOOK_SECRET)


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def sync_until_terminal(group: BatchGroup, timeout: float = 30.0) -> None:
    """Run sync ticks (as beat would) until every part of the group has ended."""

    def ended() -> bool:
        batches_sync_connection(connection=group.connection)
        return all(part.status in TERMINAL_STATUSES for part in group.parts.all())

    wait_until(ended, timeout=timeout, interval=0.1)

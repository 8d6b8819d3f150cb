"""Shared fixtures: one real sandbox server per session, SDK and raw HTTP clients, the spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from sandbox_helpers import SPEC_PATH, Spec, WebhookReceiver

from sandbox.testing import running_sandbox

TIME_SCALE = 1000.0
MAX_FILE_BYTES = 2 * 1024 * 1024
API_KEY = "sk-sandbox-test"


@pytest.fixture(scope="session")
def spec() -> Spec:
    return Spec(SPEC_PATH)


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-data")


@pytest.fixture(scope="session")
def sandbox_url(sandbox_dir: Path) -> Iterator[str]:
    with running_sandbox(sandbox_dir, time_scale=TIME_SCALE, max_file_bytes=MAX_FILE_BYTES, tick_seconds=0.05) as url:
        yield url


@pytest.fixture(scope="session")
def client(sandbox_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=sandbox_url, api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="session")
def api(sandbox_url: str) -> Iterator[httpx2.Client]:
    """Raw HTTP, for looking at exact bodies and headers."""
    with httpx2.Client(base_url=sandbox_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as c:
        yield c


@pytest.fixture()
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()

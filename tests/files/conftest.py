"""Files tests: media in a tmp dir, a sandbox of their own (so a sync lists only these tests' files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from project.providers.models import ProviderConnection, ProviderKind
from tests.factories import make_connection


@pytest.fixture(autouse=True)
def media_root(settings: pytest.FixtureRequest, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"  # type: ignore[attr-defined]
    return tmp_path / "media"


@pytest.fixture(scope="module")
def files_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path_factory.mktemp("files-sandbox"), time_scale=2000.0) as url:
        yield url


@pytest.fixture
def connection(team: object, files_sandbox: str) -> ProviderConnection:
    return make_connection(team, base_url=files_sandbox, kind=ProviderKind.SANDBOX, name="Sandbox")  # type: ignore[arg-type]


@pytest.fixture
def provider(files_sandbox: str, connection: ProviderConnection) -> openai.OpenAI:
    """The sandbox seen directly with the connection's key, to check what the provider really holds for it."""
    return openai.OpenAI(base_url=files_sandbox, api_key=connection.get_api_key(), max_retries=0)


@pytest.fixture
def small_parts(settings: pytest.FixtureRequest) -> None:
    """Multi-part uploads at test sizes: anything over 1000 bytes goes in parts of 400."""
    settings.FILES_SINGLE_UPLOAD_MAX_BYTES = 1000  # type: ignore[attr-defined]
    settings.FILES_PART_BYTES = 400  # type: ignore[attr-defined]

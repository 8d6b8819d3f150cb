"""A connection's base URL alone makes the sandbox behave like a llama.cpp or vLLM server."""

from __future__ import annotations

from project.providers.models import ProviderKind
from project.providers.services import connection_test
from project.teams.models import Team
from tests.factories import make_connection


def test_a_llamacpp_like_connection_lists_its_one_model(team: Team, sandbox_url: str) -> None:
    base = sandbox_url.removesuffix("/v1") + "/llamacpp/n_ctx=4096/v1"
    connection = make_connection(team, base_url=base, kind=ProviderKind.COMPATIBLE, api_key="")
    result = connection_test(connection=connection)
    assert result.ok and result.model_ids == ["SmolLM2-135M-Instruct"]


def test_a_wrong_key_for_a_keyed_llamacpp_like_server_fails_the_test(team: Team, sandbox_url: str) -> None:
    base = sandbox_url.removesuffix("/v1") + "/llamacpp/api_key=sk-local/v1"
    assert not connection_test(connection=make_connection(team, base_url=base, api_key="sk-guess")).ok
    assert connection_test(connection=make_connection(team, base_url=base, api_key="sk-local")).ok


def test_a_vllm_like_connection_lists_its_model(team: Team, sandbox_url: str) -> None:
    base = sandbox_url.removesuffix("/v1") + "/vllm/v1"
    result = connection_test(connection=make_connection(team, base_url=base, kind=ProviderKind.COMPATIBLE))
    assert result.ok and result.model_ids == ["Qwen/Qwen2.5-0.5B-Instruct"]

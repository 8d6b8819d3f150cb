"""Connections to the sandbox behaving like a llama.cpp or vLLM server (its profiles, chosen
by the base URL), shared by the tests of compatible servers."""

from __future__ import annotations

from project.providers.models import ProviderConnection, ProviderKind
from project.teams.models import Team
from tests.factories import make_connection

LLAMA_MODEL = "SmolLM2-135M-Instruct"
VLLM_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def profile_url(sandbox_url: str, profile: str, *settings: str) -> str:
    return sandbox_url.removesuffix("/v1") + f"/{profile}/" + "".join(f"{s}/" for s in settings) + "v1"


def llamacpp(team: Team, sandbox_url: str, *settings: str, name: str | None = None) -> ProviderConnection:
    """A connection to the sandbox behaving like llama-cpp-python's server, with `name=value` settings."""
    return make_connection(team, base_url=profile_url(sandbox_url, "llamacpp", *settings),
                           kind=ProviderKind.COMPATIBLE, api_key="", name=name)


def vllm(team: Team, sandbox_url: str, *settings: str) -> ProviderConnection:
    return make_connection(team, base_url=profile_url(sandbox_url, "vllm", *settings), kind=ProviderKind.COMPATIBLE,
                           api_key="")

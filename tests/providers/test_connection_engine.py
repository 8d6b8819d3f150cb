"""A connection's engine: detected by "Test connection", chosen by an admin, recorded on each run."""

from __future__ import annotations

import pytest
from django.test import Client

from project.providers.engine import engine_detect
from project.providers.models import Engine, ProviderConnection, ProviderKind
from project.providers.services import connection_test
from tests.factories import make_connection


def _llamacpp_url(sandbox_url: str) -> str:
    return sandbox_url.removesuffix("/v1") + "/llamacpp/v1"


def test_testing_the_sandbox_detects_the_responses_engine(team, sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    assert connection.run_engine == Engine.CHAT_COMPLETIONS  # not known before the test
    result = connection_test(connection=connection)
    assert result.ok and result.message.endswith("Engine: Responses (detected).")
    connection.refresh_from_db()
    assert connection.engine_detected == Engine.RESPONSES and connection.run_engine == Engine.RESPONSES


def test_a_llamacpp_server_without_responses_is_detected_as_chat_completions(team, sandbox_url) -> None:
    connection = make_connection(team, base_url=_llamacpp_url(sandbox_url), kind=ProviderKind.COMPATIBLE)
    result = connection_test(connection=connection)
    assert result.ok and result.message.endswith("Engine: Chat Completions (detected).")
    connection.refresh_from_db()
    assert connection.engine_detected == Engine.CHAT_COMPLETIONS


def test_an_unreachable_server_says_nothing_about_its_engine(team) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1")
    assert engine_detect(connection) is None
    assert connection.run_engine == Engine.CHAT_COMPLETIONS


def test_openai_and_azure_default_to_responses_before_any_test(team) -> None:
    assert make_connection(team, kind=ProviderKind.OPENAI, base_url="").run_engine == Engine.RESPONSES
    assert make_connection(team, kind=ProviderKind.AZURE,
                           base_url="https://r.openai.azure.com").run_engine == Engine.RESPONSES


@pytest.mark.django_db
def test_an_admins_choice_overrides_the_detected_engine_and_the_list_says_so(owner_client: Client, team,
                                                                            sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Box")
    connection_test(connection=connection)
    page = owner_client.get(f"/settings/connections/{connection.pk}/").content.decode()
    assert "Detect it (Test connection)" in page
    owner_client.post(f"/settings/connections/{connection.pk}/", {"kind": "sandbox", "name": "Box",
                                                                  "base_url": sandbox_url, "engine": "chat_completions"})
    connection = ProviderConnection.objects.get(pk=connection.pk)
    assert connection.engine == Engine.CHAT_COMPLETIONS and connection.engine_detected == Engine.RESPONSES
    assert connection.run_engine == Engine.CHAT_COMPLETIONS
    assert "Chat Completions (chosen)" in owner_client.get("/settings/connections/").content.decode()
    # Back to "detect": the detected engine applies again.
    owner_client.post(f"/settings/connections/{connection.pk}/", {"kind": "sandbox", "name": "Box",
                                                                  "base_url": sandbox_url, "engine": ""})
    assert ProviderConnection.objects.get(pk=connection.pk).run_engine == Engine.RESPONSES
    response = owner_client.post(f"/settings/connections/{connection.pk}/", {"kind": "sandbox", "name": "Box",
                                                                             "base_url": sandbox_url, "engine": "soap"})
    assert "Select a valid choice" in response.content.decode()

"""Capabilities are probed, not assumed (issue #15, item 5): "Test connection" asks the
server what it supports, stores it, and the connection's pages show it."""

from __future__ import annotations

import pytest

from project.providers.capabilities import capabilities_probe, connection_capabilities, supports
from project.providers.models import ConnectionCapabilities, ProviderKind
from project.providers.services import connection_save, connection_test
from project.teams.models import Role
from tests.compatible import llamacpp, vllm
from tests.conftest import client_for
from tests.factories import add_member, make_connection

pytestmark = pytest.mark.django_db

NOT_ON_LLAMACPP = {"stream_usage", "tools", "json_schema", "files", "batches", "fine_tuning", "embeddings", "responses"}


def _seen(connection) -> dict[str, bool | None]:
    capabilities = connection_capabilities(connection)
    assert capabilities is not None
    return {name: supports(capabilities, name) for name in capabilities.results}


def test_a_llamacpp_like_server_is_seen_to_lack_what_it_lacks(team, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    assert connection_test(connection=connection).ok
    seen = _seen(connection)
    assert {name for name, ok in seen.items() if ok is False} == NOT_ON_LLAMACPP
    assert seen["forced_tool_choice"] and seen["json_object"] and seen["images"]
    capabilities = connection_capabilities(connection)
    assert capabilities is not None and capabilities.probe_model == "SmolLM2-135M-Instruct"
    # The 500 dump the server sends for json_schema is kept as words, without its traceback.
    detail = capabilities.results["json_schema"]["detail"]
    assert "validation error" in detail and "/usr/lib" not in detail and "Traceback" not in detail


def test_the_sandbox_as_openai_supports_everything_probed(team, sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    assert connection_test(connection=connection).ok
    seen = _seen(connection)
    assert all(seen.values()), seen
    capabilities = connection_capabilities(connection)
    assert capabilities is not None and capabilities.probe_model  # a cheap chat model of its list


def test_a_vllm_like_server_has_tools_and_schemas_but_no_files(team, sandbox_url) -> None:
    connection = vllm(team, sandbox_url)
    seen = _seen(connection) if connection_test(connection=connection).ok else {}
    assert seen["stream_usage"] and seen["tools"] and seen["json_schema"]
    assert seen["files"] is False and seen["batches"] is False and seen["fine_tuning"] is False


def test_an_unreachable_server_is_not_probed(team) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1")
    assert not connection_test(connection=connection).ok
    assert connection_capabilities(connection) is None


def test_a_timeout_says_nothing_about_a_capability(team, sandbox_url, settings) -> None:
    # A server too slow to answer is "unknown", never "lacks".
    settings.PROVIDER_TEST_TIMEOUT_SECONDS = 0.5
    connection = llamacpp(team, sandbox_url, "fault=timeout")
    capabilities_probe(connection=connection, names=["json_schema"], model="any")
    assert supports(connection_capabilities(connection), "json_schema") is None


def test_moving_the_connection_forgets_what_the_old_server_supported(team, owner, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    capabilities_probe(connection=connection, names=["files"])
    connection_save(team=team, actor=owner, kind=connection.kind, name=connection.name, connection=connection,
                    base_url=sandbox_url)
    assert not ConnectionCapabilities.objects.filter(connection=connection).exists()


def test_test_connection_shows_what_the_server_lacks_and_its_page_lists_everything(team, owner_client,
                                                                                   sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url, name="Local llama")
    answer = owner_client.post(f"/settings/connections/{connection.pk}/test/", HTTP_HX_REQUEST="true")
    text = answer.content.decode()
    assert "Connected: 1 model available." in text
    assert "The server lacks:" in text and "JSON-schema replies (response_format json_schema)" in text
    page = owner_client.get(f"/settings/connections/{connection.pk}/server/").content.decode()
    assert 'data-capability="json_schema" data-ok="no"' in page
    assert 'data-capability="json_object" data-ok="yes"' in page
    assert 'data-capability="forced_tool_choice" data-ok="yes"' in page
    assert "chat requests with <code>SmolLM2-135M-Instruct</code>" in page


def test_a_viewer_sees_the_server_page_but_cannot_set_model_facts(team, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    viewer = client_for(add_member(team, role=Role.VIEWER).user)
    assert viewer.get(f"/settings/connections/{connection.pk}/server/").status_code == 200
    url = f"/settings/connections/{connection.pk}/model-facts/?model=SmolLM2-135M-Instruct"
    assert viewer.get(url).status_code == 403
    assert viewer.post(url, {"model": "SmolLM2-135M-Instruct", "free": "on"}).status_code == 403

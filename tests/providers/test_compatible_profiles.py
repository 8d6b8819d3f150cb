"""A connection's base URL alone makes the sandbox behave like a llama.cpp or vLLM server."""

from __future__ import annotations

import pytest

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


# -- errors in the shapes such servers send (issue #15, item 7) ---------------------------------------

def test_a_detail_error_body_is_shown_in_words(team: Team, sandbox_url: str) -> None:
    # llama-cpp-python answers a wrong key with 401 {"detail": "Invalid API key"}.
    base = sandbox_url.removesuffix("/v1") + "/llamacpp/api_key=sk-local/v1"
    result = connection_test(connection=make_connection(team, base_url=base, api_key="sk-guess"))
    assert not result.ok
    assert result.message == "The provider rejected the API key (401): Invalid API key"


def test_a_bare_error_string_is_shown_in_words(team: Team, sandbox_url: str) -> None:
    # vLLM answers a wrong key with 401 {"error": "Unauthorized"}.
    base = sandbox_url.removesuffix("/v1") + "/vllm/api_key=sk-local/v1"
    result = connection_test(connection=make_connection(team, base_url=base, api_key="sk-guess"))
    assert result.message == "The provider rejected the API key (401): Unauthorized"


def test_a_validation_error_list_and_a_plain_text_body_are_read() -> None:
    import httpx2
    import openai

    from project.providers.client import translate_error

    def status_error(status: int, content: bytes, content_type: str) -> openai.APIStatusError:
        request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
        response = httpx2.Response(status, content=content, headers={"content-type": content_type}, request=request)
        client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")
        return client._make_status_error_from_response(response)

    unprocessable = status_error(422, b'{"detail": [{"type": "missing", "loc": ["body", "messages"], '
                                      b'"msg": "Field required", "input": {}}]}', "application/json")
    assert translate_error(unprocessable).message == (
        "The provider refused the request (422): body.messages: Field required")
    plain = status_error(502, b"upstream connect error or disconnect/reset before headers", "text/plain")
    assert translate_error(plain).message == (
        "The provider failed (502): upstream connect error or disconnect/reset before headers")
    empty = status_error(503, b"", "text/plain")
    assert translate_error(empty).message == "The provider failed (503): no reason given"


def test_a_server_traceback_is_logged_but_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    import httpx2
    import openai

    from project.providers.client import translate_error
    from sandbox.profiles import JSON_SCHEMA_DUMP

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(500, content=JSON_SCHEMA_DUMP.encode(), headers={"content-type": "text/plain"},
                               request=request)
    error = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")._make_status_error_from_response(response)
    with caplog.at_level("WARNING", logger="project.providers.client"):
        message = translate_error(error).message
    assert message.startswith("The provider failed (500): 1 validation error for ChatCompletionRequestResponseFormat")
    assert "Extra inputs are not permitted" in message
    for leak in ("/usr/lib", "site-packages", "Traceback", 'File "', "line 513", "await "):
        assert leak not in message
    assert "/usr/lib/python3/site-packages/llama_cpp/server/app.py" in caplog.text  # kept for the operator

"""Profiles: the sandbox behaving like llama-cpp-python's server and like vLLM's."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from sandbox import profile_specs
from sandbox.config import ConfigError, SandboxConfig
from sandbox.testing import running_sandbox

TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}},
                                       "required": ["timezone"]}}}]
LONG_PROMPT = "word " * 5000  # about 5,000 tokens: over llamacpp's 4,096


def _root(sandbox_url: str) -> str:
    return sandbox_url.removesuffix("/v1")


@pytest.fixture()
def raw(sandbox_url: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=_root(sandbox_url), timeout=30) as c:
        yield c


@pytest.fixture()
def llama(sandbox_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=_root(sandbox_url) + "/llamacpp/v1", api_key="anything", max_retries=0)


@pytest.fixture()
def vllm(sandbox_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=_root(sandbox_url) + "/vllm/v1", api_key="anything", max_retries=0)


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "whatever", "messages": [{"role": "user", "content": text}], **extra}


def _events(body: str) -> tuple[list[str], list[Any]]:
    """(comment lines, data payloads with [DONE] kept as the string) of an event stream."""
    comments = [line for line in body.split("\n") if line.startswith(":")]
    data: list[Any] = []
    for line in body.split("\n"):
        if line.startswith("data: "):
            payload = line[6:]
            data.append(payload if payload == "[DONE]" else json.loads(payload))
    return comments, data


# -- choosing a profile --------------------------------------------------------------------------


def test_every_profile_the_sandbox_has_is_one_sandbox_profile_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    # A profile added beside llamacpp and vllm needs no second list in the settings check.
    monkeypatch.setitem(profile_specs.PROFILES, "tgi", dataclasses.replace(profile_specs.PROFILES["vllm"], name="tgi"))
    monkeypatch.setenv("SANDBOX_PROFILE", "TGI")
    assert SandboxConfig.from_env().profile == "tgi"
    monkeypatch.setenv("SANDBOX_PROFILE", "nope")
    with pytest.raises(ConfigError, match="openai, llamacpp, vllm, tgi"):
        SandboxConfig.from_env()

def test_a_base_url_prefix_or_a_header_picks_the_profile(raw: httpx2.Client) -> None:
    by_path = raw.get("/llamacpp/v1/models").json()
    by_header = raw.get("/v1/models", headers={"X-Sandbox-Profile": "llamacpp"}).json()
    assert [m["id"] for m in by_path["data"]] == [m["id"] for m in by_header["data"]] == ["SmolLM2-135M-Instruct"]
    # Without either, the same sandbox is OpenAI.
    plain = raw.get("/v1/models", headers={"Authorization": "Bearer sk-x"}).json()
    assert "gpt-4.1-mini" in {m["id"] for m in plain["data"]}
    unknown = raw.get("/v1/models", headers={"X-Sandbox-Profile": "tgi"})
    assert unknown.status_code == 400 and "tgi" in unknown.json()["detail"]
    bad_setting = raw.get("/llamacpp/n_ctx=lots/v1/models")
    assert bad_setting.status_code == 400 and "n_ctx" in bad_setting.json()["detail"]


def test_llamacpp_lists_its_one_model_with_llama_cpp_meta(llama: openai.OpenAI, raw: httpx2.Client) -> None:
    models = list(llama.models.list())
    assert [m.id for m in models] == ["SmolLM2-135M-Instruct"]
    entry = raw.get("/llamacpp/v1/models").json()["data"][0]
    assert entry["owned_by"] == "me" and entry["meta"]["n_ctx_train"] == 8192 and entry["meta"]["n_vocab"] == 49152
    assert raw.get("/llamacpp/model=my-gguf/v1/models").json()["data"][0]["id"] == "my-gguf"


@pytest.mark.parametrize("profile", ["llamacpp", "vllm"])
@pytest.mark.parametrize("path", ["/v1/files", "/v1/uploads", "/v1/batches", "/v1/fine_tuning/jobs", "/v1/responses",
                                  "/v1/models/SmolLM2-135M-Instruct", "/v1/assistants", "/sandbox/webhooks"])
def test_profiles_have_no_files_batches_fine_tuning_or_responses_routes(raw: httpx2.Client, profile: str,
                                                                       path: str) -> None:
    for method in ("GET", "POST"):
        response = raw.request(method, f"/{profile}{path}", json={})
        assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


def test_the_sdk_sees_those_missing_apis_as_404s_with_a_detail_body(llama: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        llama.files.list()
    assert caught.value.body == {"detail": "Not Found"}
    with pytest.raises(openai.NotFoundError):
        llama.batches.create(input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        llama.fine_tuning.jobs.list()


def test_a_wrong_key_gets_a_detail_401_when_the_server_has_a_key(raw: httpx2.Client) -> None:
    wrong = raw.get("/llamacpp/api_key=sk-local/v1/models", headers={"Authorization": "Bearer sk-guess"})
    assert wrong.status_code == 401 and wrong.json() == {"detail": "Invalid API key"}
    missing = raw.post("/llamacpp/api_key=sk-local/v1/chat/completions", json=_chat("hi"))
    assert missing.status_code == 401 and missing.json() == {"detail": "Invalid API key"}
    right = raw.get("/llamacpp/api_key=sk-local/v1/models", headers={"Authorization": "Bearer sk-local"})
    assert right.status_code == 200
    # With no key configured, llama.cpp takes requests without any Authorization header at all.
    assert raw.post("/llamacpp/v1/chat/completions", json=_chat("hi")).status_code == 200
    vllm_wrong = raw.get("/vllm/api_key=sk-local/v1/models", headers={"Authorization": "Bearer sk-guess"})
    assert vllm_wrong.status_code == 401 and vllm_wrong.json() == {"error": "Unauthorized"}


def test_the_sandbox_config_can_make_every_request_llamacpp(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, profile="llamacpp", api_key="sk-right", keepalive_seconds=0.3,
                         ping_seconds=0.1, profile_n_ctx=512) as url:
        wrong = httpx2.get(url + "/models", headers={"Authorization": "Bearer sk-wrong"})
        assert wrong.status_code == 401 and wrong.json() == {"detail": "Invalid API key"}
        client = openai.OpenAI(base_url=url, api_key="sk-right", max_retries=0)
        with client.chat.completions.with_streaming_response.create(
                model="m", messages=[{"role": "user", "content": "echo: hello"}], stream=True) as response:
            comments, data = _events(response.read().decode())
        # Pings every 0.1 s over 0.3 s: two, or three when the loop runs late on a busy machine.
        assert 2 <= len(comments) <= 3 and data[-1] == "[DONE]"
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "word " * 600}])
        assert "maximum context length is 512 tokens" in caught.value.message


# -- llamacpp chat ---------------------------------------------------------------------------------

def test_llamacpp_streams_carry_no_usage_even_when_asked(raw: httpx2.Client, llama: openai.OpenAI) -> None:
    response = raw.post("/llamacpp/v1/chat/completions",
                        json=_chat("echo: one two three", stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    _, data = _events(response.text)
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert all("usage" not in c and len(c["choices"]) == 1 for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "one two three"
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1
    streamed = list(llama.chat.completions.create(model="m", messages=[{"role": "user", "content": "echo: hi"}],
                                                  stream=True, stream_options={"include_usage": True}))
    assert all(chunk.usage is None for chunk in streamed)
    # A plain call does report usage (only the three totals).
    plain = llama.chat.completions.create(model="m", messages=[{"role": "user", "content": "echo: hi"}])
    assert plain.usage is not None and plain.usage.completion_tokens == 1
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + 1
    assert plain.model == "m" and plain.choices[0].message.content == "hi"


def test_llamacpp_honours_max_tokens_and_ignores_max_completion_tokens(llama: openai.OpenAI) -> None:
    capped = llama.chat.completions.create(model="m", messages=[{"role": "user", "content": "write 40 words"}],
                                           max_tokens=5)
    assert capped.choices[0].finish_reason == "length" and capped.usage and capped.usage.completion_tokens == 5
    ignored = llama.chat.completions.create(model="m", messages=[{"role": "user", "content": "write 40 words"}],
                                            max_completion_tokens=5)
    assert ignored.choices[0].finish_reason == "stop" and ignored.usage and ignored.usage.completion_tokens > 30


def test_llamacpp_sends_ping_comments_before_the_first_token(raw: httpx2.Client, llama: openai.OpenAI) -> None:
    started = time.monotonic()
    first_data_at = None
    lines: list[str] = []
    with raw.stream("POST", "/llamacpp/v1/chat/completions", json=_chat("echo: late", stream=True),
                    headers={"X-Sandbox-Keepalive": "0.7", "X-Sandbox-Ping": "0.2"}) as response:
        assert response.status_code == 200  # the headers come at once
        for line in response.iter_lines():
            if line.startswith("data: ") and first_data_at is None:
                first_data_at = time.monotonic() - started
            lines.append(line)
    pings = [line for line in lines if line.startswith(": ping - ")]
    assert len(pings) == 3
    assert lines.index(pings[-1]) < min(i for i, line in enumerate(lines) if line.startswith("data: "))
    assert first_data_at is not None and first_data_at >= 0.7
    # The SDK skips comments; the reply is intact. The base URL can set the wait too.
    slow = openai.OpenAI(base_url=str(llama.base_url).replace("/llamacpp/", "/llamacpp/keepalive=0.3/ping=0.1/"),
                         api_key="x", max_retries=0)
    begun = time.monotonic()
    text = "".join(c.choices[0].delta.content or "" for c in slow.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "echo: still here"}], stream=True))
    assert text == "still here" and time.monotonic() - begun >= 0.3


def test_llamacpp_over_its_context_refuses_a_call_and_streams_an_empty_200(raw: httpx2.Client,
                                                                           llama: openai.OpenAI) -> None:
    refused = raw.post("/llamacpp/v1/chat/completions", json=_chat(LONG_PROMPT))
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["message"].startswith("This model's maximum context length is 4096 tokens.")
    assert "None in the completion" in error["message"]
    streamed = raw.post("/llamacpp/v1/chat/completions", json=_chat(LONG_PROMPT, stream=True))
    assert streamed.status_code == 200 and streamed.content == b""
    # The SDK sees a stream that simply ends, with no error.
    assert list(llama.chat.completions.create(model="m", messages=[{"role": "user", "content": LONG_PROMPT}],
                                              stream=True)) == []


def test_llamacpp_stops_a_reply_where_its_context_ends(raw: httpx2.Client) -> None:
    body = raw.post("/llamacpp/n_ctx=200/v1/chat/completions", json=_chat("write 500 words")).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["total_tokens"] == 200


def test_a_cut_stream_ends_cleanly_without_finish_reason_or_done(raw: httpx2.Client, llama: openai.OpenAI) -> None:
    response = raw.post("/llamacpp/v1/chat/completions", json=_chat("echo: a b c d e f", stream=True),
                        headers={"X-Sandbox-Fault": "cut-stream:3"})
    assert response.status_code == 200
    _, data = _events(response.text)
    assert len(data) == 3 and "[DONE]" not in data
    assert all(c["choices"][0]["finish_reason"] is None for c in data)
    # Cut before the end whatever n says; the SDK sees a short reply and no error.
    chunks = list(openai.OpenAI(base_url=str(llama.base_url).replace("/llamacpp/", "/llamacpp/fault=cut-stream:99/"),
                                api_key="x", max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "echo: a b c"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "a b c"
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_llamacpp_answers_json_schema_with_a_python_dump(raw: httpx2.Client, llama: openai.OpenAI) -> None:
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}}}
    response = raw.post("/llamacpp/v1/chat/completions", json=_chat("hi", response_format=fmt))
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/plain")
    assert "/usr/lib/python3/site-packages/llama_cpp/server/app.py" in response.text
    assert "ValidationError" in response.text
    with pytest.raises(openai.InternalServerError):
        llama.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                      response_format=fmt)
    # JSON mode works (a grammar), even without the word in the messages.
    body = raw.post("/llamacpp/v1/chat/completions",
                    json=_chat("echo: hi", response_format={"type": "json_object"})).json()
    assert json.loads(body["choices"][0]["message"]["content"]) == {"reply": "hi"}


@pytest.mark.parametrize("choice", [None, "auto", "required"])
def test_llamacpp_ignores_tools_unless_one_is_forced(llama: openai.OpenAI, choice: str | None) -> None:
    extra: dict[str, Any] = {"tool_choice": choice} if choice else {}
    reply = llama.chat.completions.create(model="m", messages=[{"role": "user", "content": "use get_time"}],
                                          tools=TOOLS, **extra)
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop" and "use get_time" in (reply.choices[0].message.content or "")


def test_llamacpp_calls_a_forced_tool(llama: openai.OpenAI) -> None:
    forced: Any = {"type": "function", "function": {"name": "get_time"}}
    reply = llama.chat.completions.create(model="m", messages=[{"role": "user", "content": "timezone=UTC"}],
                                          tools=TOOLS, tool_choice=forced)
    calls = reply.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_time"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"timezone": "UTC"}  # type: ignore[union-attr]
    assert reply.choices[0].finish_reason == "tool_calls"
    chunks = list(llama.chat.completions.create(model="m", messages=[{"role": "user", "content": "timezone=UTC"}],
                                                tools=TOOLS, tool_choice=forced, stream=True))
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
    assert deltas and deltas[0][0].function and deltas[0][0].function.name == "get_time"


def test_llamacpp_errors_come_as_detail_or_its_own_envelope(raw: httpx2.Client) -> None:
    invalid = raw.post("/llamacpp/v1/chat/completions", json={"model": "m"})
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "messages"]
    bad_role = raw.post("/llamacpp/v1/chat/completions", json={"messages": [{"role": "robot", "content": "x"}]})
    assert bad_role.status_code == 422 and isinstance(bad_role.json()["detail"], list)
    wrong_method = raw.get("/llamacpp/v1/chat/completions")
    assert wrong_method.status_code == 405 and wrong_method.json() == {"detail": "Method Not Allowed"}
    failed = raw.post("/llamacpp/v1/chat/completions", json=_chat("hi"), headers={"X-Sandbox-Fault": "500"})
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "internal_server_error"


# -- vllm ---------------------------------------------------------------------------------------------

def test_vllm_lists_its_model_with_max_model_len(raw: httpx2.Client, vllm: openai.OpenAI) -> None:
    assert [m.id for m in vllm.models.list()] == ["Qwen/Qwen2.5-0.5B-Instruct"]
    assert raw.get("/vllm/v1/models").json()["data"][0]["max_model_len"] == 32768
    assert raw.get("/vllm/n_ctx=8192/v1/models").json()["data"][0]["max_model_len"] == 8192


def test_vllm_streams_usage_only_when_asked_and_checks_the_model(vllm: openai.OpenAI) -> None:
    model = "Qwen/Qwen2.5-0.5B-Instruct"
    messages: Any = [{"role": "user", "content": "echo: x y"}]
    without = list(vllm.chat.completions.create(model=model, messages=messages, stream=True))
    assert all(c.usage is None for c in without) and without[-1].choices[0].finish_reason == "stop"
    asked = list(vllm.chat.completions.create(model=model, messages=messages, stream=True,
                                              stream_options={"include_usage": True}))
    assert asked[-1].choices == [] and asked[-1].usage and asked[-1].usage.completion_tokens == 2
    capped = vllm.chat.completions.create(model=model, messages=[{"role": "user", "content": "write 30 words"}],
                                          max_completion_tokens=4)
    assert capped.choices[0].finish_reason == "length"
    with pytest.raises(openai.NotFoundError) as caught:
        vllm.chat.completions.create(model="gpt-4.1-mini", messages=messages)
    assert caught.value.body == {"object": "error", "message": "The model `gpt-4.1-mini` does not exist.",
                                 "type": "NotFoundError", "param": None, "code": 404}


def test_vllm_refuses_over_its_context_streamed_or_not(raw: httpx2.Client) -> None:
    for stream in (False, True):
        response = raw.post("/vllm/n_ctx=1024/v1/chat/completions",
                            json={"model": "Qwen/Qwen2.5-0.5B-Instruct", "stream": stream,
                                  "messages": [{"role": "user", "content": "word " * 1100}]})
        assert response.status_code == 400
        body = response.json()
        assert body["object"] == "error" and body["code"] == 400
        assert body["message"].startswith("This model's maximum context length is 1024 tokens.")


def test_with_interrupt_on_a_new_request_ends_the_stream_in_progress(sandbox_url: str) -> None:
    """llama-cpp-python's interrupt_requests: the open stream gets [DONE] after its next chunk, no finish_reason."""
    base = _root(sandbox_url) + "/llamacpp/interrupt=1"
    first: list[str] = []

    def stream_slowly() -> None:
        with httpx2.Client(timeout=30) as c:
            response = c.post(base + "/v1/chat/completions", json=_chat("echo: a b c d", stream=True),
                              headers={"X-Sandbox-Keepalive": "0.6"})
            first.append(response.text)

    thread = threading.Thread(target=stream_slowly)
    thread.start()
    time.sleep(0.3)
    second = httpx2.post(base + "/v1/chat/completions", json=_chat("echo: next", stream=True), timeout=30)
    thread.join(10)
    _, data = _events(first[0])
    assert data[-1] == "[DONE]" and len(data) == 2  # the role chunk, then [DONE]
    assert data[0]["choices"][0]["finish_reason"] is None
    _, after = _events(second.text)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in after[:-1]) == "next"


def test_the_openai_profile_cuts_a_stream_short_on_demand_too(sandbox_url: str) -> None:
    with httpx2.Client(base_url=sandbox_url, headers={"Authorization": "Bearer sk-cut"}, timeout=30) as c:
        response = c.post("/chat/completions", headers={"X-Sandbox-Fault": "cut-stream:50"},
                          json={"model": "gpt-4o", "messages": [{"role": "user", "content": "echo: a b c"}],
                                "stream": True, "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    _, data = _events(response.text)
    assert "[DONE]" not in data and len(data) == 4  # the role chunk and three words; no finish, no usage
    assert all(c["choices"][0]["finish_reason"] is None for c in data)


def test_llamacpp_fails_on_a_message_whose_content_is_null(raw: httpx2.Client) -> None:
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None},
               {"role": "user", "content": "again"}]
    response = raw.post("/llamacpp/v1/chat/completions", json={"model": "m", "messages": history})
    assert response.status_code == 500
    assert response.json()["error"]["message"] == 'can only concatenate str (not "NoneType") to str'
    # An assistant turn that only called tools has no content, and that is fine.
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    fine = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_1", "content": "noon"}]
    reply = raw.post("/llamacpp/v1/chat/completions", json={"model": "m", "messages": fine})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "Tool results: get_time: noon"

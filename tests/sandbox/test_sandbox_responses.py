"""The Responses API on the sandbox: replies, tools, reasoning, structured outputs, images, limits,
streams, background responses that resume and cancel, webhooks, errors; every body and event is
checked against the official spec and parsed by the SDK."""

from __future__ import annotations

import base64
import json
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from sandbox_helpers import Spec, WebhookReceiver, wait_for

from sandbox.testing import running_sandbox

EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.queued": "ResponseQueuedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.reasoning_summary_part.added": "ResponseReasoningSummaryPartAddedEvent",
    "response.reasoning_summary_part.done": "ResponseReasoningSummaryPartDoneEvent",
    "response.reasoning_summary_text.delta": "ResponseReasoningSummaryTextDeltaEvent",
    "response.reasoning_summary_text.done": "ResponseReasoningSummaryTextDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "error": "ResponseErrorEvent",
}
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
SECRET = "whsec_" + base64.b64encode(b"sandbox-responses-secret-0123456789").decode()

TIME_TOOL: Any = {
    "type": "function", "name": "get_time", "description": "Current time in a timezone", "strict": True,
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"],
                   "additionalProperties": False},
}
CALC_TOOL: Any = {
    "type": "function", "name": "calculate", "strict": True,
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"],
                   "additionalProperties": False},
}


def png(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = header + struct.pack(">I", zlib.crc32(b"IHDR")) + b"\x00" * 16
    return "data:image/png;base64," + base64.b64encode(data).decode()


def sse(lines: Iterator[str]) -> list[dict[str, Any]]:
    """Events of a Responses stream, checking each `event:` line names its data's type."""
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            event = json.loads(line[6:])
            assert event["type"] == name
            events.append(event)
    return events


def check_response(spec: Spec, body: dict[str, Any]) -> None:
    """Valid against the spec's Response and, strictly (not the SDK's lenient construct), its own type."""
    spec.validate("Response", body)
    Response.model_validate(body)


def check_events(spec: Spec, events: list[dict[str, Any]], first: int = 0) -> None:
    """Each event valid against its schema and the SDK's event union, numbered first, first+1, ... with no gap."""
    assert [e["sequence_number"] for e in events] == list(range(first, first + len(events)))
    for event in events:
        spec.validate(EVENT_SCHEMAS[event["type"]], event)
        STREAM_EVENT.validate_python(event)


def stream_raw(api: httpx2.Client, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    with api.stream("POST", "/responses", json={**body, "stream": True}, headers=headers or {}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return sse(r.iter_lines())


def stats(base_url: str, key: str) -> dict[str, int]:
    r = httpx2.get(base_url.removesuffix("/v1") + "/sandbox/responses/stats", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    return dict(r.json())


@pytest.fixture(scope="module")
def slow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sandbox whose clock runs 10x: a background response is queued for 0.2 s, then 500 events/s."""
    with running_sandbox(tmp_path_factory.mktemp("responses-slow"), time_scale=10, tick_seconds=0.05) as url:
        yield url


def slow_client(url: str, key: str, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, **kwargs)


# -- text -------------------------------------------------------------------------------------------
def test_a_text_reply_is_a_valid_response_the_sdk_reads(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    body = api.post("/responses", json={"model": "gpt-5.4-mini", "input": "hello responses",
                                        "instructions": "Be brief.", "metadata": {"case": "text"}}).json()
    check_response(spec, body)
    assert body["object"] == "response" and body["status"] == "completed" and body["store"] is True
    assert body["instructions"] == "Be brief." and body["metadata"] == {"case": "text"}
    # gpt-5.4 models reason only when asked (effort defaults to none): no reasoning item, no reasoning tokens.
    assert [item["type"] for item in body["output"]] == ["message"] and body["reasoning"]["effort"] == "none"
    usage = body["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    reply = client.responses.create(model="gpt-5.4-mini", input="hello responses", instructions="Be brief.")
    assert reply.output_text.startswith('You said: "hello responses" ')
    assert reply.output_text == body["output"][0]["content"][0]["text"]  # deterministic
    assert reply.usage is not None and reply.usage.input_tokens == usage["input_tokens"]


def test_echo_and_write_n_words_follow_the_chat_rules(client: openai.OpenAI) -> None:
    assert client.responses.create(model="gpt-4.1", input="echo: exactly this").output_text == "exactly this"
    words = client.responses.create(model="gpt-4.1-mini", input="please write 120 words").output_text
    assert len(words.split()) == 120


def test_a_streamed_reply_sends_every_event_in_order(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    events = stream_raw(api, {"model": "gpt-4o", "input": "write 12 words"})
    check_events(spec, events)
    types = [e["type"] for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-5:] == ["response.output_text.delta", "response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    final = events[-1]["response"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == final["output"][0]["content"][0]["text"] and len(text.split()) == 12
    assert next(e for e in events if e["type"] == "response.output_text.done")["text"] == text

    sdk_events = list(client.responses.create(model="gpt-4o", input="write 12 words", stream=True))
    assert [e.type for e in sdk_events] == types
    with client.responses.stream(model="gpt-4o", input="write 12 words") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        done = stream.get_final_response()
    assert "".join(deltas) == done.output_text and len(done.output_text.split()) == 12


# -- tools ------------------------------------------------------------------------------------------
def test_parallel_function_calls_then_a_second_round_with_their_outputs(client: openai.OpenAI, api: httpx2.Client,
                                                                       spec: Spec) -> None:
    ask = "use get_time timezone=Europe/Paris and calculate expression=2+2"
    body = api.post("/responses", json={"model": "gpt-4.1", "input": ask, "tools": [TIME_TOOL, CALC_TOOL]}).json()
    check_response(spec, body)
    calls = body["output"]
    assert [(c["type"], c["name"]) for c in calls] == [("function_call", "get_time"), ("function_call", "calculate")]
    assert json.loads(calls[0]["arguments"]) == {"timezone": "Europe/Paris"}
    assert json.loads(calls[1]["arguments"]) == {"expression": "2+2"}
    assert calls[0]["call_id"] != calls[1]["call_id"] and all(c["id"].startswith("fc_") for c in calls)
    assert body["tools"][0]["name"] == "get_time" and body["tools"][0]["strict"] is True

    first = client.responses.create(model="gpt-4.1", input=ask, tools=[TIME_TOOL, CALC_TOOL])
    history: Any = [{"role": "user", "content": ask}, *[item.model_dump(exclude_none=True) for item in first.output]]
    history += [{"type": "function_call_output", "call_id": c.call_id, "output": f"result {i}"}
                for i, c in enumerate(first.output) if c.type == "function_call"]
    second = client.responses.create(model="gpt-4.1", input=history, tools=[TIME_TOOL, CALC_TOOL])
    assert second.output_text == "Tool results: get_time: result 0; calculate: result 1"

    one = client.responses.create(model="gpt-4.1", input=ask, tools=[TIME_TOOL, CALC_TOOL], parallel_tool_calls=False)
    assert [c.type for c in one.output] == ["function_call"] and one.parallel_tool_calls is False
    none = client.responses.create(model="gpt-4.1", input=ask, tools=[TIME_TOOL, CALC_TOOL], tool_choice="none")
    assert [c.type for c in none.output] == ["message"]
    forced = client.responses.create(model="gpt-4.1", input="hi", tools=[TIME_TOOL, CALC_TOOL],
                                     tool_choice={"type": "function", "name": "calculate"})
    assert [getattr(c, "name", None) for c in forced.output] == ["calculate"]


def test_streamed_function_calls_send_their_arguments_in_pieces(client: openai.OpenAI, api: httpx2.Client,
                                                                spec: Spec) -> None:
    events = stream_raw(api, {"model": "gpt-4.1-mini", "input": "call get_time timezone=UTC and calculate",
                              "tools": [TIME_TOOL, CALC_TOOL]})
    check_events(spec, events)
    final = events[-1]["response"]
    for index, item in enumerate(final["output"]):
        deltas = [e["delta"] for e in events
                  if e["type"] == "response.function_call_arguments.delta" and e["output_index"] == index]
        done = [e for e in events if e["type"] == "response.function_call_arguments.done" and e["output_index"] == index]
        assert len(deltas) > 1 and "".join(deltas) == item["arguments"] == done[0]["arguments"]
        assert done[0]["name"] == item["name"]
        added = next(e for e in events if e["type"] == "response.output_item.added" and e["output_index"] == index)
        assert added["item"]["arguments"] == "" and added["item"]["call_id"] == item["call_id"]
    # The SDK's stream helper rebuilds the same calls (with a reasoning item first on a reasoning model).
    with client.responses.stream(model="gpt-5.5", input="call get_time timezone=UTC and calculate",
                                 tools=[TIME_TOOL, CALC_TOOL], reasoning={"effort": "low", "summary": "auto"}) as stream:
        final = stream.get_final_response()
    assert [i.type for i in final.output] == ["reasoning", "function_call", "function_call"]
    assert [getattr(i, "name", None) for i in final.output[1:]] == ["get_time", "calculate"]
    assert json.loads(getattr(final.output[1], "arguments", "")) == {"timezone": "UTC"}


def test_a_chat_style_nested_function_tool_is_refused(api: httpx2.Client, spec: Spec) -> None:
    r = api.post("/responses", json={"model": "gpt-4.1", "input": "hi",
                                     "tools": [{"type": "function", "function": {"name": "x"}}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0].name"
    spec.validate("ErrorResponse", r.json())


# -- reasoning ----------------------------------------------------------------------------------------
def test_reasoning_items_carry_a_summary_and_encrypted_content_that_round_trips(client: openai.OpenAI,
                                                                              api: httpx2.Client,
                                                                              spec: Spec) -> None:
    ask = "use get_time timezone=UTC"
    request: Any = {"model": "gpt-5.5", "input": ask, "tools": [TIME_TOOL], "store": False,
                    "reasoning": {"effort": "medium", "summary": "auto"}, "include": ["reasoning.encrypted_content"]}
    body = api.post("/responses", json=request).json()
    check_response(spec, body)
    reasoning, call = body["output"]
    assert reasoning["type"] == "reasoning" and call["type"] == "function_call"
    assert reasoning["summary"][0]["type"] == "summary_text" and "get_time" in reasoning["summary"][0]["text"]
    assert reasoning["encrypted_content"].startswith("gAAAAA")
    spent = body["usage"]["output_tokens_details"]["reasoning_tokens"]
    assert spent >= 192 and body["reasoning"] == {"effort": "medium", "summary": "auto"}

    first = client.responses.create(**request)
    assert first.output[0].type == "reasoning" and first.output[0].encrypted_content
    reasoning_tokens = first.usage.output_tokens_details.reasoning_tokens if first.usage else 0
    items: Any = [item.model_dump(exclude_none=True) for item in first.output]
    result: Any = {"type": "function_call_output", "call_id": first.output[1].call_id, "output": "12:00"}
    with_reasoning = client.responses.create(model="gpt-5.5", store=False, tools=[TIME_TOOL],
                                             input=[{"role": "user", "content": ask}, *items, result])
    without = client.responses.create(model="gpt-5.5", store=False, tools=[TIME_TOOL],
                                      input=[{"role": "user", "content": ask}, items[1], result])
    assert with_reasoning.output_text == "Tool results: get_time: 12:00"
    assert with_reasoning.usage and without.usage
    # The reasoning passed back is context the model reads again: its tokens are input.
    assert with_reasoning.usage.input_tokens - without.usage.input_tokens == reasoning_tokens

    tampered = {**items[0], "encrypted_content": items[0]["encrypted_content"][:-4] + "AAAA"}
    r = api.post("/responses", json={"model": "gpt-5.5", "store": False, "tools": [TIME_TOOL],
                                     "input": [{"role": "user", "content": ask}, tampered, items[1], result]})
    assert r.status_code == 400 and "could not be verified" in r.json()["error"]["message"]
    # Without include, a store=false reasoning item cannot be sent back: the API has nothing to look up.
    bare = {k: v for k, v in items[0].items() if k != "encrypted_content"}
    r = api.post("/responses", json={"model": "gpt-5.5", "store": False, "tools": [TIME_TOOL],
                                     "input": [{"role": "user", "content": ask}, bare, items[1], result]})
    assert r.status_code == 404 and "Items are not persisted when `store` is set to false" in r.json()["error"]["message"]
    r = api.post("/responses", json={"model": "gpt-5.5", "store": False, "input": [{"role": "user", "content": ask},
                                                                                   items[0]]})
    assert r.status_code == 400 and "without its required following item" in r.json()["error"]["message"]


def test_reasoning_summaries_stream_part_by_part(api: httpx2.Client, spec: Spec) -> None:
    events = stream_raw(api, {"model": "gpt-5.4", "input": "write 8 words",
                              "reasoning": {"effort": "high", "summary": "detailed"}})
    check_events(spec, events)
    final = events[-1]["response"]
    reasoning = final["output"][0]
    assert reasoning["type"] == "reasoning" and len(reasoning["summary"]) == 2
    for index, part in enumerate(reasoning["summary"]):
        text = "".join(e["delta"] for e in events
                       if e["type"] == "response.reasoning_summary_text.delta" and e["summary_index"] == index)
        assert text == part["text"]
    kinds = [e["type"] for e in events]
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index("response.output_text.delta")
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] >= 512


def test_reasoning_settings_the_model_does_not_take_are_refused(api: httpx2.Client) -> None:
    r = api.post("/responses", json={"model": "gpt-4o", "input": "hi", "reasoning": {"effort": "low"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "reasoning.effort"
    r = api.post("/responses", json={"model": "gpt-5.5", "input": "hi", "reasoning": {"effort": "minimal"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_value"
    assert "'none', 'low', 'medium', 'high', and 'xhigh'" in r.json()["error"]["message"]


# -- structured outputs, images, limits ----------------------------------------------------------------
def test_strict_json_schema_output_is_valid_against_the_schema(client: openai.OpenAI, api: httpx2.Client) -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["city", "days"],
              "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}}
    reply = client.responses.create(model="gpt-5.4-nano", input="plan a trip city=Lyon",
                                    text={"format": {"type": "json_schema", "name": "trip", "schema": schema,
                                                     "strict": True}})
    data = json.loads(reply.output_text)
    jsonschema.validate(data, schema)
    assert data["city"] == "Lyon"
    assert reply.text is not None and reply.text.format is not None and reply.text.format.type == "json_schema"

    loose = {"type": "object", "properties": {"city": {"type": "string"}}}
    r = api.post("/responses", json={"model": "gpt-5.4-nano", "input": "x", "text": {
        "format": {"type": "json_schema", "name": "trip", "schema": loose, "strict": True}}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "text.format"
    r = api.post("/responses", json={"model": "gpt-4.1", "input": "hello", "text": {"format": {"type": "json_object"}}})
    assert r.status_code == 400 and "'json'" in r.json()["error"]["message"]
    ok = client.responses.create(model="gpt-4.1", input="answer in json", text={"format": {"type": "json_object"}})
    assert isinstance(json.loads(ok.output_text), dict)


def test_an_image_input_is_seen_and_counted(client: openai.OpenAI) -> None:
    content: Any = [{"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": png(64, 64), "detail": "high"}]
    reply = client.responses.create(model="gpt-5.4-mini", input=[{"role": "user", "content": content}])
    assert reply.output_text.startswith("I see 1 image (image/png, 64x64). ")
    text_only = client.responses.create(model="gpt-5.4-mini", input=[{"role": "user", "content": content[:1]}])
    assert reply.usage and text_only.usage
    assert reply.usage.input_tokens - text_only.usage.input_tokens == 85 + 170  # one 512px tile at detail high
    with_file = client.responses.create(model="gpt-4.1", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "echo: read it"},
        {"type": "input_file", "filename": "a.txt", "file_data": "data:text/plain;base64,aGk="}]}])
    assert with_file.output_text == "read it"


def test_a_reply_over_max_output_tokens_is_incomplete(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    body = api.post("/responses", json={"model": "gpt-4.1", "input": "write 300 words", "max_output_tokens": 40}).json()
    check_response(spec, body)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 40 and body["output"][0]["status"] == "incomplete"
    assert body["completed_at"] is None
    events = stream_raw(api, {"model": "gpt-4.1", "input": "write 300 words", "max_output_tokens": 40})
    check_events(spec, events)
    assert events[-1]["type"] == "response.incomplete"
    # A reasoning model can spend the whole budget thinking: no message at all.
    thought = client.responses.create(model="gpt-5.5", input="hi", max_output_tokens=100, reasoning={"effort": "high"})
    assert thought.status == "incomplete" and [i.type for i in thought.output] == ["reasoning"]
    r = api.post("/responses", json={"model": "gpt-4.1", "input": "hi", "max_output_tokens": 5})
    assert r.status_code == 400 and r.json()["error"]["code"] == "integer_below_min_value"


# -- stored responses and errors ---------------------------------------------------------------------------
def test_only_stored_responses_can_be_retrieved(client: openai.OpenAI, sandbox_url: str, spec: Spec,
                                                api: httpx2.Client) -> None:
    stored = client.responses.create(model="gpt-4o-mini", input="echo: keep me")
    again = client.responses.retrieve(stored.id)
    assert again.output_text == "keep me" and again.status == "completed"
    check_response(spec, api.get(f"/responses/{stored.id}").json())
    unstored = client.responses.create(model="gpt-4o-mini", input="echo: forget me", store=False)
    assert unstored.to_dict()["store"] is False
    for missing in (unstored.id, "resp_doesnotexist"):
        r = api.get(f"/responses/{missing}")
        assert r.status_code == 404 and r.json()["error"]["message"] == f"Response with id '{missing}' not found."
        spec.validate("ErrorResponse", r.json())
    with pytest.raises(openai.NotFoundError):
        slow_client(sandbox_url, "sk-someone-else").responses.retrieve(stored.id)  # another key cannot see it
    follow_up = client.responses.create(model="gpt-4o-mini", input="echo: next", previous_response_id=stored.id)
    assert follow_up.previous_response_id == stored.id and follow_up.output_text == "next"
    assert follow_up.usage and stored.usage and follow_up.usage.input_tokens > stored.usage.input_tokens
    client.responses.delete(stored.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(stored.id)


def test_bad_requests_get_the_real_error_envelope(api: httpx2.Client, spec: Spec) -> None:
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"model": "gpt-4.1"}, 400, "input"),
        ({"input": "hi"}, 400, "model"),
        ({"model": "gpt-4.1", "input": "hi", "frobnicate": 1}, 400, "frobnicate"),
        ({"model": "gpt-nope", "input": "hi"}, 404, None),
        ({"model": "text-embedding-3-small", "input": "hi"}, 400, "model"),
        ({"model": "gpt-4.1", "input": "hi", "background": True, "store": False}, 400, "background"),
        ({"model": "gpt-4.1", "input": "hi", "previous_response_id": "resp_nope"}, 404, "previous_response_id"),
        ({"model": "gpt-4.1", "input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]},
         400, "input"),
        ({"model": "gpt-4.1", "input": "hi", "include": ["everything"]}, 400, "include"),
    ]
    for body, status, param in cases:
        r = api.post("/responses", json=body)
        assert r.status_code == status, (body, r.text)
        spec.validate("ErrorResponse", r.json())
        assert r.json()["error"]["param"] == param, (body, r.text)


def test_faults_apply_to_responses(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-4.1", input="hi", extra_headers={"X-Sandbox-Fault": "429"})
    events = stream_raw(api, {"model": "gpt-4.1", "input": "write 30 words"}, {"X-Sandbox-Fault": "stream-error:5"})
    check_events(spec, events)
    assert len(events) == 6 and events[-1]["type"] == "error" and events[-1]["sequence_number"] == 5
    with pytest.raises(httpx2.HTTPError):
        stream_raw(api, {"model": "gpt-4.1", "input": "write 30 words"}, {"X-Sandbox-Fault": "break-stream:5"})


def test_a_failing_response_ends_its_stream_with_response_failed(api: httpx2.Client, spec: Spec) -> None:
    events = stream_raw(api, {"model": "gpt-4.1", "input": "write 20 words", "metadata": {"sandbox_fail": "true"}})
    check_events(spec, events)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"


# -- background ----------------------------------------------------------------------------------------------
def test_a_background_response_is_queued_then_in_progress_then_completed(slow_url: str, spec: Spec) -> None:
    key = "sk-background-poll"
    client = slow_client(slow_url, key)
    created = client.responses.create(model="gpt-5.4", input="write 150 words", background=True)
    assert created.status == "queued" and created.background is True and created.output == []
    seen: list[str] = [created.status or ""]

    def poll() -> str:
        status = client.responses.retrieve(created.id).status or ""
        if status != seen[-1]:
            seen.append(status)
        return status

    wait_for(poll, lambda s: s == "completed")
    assert seen == ["queued", "in_progress", "completed"]
    done = client.responses.retrieve(created.id)
    assert len(done.output_text.split()) == 150 and done.usage is not None and done.completed_at is not None
    assert done.completed_at >= done.created_at
    with httpx2.Client(base_url=slow_url, headers={"Authorization": f"Bearer {key}"}) as raw:
        check_response(spec, raw.get(f"/responses/{created.id}").json())
    assert stats(slow_url, key)["responses_generated"] == 1  # polling never generates it again


def test_a_background_stream_resumes_after_starting_after_without_loss_or_repeat(slow_url: str, spec: Spec) -> None:
    key = "sk-background-resume"
    client = slow_client(slow_url, key)
    first: list[Any] = []
    stream = client.responses.create(model="gpt-5.4", input="write 400 words", background=True, stream=True,
                                     reasoning={"effort": "low", "summary": "auto"})
    for event in stream:
        first.append(event)
        if len(first) == 40:
            break  # the worker dies mid-stream
    stream.close()
    assert client.responses.retrieve(first[0].response.id).status == "in_progress"  # it goes on without us
    assert first[0].type == "response.created" and first[0].response.status == "queued"
    assert first[1].type == "response.queued"
    response_id = first[0].response.id
    last = first[-1].sequence_number
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=last))
    numbers = [e.sequence_number for e in first + rest]
    assert numbers == list(range(len(numbers)))  # nothing repeated, nothing lost
    assert rest[-1].type == "response.completed"
    text = "".join(e.delta for e in first + rest if e.type == "response.output_text.delta")
    assert text == rest[-1].response.output_text and len(text.split()) == 400
    with httpx2.Client(base_url=slow_url, headers={"Authorization": f"Bearer {key}"}) as raw, \
            raw.stream("GET", f"/responses/{response_id}", params={"stream": "true", "starting_after": 2}) as r:
        replayed = sse(r.iter_lines())
    check_events(spec, replayed, first=3)
    assert stats(slow_url, key) == {"object": "sandbox.responses.stats", "create_requests": 1,
                                    "responses_generated": 1, "background_created": 1, "stream_resumes": 2,
                                    "cancel_requests": 0}


def test_a_background_response_can_be_cancelled(slow_url: str, spec: Spec, webhook_receiver: WebhookReceiver) -> None:
    key = "sk-background-cancel"
    client = slow_client(slow_url, key, webhook_secret=SECRET)
    registered = httpx2.post(slow_url.removesuffix("/v1") + "/sandbox/webhooks", headers={"Authorization": f"Bearer {key}"},
                             json={"url": webhook_receiver.url, "secret": SECRET})
    assert registered.status_code == 200
    long = client.responses.create(model="gpt-5.4-mini", input="write 3000 words", background=True)
    wait_for(lambda: client.responses.retrieve(long.id).status, lambda s: s == "in_progress")
    cancelled = client.responses.cancel(long.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(long.id).status == "cancelled"
    assert client.responses.cancel(long.id).status == "cancelled"  # cancelling twice is harmless
    with httpx2.Client(base_url=slow_url, headers={"Authorization": f"Bearer {key}"}) as raw:
        check_response(spec, raw.get(f"/responses/{long.id}").json())
        with raw.stream("GET", f"/responses/{long.id}", params={"stream": "true"}) as r:
            replay = sse(r.iter_lines())
        assert replay and replay[-1]["type"] not in ("response.completed", "response.incomplete")
        short = client.responses.create(model="gpt-4.1", input="echo: quick", background=True)
        wait_for(lambda: client.responses.retrieve(short.id).status, lambda s: s == "completed")
        r = raw.post(f"/responses/{short.id}/cancel")
        assert r.status_code == 400
        foreground = client.responses.create(model="gpt-4.1", input="echo: now")
        assert raw.post(f"/responses/{foreground.id}/cancel").status_code == 400
        assert raw.get(f"/responses/{foreground.id}", params={"stream": "true"}).status_code == 400

    wanted = {("response.cancelled", long.id), ("response.completed", short.id)}
    wait_for(lambda: {(e["type"], e["data"]["id"]) for e in webhook_receiver.events()}, lambda got: wanted <= got)
    time.sleep(0.2)
    for headers, body in webhook_receiver.received:
        event: Any = client.webhooks.unwrap(body, headers)
        assert (event.type, event.data.id) in wanted
        spec.validate("WebhookResponse" + event.type.split(".")[1].capitalize(), json.loads(body))
    assert sorted((e["type"], e["data"]["id"]) for e in webhook_receiver.events()) == sorted(wanted)


def test_a_failed_background_response_says_so_and_sends_its_webhook(slow_url: str,
                                                                   webhook_receiver: WebhookReceiver) -> None:
    key = "sk-background-fail"
    client = slow_client(slow_url, key, webhook_secret=SECRET)
    httpx2.post(slow_url.removesuffix("/v1") + "/sandbox/webhooks", headers={"Authorization": f"Bearer {key}"},
                json={"url": webhook_receiver.url, "secret": SECRET})
    created = client.responses.create(model="gpt-4.1", input="write 20 words", background=True,
                                      metadata={"sandbox_fail": "true"})
    done = wait_for(lambda: client.responses.retrieve(created.id), lambda r: r.status == "failed")
    assert done.error is not None and done.error.code == "server_error"
    wait_for(webhook_receiver.events, lambda got: [(e["type"], e["data"]["id"]) for e in got]
             == [("response.failed", created.id)])


# -- chat completions, models ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5", "gpt-5.4-2026-03-05"])
def test_chat_completions_refuses_function_tools_with_reasoning_effort_on_current_models(
        client: openai.OpenAI, api: httpx2.Client, spec: Spec, model: str) -> None:
    tool = {"type": "function", "function": {k: v for k, v in TIME_TOOL.items() if k != "type"}}
    body = {"model": model, "messages": [{"role": "user", "content": "use get_time"}], "tools": [tool],
            "reasoning_effort": "low"}
    r = api.post("/chat/completions", json=body)
    assert r.status_code == 400
    spec.validate("ErrorResponse", r.json())
    assert r.json()["error"] == {
        "message": f"Function tools with reasoning_effort are not supported for {model} in /v1/chat/completions. "
                   "Please use /v1/responses instead.",
        "type": "invalid_request_error", "param": "reasoning_effort", "code": None}
    # Without the effort, without tools, or on /v1/responses, the same request is answered.
    assert api.post("/chat/completions", json={**body, "reasoning_effort": "none"}).status_code == 200
    assert api.post("/chat/completions", json={k: v for k, v in body.items() if k != "reasoning_effort"}).status_code == 200
    assert api.post("/chat/completions", json={k: v for k, v in body.items() if k != "tools"}).status_code == 200
    reply = client.responses.create(model=model, input="use get_time", tools=[TIME_TOOL], reasoning={"effort": "low"})
    assert [i.type for i in reply.output] == ["reasoning", "function_call"]


def test_older_and_reasoning_by_default_models_follow_their_own_rule(api: httpx2.Client) -> None:
    tool = {"type": "function", "function": {k: v for k, v in TIME_TOOL.items() if k != "type"}}
    messages = [{"role": "user", "content": "use get_time"}]
    for model in ("gpt-5", "o3", "gpt-4.1"):
        effort = {"reasoning_effort": "low"} if model != "gpt-4.1" else {}
        r = api.post("/chat/completions", json={"model": model, "messages": messages, "tools": [tool], **effort})
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "tool_calls"
    # gpt-5.6 models reason unless told not to, so tools are refused even without reasoning_effort.
    r = api.post("/chat/completions", json={"model": "gpt-5.6-luna", "messages": messages, "tools": [tool]})
    assert r.status_code == 400 and r.json()["error"]["message"].endswith(
        "To use function tools, use /v1/responses or set reasoning_effort to 'none'.")


def test_the_models_list_has_todays_models_and_the_shutdown_dates(client: openai.OpenAI, api: httpx2.Client,
                                                                  spec: Spec) -> None:
    spec.validate("ListModelsResponse", api.get("/models").json())
    models = {m.id: m for m in client.models.list()}
    for current in ("gpt-5.5", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.6-terra", "gpt-5.6-luna"):
        assert models[current].shutdown_date is None
    expected = {"gpt-5": "2026-12-11", "gpt-5-mini": "2026-12-11", "gpt-5-nano": "2026-12-11", "o3": "2026-12-11",
                "gpt-4o": "2027-01-14", "gpt-4o-mini": "2027-01-14", "gpt-4.1": "2027-01-14",
                "gpt-4.1-mini": "2027-01-14", "o4-mini": "2026-10-23", "gpt-4.1-nano": "2026-10-23"}
    assert {m: models[m].shutdown_date for m in expected} == expected


def test_every_event_type_the_sandbox_emits_is_valid_against_the_spec(api: httpx2.Client, slow_url: str,
                                                                      spec: Spec) -> None:
    seen: set[str] = set()
    bodies: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"model": "gpt-5.4", "input": "use get_time", "tools": [TIME_TOOL],
          "reasoning": {"effort": "low", "summary": "concise"}}, {}),
        ({"model": "gpt-5.4", "input": "write 5 words", "reasoning": {"effort": "low", "summary": "auto"}}, {}),
        ({"model": "gpt-4.1", "input": "write 300 words", "max_output_tokens": 16}, {}),
        ({"model": "gpt-4.1", "input": "write 20 words", "metadata": {"sandbox_fail": "true"}}, {}),
        ({"model": "gpt-4.1", "input": "write 20 words"}, {"X-Sandbox-Fault": "stream-error:3"}),
    ]
    for body, headers in bodies:
        events = stream_raw(api, body, headers)
        check_events(spec, events)
        seen |= {e["type"] for e in events}
    with httpx2.Client(base_url=slow_url, headers={"Authorization": "Bearer sk-all-events"}) as raw, \
            raw.stream("POST", "/responses", json={"model": "gpt-4.1", "input": "hi", "stream": True,
                                                   "background": True}) as r:
        events = sse(r.iter_lines())
    check_events(spec, events)
    seen |= {e["type"] for e in events}
    assert seen == set(EVENT_SCHEMAS)


def test_state_of_background_responses_survives_a_restart(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, time_scale=1000) as url:
        client = slow_client(url, "sk-restart")
        created = client.responses.create(model="gpt-4.1", input="echo: still here", background=True)
        wait_for(lambda: client.responses.retrieve(created.id).status, lambda s: s == "completed")
    with running_sandbox(tmp_path, time_scale=1000) as url:
        again = slow_client(url, "sk-restart").responses.retrieve(created.id)
        assert again.status == "completed" and again.output_text == "still here"


def test_a_plain_response_builds_no_stream_events_and_reads_back_as_created(tmp_path: Path) -> None:
    """Events (one per word) are built for streams, background responses and failures only."""
    from sandbox.config import SandboxConfig
    from sandbox.models_data import BASE_MODELS_BY_ID
    from sandbox.responses_service import ResponsesService
    from sandbox.state import SandboxState

    service = ResponsesService(SandboxState(SandboxConfig(data_dir=tmp_path)))
    spec = BASE_MODELS_BY_ID["gpt-4.1"]
    plain = service.create({"model": "gpt-4.1", "input": "write 50 words"}, spec, "sk-plain")
    assert plain.events == [] and plain.doc is not None and service._events == {}
    assert service.view(plain.doc) == plain.response and plain.response["status"] == "completed"
    streamed = service.create({"model": "gpt-4.1", "input": "write 5 words", "stream": True}, spec, "sk-plain")
    assert streamed.events[-1]["type"] == "response.completed" and streamed.events[-1]["response"] == streamed.response
    failing = service.create({"model": "gpt-4.1", "input": "write 20 words", "metadata": {"sandbox_fail": "true"}},
                             spec, "sk-plain")
    assert failing.response["status"] == "failed" and failing.doc is not None
    assert service.view(failing.doc)["status"] == "failed"

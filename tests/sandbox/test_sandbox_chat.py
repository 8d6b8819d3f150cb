"""Chat Completions: reply rules, streams, tools, structured outputs, images, limits and errors."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel
from sandbox_helpers import Spec

from sandbox.tokens import count

TIME_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string"}},
            "required": ["timezone"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
CALC_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "calculate",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}, "precision": {"type": "integer", "minimum": 0,
                                                                            "maximum": 10}},
            "required": ["expression"],
        },
    },
}


def user(text: str) -> Any:  # the SDK wants its TypedDicts; a plain list is what callers send
    return [{"role": "user", "content": text}]


def png(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = header + struct.pack(">I", zlib.crc32(b"IHDR")) + b"\x00" * 16
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_it_quotes_the_last_user_message(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    body = api.post("/chat/completions", json={"model": "gpt-4o", "messages": user("hello sandbox")}).json()
    spec.validate("CreateChatCompletionResponse", body)
    reply = client.chat.completions.create(model="gpt-4o", messages=user("hello sandbox"))
    assert reply.choices[0].message.content is not None
    assert reply.choices[0].message.content.startswith('You said: "hello sandbox" ')
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == body["choices"][0]["message"]["content"]  # deterministic


def test_it_echoes_text_verbatim(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4.1", messages=user("echo: exactly this, please"))
    assert reply.choices[0].message.content == "exactly this, please"


def test_it_writes_the_number_of_words_asked_for(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4.1-mini", messages=user("please write 250 words"))
    assert len((reply.choices[0].message.content or "").split()) == 250


def test_it_counts_prompt_tokens_with_the_standard_overhead(client: openai.OpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?", "name": "alice"},
    ]
    reply = client.chat.completions.create(model="gpt-4o", messages=messages)
    expected = 3
    for m in messages:
        expected += 3 + sum(count(v, "o200k_base") for v in m.values())
        expected += 1 if "name" in m else 0
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == expected
    assert reply.usage.completion_tokens == count(reply.choices[0].message.content or "", "o200k_base")


def test_it_uses_cl100k_for_older_models(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-3.5-turbo", messages=user("echo: naïve café"))
    assert reply.usage is not None
    assert reply.usage.completion_tokens == count("naïve café", "cl100k_base")


def test_it_reports_reasoning_tokens_for_reasoning_models(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="o4-mini", messages=user("hi"), reasoning_effort="high")
    assert reply.usage is not None and reply.usage.completion_tokens_details is not None
    reasoning = reply.usage.completion_tokens_details.reasoning_tokens or 0
    assert reasoning >= 512
    assert reply.usage.completion_tokens == reasoning + count(reply.choices[0].message.content or "", "o200k_base")


def test_it_reports_cached_tokens_when_a_long_prefix_repeats(client: openai.OpenAI) -> None:
    system: Any = {"role": "system", "content": "policy " * 1500}
    first = client.chat.completions.create(model="gpt-4o", messages=[system, *user("one")])
    second = client.chat.completions.create(model="gpt-4o", messages=[system, *user("two")])
    assert first.usage and first.usage.prompt_tokens_details
    assert second.usage and second.usage.prompt_tokens_details
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert cached >= 1024 and cached % 128 == 0 and cached <= second.usage.prompt_tokens


def test_it_streams_chunks_shaped_like_the_real_api(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    r = api.post("/chat/completions", json={"model": "gpt-4o", "messages": user("stream me"), "stream": True,
                                            "stream_options": {"include_usage": True}})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in r.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        spec.validate("CreateChatCompletionStreamResponse", chunk)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith('You said: "stream me"')

    stream = client.chat.completions.create(model="gpt-4o", messages=user("stream me"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text


def test_it_streams_parallel_tool_calls_in_pieces(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4.1",
        messages=user("call get_time and calculate with timezone=Europe/Paris expression=2+2"),
        tools=[TIME_TOOL, CALC_TOOL],
    ) as stream:
        pieces = 0
        for event in stream:
            pieces += event.type == "tool_calls.function.arguments.delta"
        final = stream.get_final_completion()
    calls: Any = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_time", "calculate"]
    assert json.loads(calls[0].function.arguments) == {"timezone": "Europe/Paris"}
    assert json.loads(calls[1].function.arguments)["expression"] == "2+2"
    assert final.choices[0].finish_reason == "tool_calls"
    assert pieces > 4


def test_it_makes_only_one_call_when_parallel_tool_calls_is_false(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=user("use get_time then calculate"),
                                           tools=[TIME_TOOL, CALC_TOOL], parallel_tool_calls=False)
    assert len(reply.choices[0].message.tool_calls or []) == 1


def test_it_honours_tool_choice(client: openai.OpenAI) -> None:
    tools: Any = [TIME_TOOL, CALC_TOOL]
    none = client.chat.completions.create(model="gpt-4o", messages=user("use get_time"), tools=tools,
                                          tool_choice="none")
    assert none.choices[0].message.tool_calls is None
    required = client.chat.completions.create(model="gpt-4o", messages=user("hello"), tools=tools,
                                              tool_choice="required")
    assert len(required.choices[0].message.tool_calls or []) == 1
    named = client.chat.completions.create(model="gpt-4o", messages=user("hello"), tools=tools,
                                           tool_choice={"type": "function", "function": {"name": "calculate"}})
    calls: Any = named.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["calculate"]
    auto = client.chat.completions.create(model="gpt-4o", messages=user("hello"), tools=tools)
    assert auto.choices[0].message.tool_calls is None


def test_it_uses_tool_results_in_the_next_reply(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="gpt-4o", messages=user("use get_time timezone=UTC"),
                                           tools=[TIME_TOOL])
    call = (first.choices[0].message.tool_calls or [])[0]
    messages: Any = [
        *user("use get_time timezone=UTC"),
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "12:00"},
    ]
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[TIME_TOOL])
    assert second.choices[0].message.content == "Tool results: get_time: 12:00"


class Address(BaseModel):
    street: str
    city: str
    postcode: str | None


class Person(BaseModel):
    name: str
    age: int
    role: str
    addresses: list[Address]
    active: bool
    score: float


def test_it_answers_structured_outputs_the_sdk_can_parse(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(model="gpt-4o", messages=user("a person, name=Ada age=36"),
                                               response_format=Person)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person)
    assert person.name == "Ada" and person.age == 36


def test_it_satisfies_strict_schemas_with_enums_anyof_and_refs(client: openai.OpenAI) -> None:
    from jsonschema import Draft202012Validator

    schema = {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["cat", "dog"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "owner": {"anyOf": [{"$ref": "#/$defs/owner"}, {"type": "null"}]},
            "weight": {"type": ["number", "null"]},
            "count": {"type": "integer"},
            "child": {"$ref": "#/$defs/node"},
        },
        "required": ["kind", "tags", "owner", "weight", "count", "child"],
        "additionalProperties": False,
        "$defs": {
            "owner": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
                      "additionalProperties": False},
            "node": {"type": "object", "properties": {"value": {"type": "string"},
                                                      "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
                     "required": ["value", "next"], "additionalProperties": False},
        },
    }
    reply = client.chat.completions.create(
        model="gpt-4.1", messages=user("describe kind=dog"),
        response_format={"type": "json_schema", "json_schema": {"name": "pet", "schema": schema, "strict": True}},
    )
    document = json.loads(reply.choices[0].message.content or "")
    Draft202012Validator(schema).validate(document)
    assert document["kind"] == "dog"


def test_it_rejects_a_strict_schema_without_additional_properties_false(client: openai.OpenAI, spec: Spec) -> None:
    schema: Any = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(
            model="gpt-4o", messages=user("x"),
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema, "strict": True}},
        )
    assert exc.value.param == "response_format"
    assert "'additionalProperties' is required to be supplied and to be false" in exc.value.message
    spec.validate("ErrorResponse", exc.value.response.json())


def test_it_rejects_a_strict_schema_with_a_property_not_required(client: openai.OpenAI) -> None:
    schema: Any = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
              "required": ["a"], "additionalProperties": False}
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(
            model="gpt-4o", messages=user("x"),
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema, "strict": True}},
        )
    assert "Missing 'b'" in exc.value.message


def test_it_answers_json_mode_with_a_json_object(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=user("answer in json"),
                                           response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=user("no keyword"),
                                       response_format={"type": "json_object"})
    assert exc.value.param == "messages"


def test_it_describes_and_counts_images(client: openai.OpenAI) -> None:
    content: Any = [{"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": png(64, 64), "detail": "high"}}]
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert (reply.choices[0].message.content or "").startswith("I see 1 image (image/png, 64x64).")
    low: Any = [{"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}]
    reply_low = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": low}])
    assert reply.usage and reply_low.usage
    # 64x64 at high detail is one tile (85 + 170); low detail is 85.
    assert reply.usage.prompt_tokens - reply_low.usage.prompt_tokens == 170


def test_it_cuts_the_reply_at_max_tokens_with_finish_reason_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=user("please write 100 words"), max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage and reply.usage.completion_tokens == 5
    stream = client.chat.completions.create(model="gpt-5-mini", messages=user("please write 100 words"),
                                            max_completion_tokens=300, stream=True)
    finishes = [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]


def test_it_returns_n_choices_and_honours_stop(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=user("hello"), n=3, stop=["sandbox"])
    assert [c.index for c in reply.choices] == [0, 1, 2]
    for choice in reply.choices:
        assert "sandbox" not in (choice.message.content or "")


def test_it_gives_the_same_reply_for_the_same_seed(client: openai.OpenAI) -> None:
    a = client.chat.completions.create(model="gpt-4o", messages=user("hello"), seed=7)
    b = client.chat.completions.create(model="gpt-4o", messages=user("hello"), seed=7)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_it_rejects_invalid_parameters_with_the_param_named(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=user("x"), temperature=3)
    assert exc.value.param == "temperature" and exc.value.code == "decimal_above_max_value"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert exc.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="o3", messages=user("x"), max_tokens=10)
    assert exc.value.param == "max_tokens" and exc.value.code == "unsupported_parameter"


def test_it_rejects_a_prompt_longer_than_the_context_window(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=user("word " * 17000))
    assert exc.value.code == "context_length_exceeded"


def test_it_breaks_a_stream_off_on_demand(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-4o", messages=user("please write 50 words"), stream=True,
                                            extra_headers={"X-Sandbox-Fault": "break-stream:3"})
    received = 0
    with pytest.raises((openai.APIError, httpx2.HTTPError)):
        for _ in stream:
            received += 1
    assert received <= 3


def test_it_ends_a_stream_with_an_error_event_on_demand(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-4o", messages=user("please write 50 words"), stream=True,
                                            extra_headers={"X-Sandbox-Fault": "stream-error:3"})
    received = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:  # the SDK raises on the error event, as it does against OpenAI
            received.append(chunk)
    assert len(received) == 3 and "server had an error" in exc.value.message


def test_it_rejects_unknown_arguments_and_non_chat_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=user("x"), extra_body={"temperatur": 1})
    assert exc.value.param == "temperatur"
    with pytest.raises(openai.NotFoundError) as not_chat:
        client.chat.completions.create(model="text-embedding-3-small", messages=user("x"))
    assert "not a chat model" in not_chat.value.message


def test_it_matches_tool_names_as_whole_words(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=user("what is get_timezone?"), tools=[TIME_TOOL])
    assert reply.choices[0].message.tool_calls is None


def test_it_rejects_a_strict_tool_whose_schema_strict_mode_refuses(client: openai.OpenAI) -> None:
    loose: Any = {"type": "function", "function": {"name": "f", "strict": True, "parameters": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=user("use f"), tools=[loose])
    assert exc.value.param == "tools"


def test_a_paced_stream_arrives_token_by_token(tmp_path: Any) -> None:
    import time

    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path, ttft_ms=150, tokens_per_second=100) as url:
        c = openai.OpenAI(base_url=url, api_key="sk-paced", max_retries=0)
        started = time.monotonic()
        arrivals = [time.monotonic() - started
                    for chunk in c.chat.completions.create(model="gpt-4o", messages=user("please write 20 words"),
                                                           stream=True)
                    if chunk.choices and chunk.choices[0].delta.content]
    assert arrivals[0] >= 0.15
    assert arrivals[-1] - arrivals[0] >= 0.15  # 19 gaps of 10 ms

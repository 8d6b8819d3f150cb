"""The run on the Responses engine, on a real Celery worker against the sandbox's
/v1/responses over HTTP: streamed text, tools with reasoning (the combination OpenAI's
current models refuse on Chat Completions), reasoning summaries and encrypted reasoning
kept between rounds, structured output, images, incomplete replies, errors, Stop."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from assistants_app import responses_loop, streams
from assistants_app.models import Message, RunStatus
from assistants_app.services import run_cancel, thread_post_message
from project.providers.models import Engine, ProviderConnection, ProviderKind
from tests import factories
from tests.assistants_app.conftest import ended_stream_entries, ended_stream_text, wait_for_run
from tests.factories import make_assistant, make_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]

CALCULATOR = {"name": "calculator", "binding": "builtin", "builtin": "calculator", "description": "maths", "timeout": 5,
              "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                             "required": ["expression"], "additionalProperties": False}}
CLOCK = {"name": "current_time", "binding": "builtin", "builtin": "current_time", "description": "time", "timeout": 5,
         "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"],
                        "additionalProperties": False}}


def _responses_connection(team: factories.Team, base_url: str) -> ProviderConnection:
    connection = factories.make_connection(team, base_url=base_url, kind=ProviderKind.SANDBOX, name="Responses")
    connection.engine = Engine.RESPONSES
    connection.save(update_fields=["engine"])
    return connection


@pytest.fixture
def responses_connection(team: factories.Team, sandbox_url: str) -> ProviderConnection:
    return _responses_connection(team, sandbox_url)


def test_a_reply_streams_and_is_saved_with_the_engine_usage_and_cost(team, owner, responses_connection) -> None:
    assistant = make_assistant(team, responses_connection, model="gpt-4.1-mini")
    _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="echo: Hello **world**, streamed.")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert run.engine == Engine.RESPONSES
    reply = Message.objects.get(run=run, role="assistant")
    assert reply.text == "Hello **world**, streamed."
    assert ended_stream_text(run.pk) == reply.text
    assert run.input_tokens > 0 and run.output_tokens > 0 and run.provider_calls == 1
    assert run.cost_usd is not None and run.cost_usd > 0
    assert run.ttft_ms is not None and run.request_id


def test_tools_with_reasoning_on_a_current_model_keep_their_reasoning_between_rounds(
        team, owner, responses_connection) -> None:
    # gpt-5.5 refuses function tools with reasoning_effort on Chat Completions; on Responses it takes them.
    assistant = make_assistant(team, responses_connection, model="gpt-5.5", reasoning_effort="medium",
                               tools=[CALCULATOR, CLOCK])
    thread = make_thread(team, assistant)
    _, run = thread_post_message(thread=thread, actor=owner,
                                 text="use calculator and current_time expression=6*7 timezone=Asia/Tokyo")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    calls = Message.objects.filter(run=run, role="assistant").exclude(tool_calls=[]).get()
    assert [c["function"]["name"] for c in calls.tool_calls] == ["calculator", "current_time"]
    # The round's reasoning is kept, encrypted, with its calls, and its summary is shown.
    assert [item["type"] for item in calls.reasoning_items] == ["reasoning"]
    assert calls.reasoning_items[0]["encrypted_content"].startswith("gAAAAA")
    assert "calculator" in calls.reasoning_summary
    results = {m.tool_name: m.text for m in Message.objects.filter(run=run, role="tool")}
    assert results["calculator"] == "6*7 = 42"
    final = Message.objects.filter(run=run, role="assistant", tool_calls=[]).get()
    assert final.text.startswith("Tool results: calculator: 6*7 = 42; current_time:")
    assert final.reasoning_items and final.reasoning_summary
    assert run.provider_calls == 2 and run.reasoning_tokens > 0
    thinking = ended_stream_text(run.pk, "thinking")
    assert final.reasoning_summary.split("\n")[0] in thinking  # streamed live, as saved

    # The next turn sends the replies back with their reasoning items: the sandbox checks each
    # item's signature and counts its reasoning tokens as input, as OpenAI does.
    _, second = thread_post_message(thread=thread, actor=owner, text="echo: thanks")
    second = wait_for_run(second.pk)
    assert second.status == RunStatus.SUCCEEDED, (second.status, second.error)
    sent = responses_loop.input_items(*_history(thread), model="gpt-5.5")
    assert [item.get("type") or item["role"] for item in sent][:6] == [
        "user", "reasoning", "function_call", "function_call", "function_call_output", "function_call_output"]


def _history(thread: Any) -> tuple[list[dict[str, Any]], list[Message]]:
    from assistants_app.conversation import history_with_sources
    from project.providers.model_facts import model_facts

    version = thread.assistant.current_version
    history, sources = history_with_sources(thread=thread, version=version, facts=model_facts(version.model))
    return history.messages, sources


def test_the_same_tools_with_reasoning_fail_on_chat_completions_with_openais_message(team, owner, sandbox_url) -> None:
    connection = factories.make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Chat")
    assistant = make_assistant(team, connection, model="gpt-5.5", reasoning_effort="medium", tools=[CALCULATOR])
    _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="use calculator expression=1+1")
    run = wait_for_run(run.pk)
    assert run.engine == Engine.CHAT_COMPLETIONS
    assert run.status == RunStatus.FAILED
    assert "Please use /v1/responses instead" in run.error


def test_a_structured_reply_follows_the_schema(team, owner, responses_connection) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
              "required": ["city", "days"], "additionalProperties": False}
    assistant = make_assistant(team, responses_connection, model="gpt-5.4-mini", response_schema=schema)
    _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="Plan a trip city=Lisbon days=3")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert json.loads(Message.objects.get(run=run, role="assistant").text) == {"city": "Lisbon", "days": 3}


def test_an_image_is_sent_as_an_input_image(team, owner, responses_connection) -> None:
    from assistants_app.images import chat_image_store, image_attachment

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    assistant = make_assistant(team, responses_connection)
    stored = chat_image_store(team=team, data=png, name="dot.png")
    _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="What is this?",
                                 attachments=[image_attachment(stored, "dot.png")])
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert Message.objects.get(run=run, role="assistant").text.startswith("I see 1 image (image/png, 1x1).")


def test_an_incomplete_reply_fails_the_run_in_words_and_keeps_what_was_written(team, owner, responses_connection) -> None:
    assistant = make_assistant(team, responses_connection, max_output_tokens=20)
    message, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="write 200 words")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error == "The reply is incomplete: the reply reached the version's output limit (max output tokens)."
    assert Message.objects.filter(pk=message.pk).exists()
    assert Message.objects.get(run=run, role="assistant").text.endswith(" …")


def test_a_provider_error_fails_the_run_with_the_reason(team, owner, responses_connection) -> None:
    assistant = make_assistant(team, responses_connection, model="no-such-model")
    message, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="Hello?")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert "no-such-model" in run.error and "404" in run.error
    assert Message.objects.filter(pk=message.pk).exists() and not Message.objects.filter(run=run).exists()


def test_stop_ends_a_streaming_run_and_keeps_what_was_shown(team, owner, tmp_path) -> None:
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path, ttft_ms=0, tokens_per_second=200) as url:
        assistant = make_assistant(team, _responses_connection(team, url))
        _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="write 400 words")
        deadline = time.monotonic() + 10
        while not any(kind == "delta" for kind, _ in streams.fold(
                streams.redis_client().xrange(streams.stream_key(run.pk)))[0]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        run.refresh_from_db()
        run_cancel(run=run, actor=owner)
        run = wait_for_run(run.pk)
    assert run.status == RunStatus.CANCELLED
    partial = Message.objects.get(run=run, role="assistant").text
    assert partial.endswith(" …") and len(partial.split()) < 400


def test_a_rate_limited_request_is_retried_after_the_providers_retry_after(team, owner, responses_connection,
                                                                          monkeypatch) -> None:
    from assistants_app import run_attempt

    real_client = run_attempt.provider_client
    calls: list[float] = []

    def limited_once(connection: ProviderConnection) -> Any:
        calls.append(time.monotonic())
        sdk = real_client(connection)
        return sdk.with_options(default_headers={"X-Sandbox-Fault": "429"}) if len(calls) == 1 else sdk

    monkeypatch.setattr(run_attempt, "provider_client", limited_once)
    assistant = make_assistant(team, responses_connection)
    _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="echo: after a pause")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert len(calls) == 2 and calls[1] - calls[0] >= 1.0  # the sandbox said retry-after: 1
    assert Message.objects.get(run=run, role="assistant").text == "after a pause"
    notes = [data for kind, data in streams.fold(ended_stream_entries(run.pk))[0] if kind == "note"]
    assert any("Rate limited by the provider (429)" in note and "Retrying in 1.0 s" in note for note in notes)


def test_a_stream_that_breaks_on_every_attempt_fails_saying_the_connection_broke(team, owner, tmp_path,
                                                                                 monkeypatch) -> None:
    """As on the chat engine: the provider was reached and began the reply, so the run's
    error is not "the host is unreachable"."""
    from assistants_app import run_attempt
    from sandbox.testing import running_sandbox

    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)  # the worker runs in this process
    with running_sandbox(tmp_path, fault_rate_break_stream=1.0) as url:
        assistant = make_assistant(team, _responses_connection(team, url))
        _, run = thread_post_message(thread=make_thread(team, assistant), actor=owner, text="write 100 words")
        run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("The connection to the provider broke in the middle of the reply"), run.error

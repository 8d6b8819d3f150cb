"""The run on a real Celery worker against the sandbox over HTTP: streaming into
Redis, usage and cost, tools, people, structured output, errors, stop, recovery.
Each test runs on both engines (Chat Completions and Responses): the same run, the same
page, whichever API the connection speaks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from assistants_app import conversation, recovery, run_loop, streams
from assistants_app.models import Message, Run, RunStatus
from assistants_app.services import run_cancel, thread_post_message, tool_answer
from project.providers.connection_facts import connection_model_facts_save
from project.providers.models import Engine, ProviderConnection, ProviderKind
from tests import factories
from tests.assistants_app.conftest import ended_stream_text, wait_for_run
from tests.factories import make_assistant, make_message, make_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


@pytest.fixture(params=[Engine.CHAT_COMPLETIONS, Engine.RESPONSES])
def chat_connection(request: pytest.FixtureRequest, team: factories.Team, sandbox_url: str) -> ProviderConnection:
    connection = factories.make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    connection.engine = request.param
    connection.save(update_fields=["engine"])
    return connection


def test_a_reply_streams_through_redis_and_is_saved_with_usage_and_cost(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection, model="gpt-4.1-mini")
    thread = make_thread(team, assistant)
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Hello **world**, streamed.")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    reply = Message.objects.get(run=run, role="assistant")
    assert reply.text == "Hello **world**, streamed."
    assert reply.version == assistant.current_version
    assert ended_stream_text(run.pk) == reply.text  # every delta went through the stream, in order
    assert run.input_tokens > 0 and run.output_tokens > 0
    assert run.cost_usd is not None and run.cost_usd > 0
    assert run.ttft_ms is not None and run.total_ms is not None and run.request_id


def test_tools_run_in_parallel_and_their_results_reach_the_model(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection, tools=[
        {"name": "calculator", "binding": "builtin", "builtin": "calculator", "description": "maths", "timeout": 5,
         "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"],
                        "additionalProperties": False}},
        {"name": "current_time", "binding": "builtin", "builtin": "current_time", "description": "time", "timeout": 5,
         "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"],
                        "additionalProperties": False}},
    ])
    thread = make_thread(team, assistant)
    _, run = thread_post_message(thread=thread, actor=owner,
                                 text="use calculator and current_time expression=6*7 timezone=Asia/Tokyo")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    calls = Message.objects.filter(run=run, role="assistant").exclude(tool_calls=[]).get()
    assert [c["function"]["name"] for c in calls.tool_calls] == ["calculator", "current_time"]
    results = {m.tool_name: m.text for m in Message.objects.filter(run=run, role="tool")}
    assert results["calculator"] == "6*7 = 42"
    assert "Asia/Tokyo" in results["current_time"]
    final = Message.objects.filter(run=run, role="assistant", tool_calls=[]).get()
    assert final.text.startswith("Tool results: calculator: 6*7 = 42; current_time:")
    assert run.provider_calls == 2


def test_ask_a_person_waits_for_the_answer_then_goes_on(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection, tools=[
        {"name": "approve", "binding": "human", "description": "Ask a manager", "timeout": 10,
         "parameters": {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"],
                        "additionalProperties": False}}])
    thread = make_thread(team, assistant)
    _, run = thread_post_message(thread=thread, actor=owner, text="use approve amount=120")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.WAITING
    question = Message.objects.get(run=run, role="tool", pending=True)
    tool_answer(run=run, message=question, actor=owner, answer="approved by Ana")
    run = wait_for_run(run.pk, statuses=("succeeded", "failed"))
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    final = Message.objects.filter(run=run, role="assistant", tool_calls=[]).get()
    assert final.text == "Tool results: approve: approved by Ana"


def test_a_structured_reply_follows_the_schema(team, owner, chat_connection) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
              "required": ["city", "days"], "additionalProperties": False}
    assistant = make_assistant(team, chat_connection, response_schema=schema)
    thread = make_thread(team, assistant)
    _, run = thread_post_message(thread=thread, actor=owner, text="Plan a trip city=Lisbon days=3")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    reply = json.loads(Message.objects.get(run=run, role="assistant").text)
    assert reply == {"city": "Lisbon", "days": 3}


def test_a_provider_error_fails_the_run_with_the_reason_and_keeps_the_message(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection, model="no-such-model")
    thread = make_thread(team, assistant)
    message, run = thread_post_message(thread=thread, actor=owner, text="Hello?")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert "no-such-model" in run.error and "404" in run.error
    assert Message.objects.filter(pk=message.pk, text="Hello?").exists()
    assert not Message.objects.filter(run=run).exists()


def test_an_image_is_sent_as_an_image_part(team, owner, chat_connection) -> None:
    import base64

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    from assistants_app.images import chat_image_store, image_attachment

    assistant = make_assistant(team, chat_connection)
    thread = make_thread(team, assistant)
    stored = chat_image_store(team=team, data=png, name="dot.png")
    _, run = thread_post_message(thread=thread, actor=owner, text="What is this?",
                                 attachments=[image_attachment(stored, "dot.png")])
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert Message.objects.get(run=run, role="assistant").text.startswith("I see 1 image (image/png, 1x1).")


def test_old_messages_are_trimmed_to_fit_the_context_window(team, owner, chat_connection) -> None:
    # The model facts do not know gpt-3.5-turbo, so its window is taken as a conservative 8,192
    # tokens; 40 stored turns of ~800 tokens cannot all fit. /v1/responses does not serve
    # gpt-3.5-turbo: there gpt-4.1-mini's window is set to 8,192 tokens for the connection
    # (the facts an admin sets, which the run's claim reads).
    model = "gpt-3.5-turbo"
    if chat_connection.run_engine == Engine.RESPONSES:
        model = "gpt-4.1-mini"
        connection_model_facts_save(connection=chat_connection, actor=owner, model_id=model, context_window=8192,
                                    max_output_tokens=None, input_price=None, cached_input_price=None,
                                    output_price=None, free=False, encoding="")
    assistant = make_assistant(team, chat_connection, model=model, max_output_tokens=500,
                               instructions="Never forget these instructions.")
    thread = make_thread(team, assistant)
    filler = " ".join(["river"] * 800)
    for i in range(20):
        make_message(thread, f"old question {i} {filler}")
        make_message(thread, f"old answer {i} {filler}", role="assistant")
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: still here")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert run.trimmed_messages > 0
    # The sandbox counts the prompt itself: it filled the window but did not overflow it.
    assert 6_000 < run.input_tokens <= 8_192 - 500
    assert Message.objects.get(run=run, role="assistant").text == "still here"


def test_stop_ends_a_queued_run_at_once(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection)
    thread = make_thread(team, assistant)
    message = make_message(thread, "hi")
    version = assistant.current_version
    assert version is not None
    run = Run.objects.create(thread=thread, team=team, assistant=assistant, version=version, model=version.model,
                             user_message=message)
    run = run_cancel(run=run, actor=owner)
    assert run.status == RunStatus.CANCELLED
    run_loop.run_execute(run.pk)  # a late task finds nothing to claim
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_a_run_whose_worker_died_is_queued_again_and_finishes(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection)
    thread = make_thread(team, assistant)
    message = make_message(thread, "echo: recovered")
    version = assistant.current_version
    assert version is not None
    # What a worker that died after claiming leaves behind: running, heartbeat long ago.
    stale = timezone.now() - timedelta(minutes=5)
    run = Run.objects.create(thread=thread, team=team, assistant=assistant, version=version, model=version.model,
                             user_message=message, status=RunStatus.RUNNING, attempts=1, heartbeat_at=stale)
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (1, 0)
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED
    assert run.attempts == 2
    assert Message.objects.get(run=run, role="assistant").text == "recovered"


def test_a_run_whose_worker_died_twice_is_failed_with_a_reason(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection)
    thread = make_thread(team, assistant)
    version = assistant.current_version
    assert version is not None
    run = Run.objects.create(thread=thread, team=team, assistant=assistant, version=version, model=version.model,
                             status=RunStatus.RUNNING, attempts=2,
                             heartbeat_at=timezone.now() - timedelta(minutes=5))
    fresh = Run.objects.create(thread=make_thread(team, assistant), team=team, assistant=assistant, version=version,
                               model=version.model, status=RunStatus.RUNNING, attempts=1, heartbeat_at=timezone.now())
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (0, 1)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "worker" in run.error
    assert Run.objects.get(pk=fresh.pk).status == RunStatus.RUNNING  # a live run is left alone


def test_a_post_made_while_redis_is_unreachable_is_kept_and_sent_by_the_sweep(team, owner, chat_connection,
                                                                             monkeypatch) -> None:
    import redis

    from tests.conftest import client_for

    def unreachable(*args: Any, **options: Any) -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    thread = make_thread(team, make_assistant(team, chat_connection))
    with monkeypatch.context() as patched:
        patched.setattr(streams, "run_clear", unreachable)
        patched.setattr(streams, "announce_run", unreachable)
        response = client_for(owner).post(f"/threads/{thread.pk}/messages/", {"text": "echo: kept"},
                                          HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "echo: kept" in response.content.decode()  # no error page
    run = Run.objects.get(thread=thread)
    assert run.status == RunStatus.QUEUED and run.user_message is not None
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (1, 0)
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED
    assert Message.objects.get(run=run, role="assistant").text == "kept"


def test_sending_a_queued_run_again_keeps_what_a_worker_may_have_written(team, chat_connection, monkeypatch) -> None:
    from assistants_app.tasks import run_execute_task

    sent: list[int] = []
    monkeypatch.setattr(run_execute_task, "delay", sent.append)  # the worker that takes it is this test
    assistant = make_assistant(team, chat_connection)
    version = assistant.current_version
    assert version is not None
    run = Run.objects.create(thread=make_thread(team, assistant), team=team, assistant=assistant, version=version,
                             model=version.model)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    # Between the sweep's query and its sending, a worker claims the run and writes.
    streams.publish(run.pk, "delta", "Already on its way")
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (1, 0)
    assert sent == [run.pk]
    shown, _, _ = streams.fold(streams.redis_client().xrange(streams.stream_key(run.pk)))
    assert shown == [("delta", "Already on its way")]


def test_a_run_no_worker_takes_is_failed_with_a_reason_after_ten_minutes(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection)
    version = assistant.current_version
    assert version is not None
    lost = Run.objects.create(thread=make_thread(team, assistant), team=team, assistant=assistant, version=version,
                              model=version.model)
    Run.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    just_queued = Run.objects.create(thread=make_thread(team, assistant), team=team, assistant=assistant,
                                     version=version, model=version.model, status=RunStatus.WAITING)
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (0, 1)
    lost.refresh_from_db()
    assert lost.status == RunStatus.FAILED and "No worker took this reply within 10 minutes" in lost.error
    assert Run.objects.get(pk=just_queued.pk).status == RunStatus.WAITING  # waiting for a person: left alone
    _, _, ended = streams.fold(streams.redis_client().xrange(streams.stream_key(lost.pk)))
    assert ended  # open pages render the failure


def test_an_http_tool_is_called_signed_and_its_answer_reaches_the_model(team, owner, chat_connection,
                                                                       tool_endpoint) -> None:
    import hashlib
    import hmac

    from tests.assistants_app.conftest import Recorder

    assistant = make_assistant(team, chat_connection, tools=[
        {"name": "stock", "binding": "http", "url": tool_endpoint, "description": "Stock level", "timeout": 5,
         "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"],
                        "additionalProperties": False}}])
    thread = make_thread(team, assistant)
    _, run = thread_post_message(thread=thread, actor=owner, text="use stock sku=A-7")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    headers, body = Recorder.received[0]
    assert json.loads(body)["arguments"] == {"sku": "A-7"}
    timestamp, signature = (part.split("=", 1)[1] for part in headers["X-Switchboard-Signature"].split(","))
    secret = assistant.get_tool_secret().encode()
    assert signature == hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert Message.objects.filter(run=run, role="assistant", tool_calls=[]).get().text == 'Tool results: stock: {"stock": 7}'


def test_the_history_is_read_newest_first_across_pages_and_sent_in_order(team, chat_connection, monkeypatch) -> None:
    from project.providers.model_facts import model_facts

    monkeypatch.setattr(conversation, "HISTORY_PAGE", 3)
    assistant = make_assistant(team, chat_connection, instructions="Be brief.")
    thread = make_thread(team, assistant)
    for i in range(8):
        make_message(thread, f"turn {i}", role="user" if i % 2 == 0 else "assistant")
    version = assistant.current_version
    assert version is not None
    messages, trimmed, _ = conversation.build_history(thread=thread, version=version, facts=model_facts(version.model))
    assert [m["content"] for m in messages] == [f"turn {i}" for i in range(8)] and trimmed == 0
    body = conversation.chat_request(conversation.version_request_spec(version), messages, stream=True)
    assert [m["content"] for m in body["messages"]] == ["Be brief."] + [f"turn {i}" for i in range(8)]


class _Lines:
    """What _chunks reads of a streamed response: its bytes, here one line per read."""

    http_request = None

    def __init__(self, *lines: str) -> None:
        self.lines = lines

    def iter_bytes(self) -> Any:
        return iter(line.encode() + b"\n" for line in self.lines)


def test_streamed_chunks_are_read_as_sent_and_a_garbled_one_is_a_provider_error() -> None:
    from project.providers.client import ProviderServerError

    chunks = list(run_loop._chunks(_Lines(  # type: ignore[arg-type]
        ": keep-alive", "", 'data: {"choices": [{"delta": {"content": "Hel"}}]}', "",
        "data:" + '{"choices": [{"delta": {"content": "lo"}}]}', "", "data: [DONE]", "", 'data: {"late": 1}', "")))
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["Hel", "lo"]  # nothing after [DONE]
    with pytest.raises(ProviderServerError) as garbled:
        list(run_loop._chunks(_Lines('data: {"choices": [', "")))  # type: ignore[arg-type]
    assert garbled.value.transient and "not JSON" in garbled.value.message
    with pytest.raises(ProviderServerError) as failed:
        list(run_loop._chunks(_Lines('data: {"error": {"message": "overloaded", "type": "server_error"}}', "")))  # type: ignore[arg-type]
    assert failed.value.message == "The provider failed in the middle of the reply: overloaded"

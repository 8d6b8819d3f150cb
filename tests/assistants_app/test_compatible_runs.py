"""Chat runs against a server that behaves like llama.cpp (the sandbox's `llamacpp`
profile, chosen by the connection's base URL): slow prompts, streams cut short, empty
replies, errors in other shapes. Each reproduces a failure seen against a real server."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from assistants_app import recovery, run_attempt, run_loop
from assistants_app.models import Message, Run, RunStatus
from assistants_app.services import thread_post_message
from project.providers.models import ProviderConnection, ProviderKind
from tests.assistants_app.conftest import wait_for_run
from tests.factories import Team, make_assistant, make_connection, make_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


def llamacpp(team: Team, sandbox_url: str, *settings: str) -> ProviderConnection:
    """A connection to the sandbox behaving like llama-cpp-python's server, with `name=value` settings."""
    base = sandbox_url.removesuffix("/v1") + "/llamacpp/" + "".join(f"{s}/" for s in settings) + "v1"
    return make_connection(team, base_url=base, kind=ProviderKind.COMPATIBLE, api_key="")


def _sweep_while_running(run_id: int, seconds: float, stale_after: float) -> list[tuple[int, int]]:
    """Run the stale-run sweep every 0.25 s for `seconds`, as beat would (with a short threshold)."""
    results: list[tuple[int, int]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        results.append(recovery.runs_recover_stale(stale_after_seconds=stale_after))
        time.sleep(0.25)
    return results


# -- 1. a slow prompt is not sent twice -----------------------------------------------------------------

def test_a_slow_prompt_keeps_the_run_alive_and_is_sent_once(team, owner, sandbox_url, monkeypatch) -> None:
    # The server reads the prompt for 3 s, sending only ": ping" comments; the sweep
    # takes a run as dead after 1 s without a heartbeat (production: 60 s, beat every 30 s).
    monkeypatch.setattr(run_attempt, "HEARTBEAT_SECONDS", 0.2)
    connection = llamacpp(team, sandbox_url, "keepalive=3", "ping=0.25")
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Read slowly, answered once.")
    sweeps = _sweep_while_running(run.pk, 3.5, stale_after=1.0)
    run = wait_for_run(run.pk)
    assert all(result == (0, 0) for result in sweeps), sweeps  # never taken for dead
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 1, (run.status, run.error)
    assert list(Message.objects.filter(run=run, role="assistant").values_list("text", flat=True)) == [
        "Read slowly, answered once."]


def test_a_long_wait_without_comments_keeps_the_run_alive(team, owner, sandbox_url, monkeypatch) -> None:
    # vLLM-like: nothing at all comes before the first token; the worker still checks in.
    monkeypatch.setattr(run_attempt, "HEARTBEAT_SECONDS", 0.2)
    base = sandbox_url.removesuffix("/v1") + "/vllm/keepalive=3/model=gpt-4.1-mini/v1"
    connection = make_connection(team, base_url=base, kind=ProviderKind.COMPATIBLE, api_key="")
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Thinking a while.")
    sweeps = _sweep_while_running(run.pk, 3.5, stale_after=1.0)
    run = wait_for_run(run.pk)
    assert all(result == (0, 0) for result in sweeps), sweeps
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 1, (run.status, run.error)
    assert Message.objects.filter(run=run, role="assistant").count() == 1


def test_a_run_sent_again_while_its_first_worker_still_streams_gets_one_reply(team, owner, sandbox_url,
                                                                             monkeypatch) -> None:
    # The sweep wrongly takes a live run for dead (a stalled heartbeat write, a paused host):
    # the first attempt must stop, and the thread must get one reply, not two.
    monkeypatch.setattr(run_attempt, "HEARTBEAT_SECONDS", 0.2)
    connection = llamacpp(team, sandbox_url, "keepalive=2", "ping=0.25")
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Only one of me.")
    deadline = time.monotonic() + 5
    while Run.objects.get(pk=run.pk).status != RunStatus.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert recovery.runs_recover_stale(stale_after_seconds=60) == (1, 0)
    wait_for_run(run.pk)
    time.sleep(3)  # both attempts' streams would have ended by now
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert list(Message.objects.filter(thread=thread, role="assistant").values_list("text", flat=True)) == [
        "Only one of me."]


def test_a_run_whose_reply_is_already_saved_is_not_sent_again(team, owner, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Saved once.")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED
    calls = run.provider_calls
    # A duplicate task for the same run (a redelivery, a second sweep) finds it done.
    Run.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)
    run_loop.run_execute(run.pk)
    db_connection.close()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.provider_calls == calls
    assert Message.objects.filter(thread=thread, role="assistant").count() == 1



# -- 2. a reply is complete only when the provider says so ----------------------------------------------

def test_a_stream_cut_short_is_retried_then_fails_with_the_reason(team, owner, sandbox_url, monkeypatch) -> None:
    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)
    connection = llamacpp(team, sandbox_url, "fault=cut-stream:4")
    thread = make_thread(team, make_assistant(team, connection))
    message, run = thread_post_message(thread=thread, actor=owner, text="write 40 words")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert "The provider ended the reply before it was complete" in run.error
    assert not Message.objects.filter(run=run).exists()  # no half reply saved as the answer
    assert Message.objects.filter(pk=message.pk).exists()


def test_a_stream_cut_once_is_retried_and_the_whole_reply_saved(team, owner, sandbox_url, monkeypatch) -> None:
    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)
    connection = llamacpp(team, sandbox_url)
    attempts: list[int] = []
    real_create = run_attempt.provider_client

    def cut_first(conn: ProviderConnection) -> Any:
        sdk = real_create(conn)
        attempts.append(1)
        if len(attempts) == 1:
            return sdk.with_options(default_headers={"X-Sandbox-Fault": "cut-stream:3"})
        return sdk

    monkeypatch.setattr(run_attempt, "provider_client", cut_first)
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: one two three four five six seven")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert len(attempts) == 2
    assert Message.objects.get(run=run, role="assistant").text == "one two three four five six seven"


def test_an_empty_body_over_the_context_is_a_failure_not_an_empty_reply(team, owner, sandbox_url,
                                                                        monkeypatch) -> None:
    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)
    connection = llamacpp(team, sandbox_url, "n_ctx=64")
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: " + "many words " * 60)
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert "The provider ended the reply before it was complete" in run.error and "context window" in run.error
    assert not Message.objects.filter(run=run).exists()


def test_an_empty_completion_fails_the_run_saying_so(team, owner, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo:")  # the simulator answers ""
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("The provider returned no text")
    assert not Message.objects.filter(run=run, role="assistant").exists()


# -- 3. an empty reply never breaks the thread ----------------------------------------------------------

def test_an_empty_reply_in_the_thread_is_not_sent_back_and_the_thread_goes_on(team, owner, sandbox_url) -> None:
    from tests.factories import make_message

    connection = llamacpp(team, sandbox_url)
    thread = make_thread(team, make_assistant(team, connection))
    # What an earlier run left: an empty assistant reply (llama.cpp fails on content null).
    make_message(thread, "echo: first")
    make_message(thread, "", role="assistant")
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: still answering")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert Message.objects.get(run=run, role="assistant").text == "still answering"
    assert run.trimmed_messages == 0


def test_no_history_sent_holds_an_assistant_message_without_content_or_tool_calls(team, sandbox_url) -> None:
    from assistants_app import conversation
    from project.providers.model_facts import model_facts
    from tests.factories import make_message

    thread = make_thread(team, make_assistant(team, llamacpp(team, sandbox_url)))
    make_message(thread, "hello")
    make_message(thread, "", role="assistant")
    make_message(thread, "", role="assistant", tool_calls=[
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}])
    make_message(thread, "ok", role="tool", tool_call_id="call_1", tool_name="f")
    make_message(thread, "again")
    version = thread.assistant.current_version
    assert version is not None
    messages, trimmed, _ = conversation.build_history(thread=thread, version=version, facts=model_facts(version.model))
    asked = conversation.thread_question(thread)
    for sent in (messages, asked):
        assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
        assert all(m.get("content") is not None or m.get("tool_calls") for m in sent)
    assert trimmed == 0


# -- 7. errors in other shapes ----------------------------------------------------------------------------

def test_a_server_traceback_never_reaches_the_run_page(team, owner, sandbox_url, monkeypatch) -> None:
    # llama.cpp answers a json_schema response format with a 500 and a Python traceback. (Stored
    # capabilities that say it works make the run send it; see test_capability_runs.py.)
    from project.providers.models import ConnectionCapabilities

    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    connection = llamacpp(team, sandbox_url)
    ConnectionCapabilities.objects.create(connection=connection, results={"json_schema": {"ok": True}},
                                          checked_at=timezone.now())
    thread = make_thread(team, make_assistant(team, connection, response_schema=schema))
    _, run = thread_post_message(thread=thread, actor=owner, text="Where to?")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert "1 validation error for ChatCompletionRequestResponseFormat" in run.error
    assert "/usr/lib" not in run.error and "Traceback" not in run.error and "site-packages" not in run.error


# -- 4. usage without provider usage ----------------------------------------------------------------------

def test_a_stream_without_usage_is_counted_with_tiktoken_and_marked_estimated(team, owner, owner_client, sandbox_url,
                                                                              chat_connection) -> None:
    from project.tokens import count_messages, count_text

    thread = make_thread(team, make_assistant(team, llamacpp(team, sandbox_url), instructions="Be brief."))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Counted here, not by the server.")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert run.usage_estimated
    assert run.input_tokens == count_messages([{"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": "echo: Counted here, not by the server."}],
                                              run.model)
    assert run.output_tokens == count_text("Counted here, not by the server.", run.model)
    assert run.cost_usd is not None and run.cost_usd > 0
    page = owner_client.get(f"/threads/{thread.pk}/").content.decode()
    assert f"{run.input_tokens} in / {run.output_tokens} out (estimated)" in page

    # A provider that reports usage is taken at its word, and not marked.
    other = make_thread(team, make_assistant(team, chat_connection))
    _, counted = thread_post_message(thread=other, actor=owner, text="echo: Counted by the server.")
    counted = wait_for_run(counted.pk)
    assert counted.status == RunStatus.SUCCEEDED and not counted.usage_estimated and counted.output_tokens > 0
    assert "(estimated)" not in owner_client.get(f"/threads/{other.pk}/").content.decode()

"""Runs on a server that lacks what the assistant needs (issue #15, item 5): refused at once
in words, never retried as a 500, never a silent success with the tools ignored."""

from __future__ import annotations

from typing import Any

import pytest

from assistants_app import run_attempt, run_loop
from assistants_app.models import Message, Run, RunStatus
from assistants_app.services import ChatError, thread_post_message
from project.providers.capabilities import REFUSALS, capabilities_probe, connection_capabilities, supports
from project.providers.models import ConnectionCapabilities
from tests.assistants_app.conftest import wait_for_run
from tests.compatible import LLAMA_MODEL, llamacpp
from tests.factories import make_assistant, make_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
TOOLS = [{"name": "current_time", "binding": "builtin", "builtin": "current_time", "description": "The time.",
          "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}]


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every chat request a run sends (the worker runs in this process)."""
    sent: list[dict[str, Any]] = []
    real = run_loop._stream_once

    def counting(run: Any, body: dict[str, Any], *args: Any) -> Any:
        sent.append(body)
        return real(run, body, *args)

    monkeypatch.setattr(run_loop, "_stream_once", counting)
    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)
    return sent


def test_a_reply_schema_on_a_never_probed_server_is_refused_in_words_before_it_is_sent(
        team, owner, sandbox_url, attempts) -> None:
    connection = llamacpp(team, sandbox_url)
    thread = make_thread(team, make_assistant(team, connection, model=LLAMA_MODEL, response_schema=SCHEMA))
    _, run = thread_post_message(thread=thread, actor=owner, text="Where to?")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error == REFUSALS["json_schema"]
    assert attempts == []  # probed first (lazily), so the request itself never went out
    assert supports(connection_capabilities(connection), "json_schema") is False


def test_a_capability_refusal_from_the_server_is_not_retried(team, owner, sandbox_url, attempts) -> None:
    # What was stored says json_schema works (the server changed since): the server's 500 is
    # recognised as a refusal by probing again, and the run fails after one request, not four.
    connection = llamacpp(team, sandbox_url)
    ConnectionCapabilities.objects.create(connection=connection, results={"json_schema": {"ok": True, "detail": ""}},
                                          checked_at="2026-11-01T00:00:00Z")
    thread = make_thread(team, make_assistant(team, connection, model=LLAMA_MODEL, response_schema=SCHEMA))
    _, run = thread_post_message(thread=thread, actor=owner, text="Where to?")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert len(attempts) == 1
    assert run.error.startswith(REFUSALS["json_schema"])
    assert "The server said:" in run.error and "Traceback" not in run.error and "/usr/lib" not in run.error
    assert supports(connection_capabilities(connection), "json_schema") is False


def test_a_500_that_is_not_a_refusal_is_still_retried(team, owner, sandbox_url, attempts) -> None:
    connection = llamacpp(team, sandbox_url, "fault=500")
    thread = make_thread(team, make_assistant(team, connection, model=LLAMA_MODEL))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: hello")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED and len(attempts) == run_loop.MAX_ATTEMPTS_PER_CALL


def test_tools_a_server_ignores_fail_the_run_saying_so_not_a_silent_success(team, owner, sandbox_url,
                                                                            attempts) -> None:
    connection = llamacpp(team, sandbox_url)
    thread = make_thread(team, make_assistant(team, connection, model=LLAMA_MODEL, tools=TOOLS))
    _, run = thread_post_message(thread=thread, actor=owner, text="use current_time")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error == REFUSALS["tools"]
    assert "ignores tools unless one is forced" in run.error
    assert attempts == [] and not Message.objects.filter(run=run).exists()


def test_a_post_to_a_server_known_to_lack_the_capability_is_refused_before_a_run_exists(team, owner,
                                                                                         sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    capabilities_probe(connection=connection, names=["json_schema"], model=LLAMA_MODEL)
    thread = make_thread(team, make_assistant(team, connection, model=LLAMA_MODEL, response_schema=SCHEMA))
    with pytest.raises(ChatError, match="does not accept JSON-schema output"):
        thread_post_message(thread=thread, actor=owner, text="Where to?")
    assert not Run.objects.filter(thread=thread).exists()

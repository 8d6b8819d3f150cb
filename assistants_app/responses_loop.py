"""The run on the Responses engine (POST /v1/responses), for connections whose engine is
Responses: the same run as run_loop's, with the same guarantees (heartbeat, superseded
attempts, the final reply saved in the transaction that ends the run, usage and cost,
provider errors in words, Stop), the same Redis Stream and page, the same tools.

What differs is the wire: the history goes as input items (function_call and
function_call_output items for tool rounds, input_image / input_file parts), the stream is
typed events, and reasoning models stream a summary (shown in a "Thinking" block) and give
encrypted reasoning items. We own the history: `store` is off, nothing relies on
previous_response_id, and each reply keeps its reasoning items to send back with it, so a
multi-round tool run keeps its reasoning (include=["reasoning.encrypted_content"]).
Reading the stream is responses_stream's; this module builds the requests and runs the
rounds, retries, background polling, Stop's cancel and the response.* webhook.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import transaction

from assistants_app import streams
from assistants_app.conversation import (
    history_with_sources,
    responses_input,
    responses_request,
    version_request_spec,
)
from assistants_app.models import AssistantVersion, Message, Run, RunStatus
from assistants_app.responses_stream import (
    ResponseTurn,
    error_event,
    final_output,
    first_output,
    resume_point,
    shown_text,
    stream_once,
    turn_calls,
    usage_as_chat,
)
from assistants_app.run_attempt import (
    MAX_ATTEMPTS_PER_CALL,
    MAX_TOOL_ROUNDS,
    NO_TEXT_MESSAGE,
    Clock,
    RunCancelled,
    RunStopped,
    RunSuperseded,
    Usage,
    attempt_failed,
    backoff,
    check_in,
    ensure_owned,
    final_reply_saved,
    provider_client,
    release_database_connection,
    reply_save,
    run_finish,
    run_tools,
)
from project.providers.client import ProviderError, ProviderRejected, provider_errors
from project.providers.model_facts import ModelFacts
from project.providers.models import ProviderConnection

log = logging.getLogger(__name__)

INCOMPLETE_REASONS = {
    "max_output_tokens": "the reply reached the version's output limit (max output tokens)",
    "content_filter": "the provider's content filter stopped the reply",
}



# -- the request ----------------------------------------------------------------------------------

def input_items(messages: list[dict[str, Any]], sources: list[Message], *, model: str) -> list[dict[str, Any]]:
    """The history (conversation.history_with_sources) as Responses input items
    (conversation.responses_input), each reply's reasoning items back in front of it when
    the reply was written by the same model (another model cannot read them)."""
    models = dict(AssistantVersion.objects.filter(pk__in={m.version_id for m in sources if m.reasoning_items})
                  .values_list("pk", "model"))
    items: list[dict[str, Any]] = []
    for api, source in zip(messages, sources, strict=True):
        if source.reasoning_items and source.version_id is not None and models.get(source.version_id) == model:
            items += source.reasoning_items
        items += responses_input([api])
    return items


def responses_body(version: AssistantVersion, facts: ModelFacts, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The streamed request for a run: the version's spec through the one request builder
    (conversation.responses_request), not stored, with a reasoning model's summary and
    its encrypted reasoning asked for."""
    body = responses_request(version_request_spec(version, facts), items)
    body["stream"] = True
    # Background responses must be stored; otherwise we own the history and nothing is kept.
    body["store"] = version.long_running
    if version.long_running:
        body["background"] = True
    if facts.supports("reasoning"):
        body["reasoning"] = {**body.get("reasoning", {}), "summary": "auto"}
        body["include"] = ["reasoning.encrypted_content"]
    return body


def poke_key(run_id: int) -> str:
    """Set by a response.* webhook: the worker polling the run's response fetches it at once."""
    return f"sb:run:{run_id}:poke"


def response_webhook_received(connection: ProviderConnection, event: Any) -> None:
    """A response.completed|failed|cancelled|incomplete webhook: a worker polling that
    background response (its stream could not be followed) asks for it now instead of
    waiting out its backoff. Responses no run of the connection is waiting on are ignored."""
    response_id = str(getattr(getattr(event, "data", None), "id", ""))
    if not response_id:
        return
    for run_id in Run.objects.filter(assistant__connection=connection, team_id=connection.team_id,
                                     response_id=response_id, status=RunStatus.RUNNING).values_list("pk", flat=True):
        streams.redis_client().set(poke_key(run_id), "1", ex=streams.STREAM_TTL_SECONDS)


def _poked(run: Run) -> bool:
    return bool(streams.redis_client().delete(poke_key(run.pk)))


POLL_FIRST_SECONDS = 0.5
POLL_MAX_SECONDS = 5.0
TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})


def _poll(run: Run, clock: Clock, usage: Usage) -> ResponseTurn:
    """A background response whose stream cannot be followed: GET it, backing off, until it
    is over; then show what the run's stream does not show yet."""
    assert run.assistant.connection is not None
    client = provider_client(run.assistant.connection)
    wait = POLL_FIRST_SECONDS
    while True:
        release_database_connection()
        with provider_errors():
            final = client.responses.with_raw_response.retrieve(run.response_id).parse().model_dump(mode="json")
        if final.get("status") in TERMINAL_STATUSES:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not _poked(run):
            check_in(run, clock)
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        wait = min(wait * 2, POLL_MAX_SECONDS)
    if final.get("status") == "failed":
        raise error_event(final.get("error") or {})
    if final.get("status") == "cancelled":
        raise RunStopped("The provider cancelled the reply.")
    resume = resume_point(run)
    turn = ResponseTurn(response_id=run.response_id, status=str(final.get("status")),
                        incomplete_reason=str((final.get("incomplete_details") or {}).get("reason") or ""))
    final_output(turn, final)
    shown = resume.shown_text if resume else ""
    if turn.text.startswith(shown) and turn.text != shown:
        clock.live.publish("delta", turn.text[len(shown):])
    elif not turn.text.startswith(shown):
        clock.live.publish("reset")
        clock.live.publish("delta", turn.text)
    if turn.text:
        first_output(clock)
    if final.get("usage"):
        usage.add(usage_as_chat(final["usage"]))
    turn_calls(turn)
    return turn


def _cancel_background(run: Run) -> None:
    """Stop asks the provider to stop writing a background reply (it is billed for what it wrote)."""
    if not run.response_id or run.assistant.connection is None:
        return
    try:
        with provider_errors():
            provider_client(run.assistant.connection).responses.cancel(run.response_id)
    except ProviderError as error:
        log.warning("run %s: the provider's response %s was not cancelled: %s", run.pk, run.response_id, error.message)


def _call_with_retries(run: Run, body: dict[str, Any], clock: Clock, usage: Usage, prompt_tokens: int,
                      facts: ModelFacts) -> ResponseTurn:
    """As run_loop's: transient failures are tried again after a backoff that honours
    retry-after, and what a broken attempt showed is reset."""
    attempt = 0
    while True:
        clock.text_shown = False
        try:
            return stream_once(run, body, clock, usage, prompt_tokens, facts)
        except ProviderRejected:
            if not run.response_id:
                raise
            # The provider will not stream this background response again: ask for it until it is done.
            return _poll(run, clock, usage)
        except ProviderError as error:
            attempt += 1
            if not error.transient or attempt >= MAX_ATTEMPTS_PER_CALL:
                raise
            wait = backoff(attempt - 1, error)
            if clock.text_shown and not run.response_id:
                # The broken attempt's text is shown again from scratch; a background one is resumed instead.
                clock.live.publish("reset")
            clock.live.publish("note", f"{error.message} Retrying in {wait:.1f} s…")
            log.info("run %s: transient provider error, retry %s in %.1fs: %s", run.pk, attempt, wait, error.message)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                check_in(run, clock)
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


# -- the run --------------------------------------------------------------------------------------

def _incomplete_message(reason: str) -> str:
    words = INCOMPLETE_REASONS.get(reason, f"the provider gave the reason {reason!r}" if reason else "no reason given")
    return f"The reply is incomplete: {words}."


def execute(run: Run, facts: ModelFacts, usage: Usage, clock: Clock) -> None:
    """The Responses run; run_engines has it run under the run's heartbeat."""
    request_id, trimmed = "", 0
    try:
        if run.attempts > 1 and final_reply_saved(run):  # only a run sent again can have one
            run_finish(run, RunStatus.SUCCEEDED, usage=usage, facts=facts, clock=clock)
            return
        for _round in range(MAX_TOOL_ROUNDS):
            history, sources = history_with_sources(thread=run.thread, version=run.version, facts=facts)
            trimmed = history.trimmed
            if trimmed:
                clock.live.publish("note", f"{trimmed} older messages were left out to fit the context window.")
            body = responses_body(run.version, facts, input_items(history.messages, sources, model=run.model))
            turn = _call_with_retries(run, body, clock, usage, history.prompt_tokens, facts)
            request_id = turn.request_id or request_id
            if turn.status == "incomplete":
                # The user's message stays; what was written is kept, marked as cut short.
                run_finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed, error=_incomplete_message(turn.incomplete_reason),
                        reply=turn.text + " …" if turn.text else None, reasoning=turn.reasoning)
                return
            if not turn.tool_calls and not turn.text:
                raise RunStopped(f"{NO_TEXT_MESSAGE} (status: {turn.status or 'none'}).")
            if not turn.tool_calls:
                run_finish(run, RunStatus.SUCCEEDED, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed, reply=turn.text, reasoning=turn.reasoning)
                return
            with transaction.atomic():
                ensure_owned(run)
                reply_save(run, turn.text, turn.tool_calls, reasoning=turn.reasoning)
                # The next round is a new response; this one is done with.
                Run.objects.filter(pk=run.pk).update(response_id="")
            run.response_id = ""
            waiting = run_tools(run, turn.tool_calls, clock)
            clock.live.publish("saved")
            if waiting:
                run_finish(run, RunStatus.WAITING, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed)
                return
        raise RunStopped(f"The model kept calling tools for {MAX_TOOL_ROUNDS} rounds; stopped.")
    except RunSuperseded:
        raise
    except Exception as error:  # noqa: BLE001 - each kind ends the run in words (run_attempt.attempt_failed)
        if isinstance(error, RunCancelled):
            _cancel_background(run)
        # After a takeover the stream shows what an earlier attempt wrote of the same response.
        attempt_failed(run, error, usage=usage, facts=facts, clock=clock, request_id=request_id, trimmed=trimmed,
                       shown=lambda: shown_text(run) or clock.live.text())

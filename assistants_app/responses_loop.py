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
rounds, retries and Stop's cancel, and hands a background response whose stream cannot be
followed to beat's polling (responses_poll), which ends the run through turn_end as here.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from assistants_app.conversation import (
    history_with_sources,
    responses_input,
    responses_request,
    version_request_spec,
)
from assistants_app.models import AssistantVersion, Message, Run, RunStatus
from assistants_app.responses_stream import ResponseTurn, shown_text, stream_once
from assistants_app.run_attempt import (
    DATABASE_OUTAGE_SECONDS,
    MAX_ATTEMPTS_PER_CALL,
    MAX_TOOL_ROUNDS,
    NO_TEXT_MESSAGE,
    Clock,
    RunCancelled,
    RunStopped,
    RunSuperseded,
    Usage,
    _record_end,
    attempt_failed,
    backoff,
    check_in,
    ensure_owned,
    final_reply_saved,
    provider_client,
    reply_save,
    run_finish,
    run_tools,
)
from assistants_app.spend import run_spend_record
from project.outages import database_call
from project.providers.client import ProviderError, provider_errors
from project.providers.model_facts import ModelFacts

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


POLL_FIRST_SECONDS = 1.0


class AwaitProvider(Exception):
    """The background response's stream cannot be followed (the provider refuses to stream
    it, or it broke and could not be resumed): beat polls the response instead
    (responses_poll), and the worker is let go."""


def usage_save_part(run: Run, usage: Usage, *, facts: ModelFacts, clock: Clock, part: str = "") -> None:
    """Inside the caller's transaction (the run owned): add what this attempt has cost so far
    to the run and the ledger while the run goes on without its worker. The run's end adds
    the rest, as after a person's answer."""
    if not usage.calls:
        return
    _record_end(run, RunStatus.RUNNING, usage=usage, clock=clock, cost=usage.cost(facts), now=time.monotonic(),
                error="", request_id=run.request_id, trimmed=run.trimmed_messages)
    Run.objects.filter(pk=run.pk).update(finished_at=None)  # still running: only the counts were added
    run_spend_record(run=run, usage=usage, part=part, settle=False)


def polling_start(run: Run, *, usage: Usage, facts: ModelFacts, clock: Clock) -> None:
    """Hand the run's background response to beat's polling: the run records it awaits the
    provider (first fetch soon), what the attempt cost so far is saved, and the worker
    returns. The page keeps what it shows; the fetches add the rest."""
    def save() -> None:
        with transaction.atomic():
            ensure_owned(run)
            usage_save_part(run, usage, facts=facts, clock=clock, part="before-polling")
            # The request id and what was trimmed too: the fetch that ends the run reads them
            # from the row (usage_save_part writes nothing when the attempt counted no usage).
            Run.objects.filter(pk=run.pk).update(
                poll_at=timezone.now() + timedelta(seconds=POLL_FIRST_SECONDS), poll_attempts=0,
                poll_lease_until=None, request_id=run.request_id, trimmed_messages=run.trimmed_messages,
                **({"ttft_ms": int((clock.first_token - clock.started) * 1000)} if clock.first_token else {}))

    database_call(save, what="handing the reply to polling", limit_seconds=DATABASE_OUTAGE_SECONDS)
    clock.live.publish("note", "The provider's stream of this reply could not be followed; Switchboard asks the "
                               "provider for it until it is done.")
    log.info("run %s: background response %s handed to polling", run.pk, run.response_id)


def cancel_background(run: Run) -> None:
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
        except ProviderError as error:
            attempt += 1
            if not error.transient or attempt >= MAX_ATTEMPTS_PER_CALL:
                if run.response_id:
                    # The provider goes on writing this background response, which it will not
                    # stream (again): beat asks for it until it is done (responses_poll).
                    raise AwaitProvider() from error
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

def incomplete_message(reason: str) -> str:
    words = INCOMPLETE_REASONS.get(reason, f"the provider gave the reason {reason!r}" if reason else "no reason given")
    return f"The reply is incomplete: {words}."


def turn_end(run: Run, turn: ResponseTurn, *, usage: Usage, facts: ModelFacts, clock: Clock, request_id: str,
             trimmed: int) -> bool:
    """Act on a finished response, streamed or polled: an incomplete one fails the run with
    the reason in words (what was written kept), a reply finishes it, function calls are
    saved and run. True when the run is over (or waits for a person); False when the tools'
    results are saved and the model is to be asked again."""
    if turn.status == "incomplete":
        # The user's message stays; what was written is kept, marked as cut short.
        run_finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock, request_id=request_id,
                trimmed=trimmed, error=incomplete_message(turn.incomplete_reason),
                reply=turn.text + " …" if turn.text else None, reasoning=turn.reasoning)
        return True
    if not turn.tool_calls and not turn.text:
        raise RunStopped(f"{NO_TEXT_MESSAGE} (status: {turn.status or 'none'}).")
    if not turn.tool_calls:
        run_finish(run, RunStatus.SUCCEEDED, usage=usage, facts=facts, clock=clock, request_id=request_id,
                trimmed=trimmed, reply=turn.text, reasoning=turn.reasoning)
        return True
    with transaction.atomic():
        ensure_owned(run)
        reply_save(run, turn.text, turn.tool_calls, reasoning=turn.reasoning)
        # The next round is a new response; this one is done with.
        Run.objects.filter(pk=run.pk).update(response_id="")
    run.response_id = ""
    waiting = run_tools(run, turn.tool_calls, clock)
    clock.live.publish("saved")
    if waiting:
        run_finish(run, RunStatus.WAITING, usage=usage, facts=facts, clock=clock, request_id=request_id, trimmed=trimmed)
    return waiting


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
            if turn_end(run, turn, usage=usage, facts=facts, clock=clock, request_id=request_id, trimmed=trimmed):
                return
        raise RunStopped(f"The model kept calling tools for {MAX_TOOL_ROUNDS} rounds; stopped.")
    except AwaitProvider:
        run.request_id, run.trimmed_messages = request_id, trimmed
        polling_start(run, usage=usage, facts=facts, clock=clock)
    except RunSuperseded:
        raise
    except Exception as error:  # noqa: BLE001 - each kind ends the run in words (run_attempt.attempt_failed)
        if isinstance(error, RunCancelled):
            cancel_background(run)
        # After a takeover the stream shows what an earlier attempt wrote of the same response.
        attempt_failed(run, error, usage=usage, facts=facts, clock=clock, request_id=request_id, trimmed=trimmed,
                       shown=lambda: shown_text(run) or clock.live.text())

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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from django.db import transaction
from openai import APIResponse

from assistants_app import streams
from assistants_app.conversation import (
    HistoryTooLong,
    history_with_sources,
    responses_input,
    responses_request,
    version_request_spec,
)
from assistants_app.models import AssistantVersion, Message, Run, RunStatus
from assistants_app.run_loop import (
    FLUSH_SECONDS,
    INCOMPLETE_MESSAGE,
    MAX_ATTEMPTS_PER_CALL,
    MAX_TOOL_ROUNDS,
    NO_TEXT_MESSAGE,
    Clock,
    Reasoning,
    ReplyIncomplete,
    RunCancelled,
    RunStopped,
    RunSuperseded,
    Turn,
    Usage,
    _backoff,
    _check_in,
    _client,
    _final_reply_saved,
    _finish,
    _owned,
    _partial_text,
    _release_database_connection,
    _run_tools,
    _save_reply,
    _stream_error,
)
from project.providers.client import ProviderError, ProviderRejected, provider_errors
from project.providers.model_facts import ModelFacts
from project.providers.models import ProviderConnection

log = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
INCOMPLETE_REASONS = {
    "max_output_tokens": "the reply reached the version's output limit (max output tokens)",
    "content_filter": "the provider's content filter stopped the reply",
}


@dataclass
class ResponseTurn(Turn):
    """What one streamed response produced, beyond a chat turn's text and calls."""

    reasoning: Reasoning = field(default_factory=Reasoning)
    calls: list[dict[str, Any]] = field(default_factory=list)  # the function_call items
    response_id: str = ""
    # The response's final status (completed, incomplete) and, when incomplete, why.
    status: str = ""
    incomplete_reason: str = ""


@dataclass
class _Publisher:
    """Text and thinking deltas on their way to the run's stream: the first at once, later
    ones together at most every FLUSH_SECONDS (as run_loop's _Outbox). For a background
    response each flush is followed by a "cursor" entry: the sequence_number of the last
    event flushed and how much text and thinking the stream then shows, so a worker that
    takes the run over resumes the provider's stream after it, with nothing lost and,
    whatever it replays beyond the cursor, nothing shown twice (see _resume_point)."""

    run_id: int
    background: bool
    text_len: int = 0
    thinking_len: int = 0
    sequence: int | None = None
    parts: dict[str, list[str]] = field(default_factory=lambda: {"thinking": [], "delta": []})
    last: float = 0.0

    def add(self, kind: str, piece: str, sequence: int | None) -> None:
        if piece:
            self.parts[kind].append(piece)
        self.sequence = sequence if sequence is not None else self.sequence
        now = time.monotonic()
        if now - self.last >= FLUSH_SECONDS:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        wrote = False
        for kind, parts in self.parts.items():
            if parts:
                text = "".join(parts)
                streams.publish(self.run_id, kind, text)
                if kind == "delta":
                    self.text_len += len(text)
                else:
                    self.thinking_len += len(text)
                parts.clear()
                wrote = True
        if wrote and self.background and self.sequence is not None:
            streams.publish(self.run_id, "cursor", f"{self.sequence}:{self.text_len}:{self.thinking_len}")
        self.last = now or time.monotonic()


@dataclass
class _Resume:
    """Where a background response's stream is picked up: after `after` (None: from its
    start), skipping the text and thinking the run's stream already shows beyond it."""

    response_id: str
    after: int | None
    shown_text: str
    shown_thinking: str
    skip_text: int
    skip_thinking: int


def _resume_point(run: Run) -> _Resume | None:
    """A run whose background response was created (by this attempt before a broken stream,
    or by a worker that died): resume it from the last cursor its stream holds."""
    if not run.response_id:
        return None
    shown, _, _ = streams.fold(streams.redis_client().xrange(streams.stream_key(run.pk)))
    text = "".join(data for kind, data in shown if kind == "delta")
    thinking = "".join(data for kind, data in shown if kind == "thinking")
    cursor = next((data for kind, data in reversed(shown) if kind == "cursor"), None)
    after, text_len, thinking_len = (int(n) for n in cursor.split(":")) if cursor else (None, 0, 0)
    return _Resume(run.response_id, after, text, thinking, len(text) - text_len, len(thinking) - thinking_len)


def _record_response(run: Run, response_id: str) -> None:
    """The background response is the run's: a worker that takes the run over resumes it."""
    with transaction.atomic():
        _owned(run)
        Run.objects.filter(pk=run.pk).update(response_id=response_id)
    run.response_id = response_id


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


# -- the stream -----------------------------------------------------------------------------------

def _events(response: APIResponse[Any], on_idle: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """A streamed response's events as plain dicts (as run_loop._chunks reads chat chunks,
    without a pydantic model per event). Complete only when a terminal event came
    (completed, incomplete, failed); a stream that ends before raises ReplyIncomplete."""
    data: list[str] = []
    finished = False
    try:
        for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
                continue
            if line.startswith(":") and on_idle is not None:
                on_idle()
                continue
            if line or not data:
                continue  # the event: line, or a blank line with no data
            payload, data = "\n".join(data), []
            try:
                event = json.loads(payload)
            except ValueError as error:
                raise ReplyIncomplete(f"The provider sent an event that is not JSON: {payload[:80]!r}") from error
            if not isinstance(event, dict):
                continue
            finished = finished or event.get("type") in TERMINAL_EVENTS
            yield event
    except httpx2.TimeoutException as error:
        raise openai.APITimeoutError(request=response.http_request) from error
    except httpx2.TransportError as error:
        raise openai.APIConnectionError(request=response.http_request) from error
    if not finished:
        raise ReplyIncomplete(INCOMPLETE_MESSAGE)


def _usage_as_chat(usage: dict[str, Any]) -> dict[str, Any]:
    """A response's usage in Chat Completions' names, which run_loop.Usage counts."""
    return {
        "prompt_tokens": usage.get("input_tokens") or 0,
        "completion_tokens": usage.get("output_tokens") or 0,
        "prompt_tokens_details": {"cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0},
        "completion_tokens_details": {
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0},
    }


def _error_event(event: dict[str, Any]) -> ProviderError:
    """An `error` event, or a response.failed's error object: a server error is retried."""
    code = event.get("code")
    return _stream_error({"message": event.get("message"),
                          "type": "server_error" if code in (None, "server_error") else code})


def _first_output(clock: Clock) -> None:
    if clock.first_token is None:
        clock.first_token = time.monotonic()


def _final_output(turn: ResponseTurn, final: dict[str, Any]) -> None:
    """Take the reply from the finished response's output: a resumed stream saw only its
    end, and a polled response no events at all."""
    output = final.get("output")
    if not isinstance(output, list):
        return
    texts = [part.get("text", "") for item in output if isinstance(item, dict) and item.get("type") == "message"
             for part in item.get("content") or () if isinstance(part, dict) and part.get("type") == "output_text"]
    turn.text = "".join(texts)
    turn.reasoning.items = [item for item in output if isinstance(item, dict) and item.get("type") == "reasoning"]
    turn.calls = [item for item in output if isinstance(item, dict) and item.get("type") == "function_call"]


def _open_stream(run: Run, body: dict[str, Any], resume: _Resume | None) -> Any:
    assert run.assistant.connection is not None
    client = _client(run.assistant.connection)
    if resume is None:
        return client.responses.with_streaming_response.create(**body)
    if resume.after is None:
        return client.responses.with_streaming_response.retrieve(resume.response_id, stream=True)
    return client.responses.with_streaming_response.retrieve(resume.response_id, stream=True,
                                                              starting_after=resume.after)


def _stream_once(run: Run, body: dict[str, Any], clock: Clock, usage: Usage, prompt_tokens: int) -> ResponseTurn:
    resume = _resume_point(run)
    publisher = _Publisher(run.pk, background=bool(body.get("background")))
    skip_text = skip_thinking = 0
    turn = ResponseTurn()
    if resume is not None:
        publisher.text_len, publisher.thinking_len = len(resume.shown_text), len(resume.shown_thinking)
        skip_text, skip_thinking = resume.skip_text, resume.skip_thinking
        turn.text, turn.response_id = resume.shown_text, resume.response_id
    counted = False
    _release_database_connection()
    with provider_errors(), _open_stream(run, body, resume) as response:
        turn.request_id = response.headers.get("x-request-id", "")
        try:
            for event in _events(response, on_idle=lambda: _check_in(run, clock)):
                kind = event.get("type")
                sequence = event.get("sequence_number")
                if kind == "response.output_text.delta":
                    _first_output(clock)
                    piece = event.get("delta") or ""
                    cut, skip_text = min(skip_text, len(piece)), skip_text - min(skip_text, len(piece))
                    turn.text += piece[cut:]
                    publisher.add("delta", piece[cut:], sequence)
                    clock.text_shown = True
                elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_summary_part.done"):
                    _first_output(clock)
                    piece = event.get("delta") or "" if kind.endswith(".delta") else "\n\n"
                    cut, skip_thinking = min(skip_thinking, len(piece)), skip_thinking - min(skip_thinking, len(piece))
                    publisher.add("thinking", piece[cut:], sequence)
                    clock.text_shown = True
                elif kind == "response.output_item.done":
                    item = event.get("item") or {}
                    if item.get("type") == "function_call":
                        _first_output(clock)
                        turn.calls.append(item)
                    elif item.get("type") == "reasoning":
                        turn.reasoning.items.append(item)
                elif kind == "response.created":
                    turn.response_id = (event.get("response") or {}).get("id", "")
                    if publisher.background and resume is None and turn.response_id:
                        _record_response(run, turn.response_id)
                elif kind in ("response.completed", "response.incomplete"):
                    final = event.get("response") or {}
                    turn.status = str(final.get("status") or "completed")
                    turn.incomplete_reason = str((final.get("incomplete_details") or {}).get("reason") or "")
                    _final_output(turn, final)
                    if final.get("usage"):
                        usage.add(_usage_as_chat(final["usage"]))
                        counted = True
                elif kind == "response.failed":
                    raise _error_event((event.get("response") or {}).get("error") or {})
                elif kind == "error":
                    raise _error_event(event)
                _check_in(run, clock)
        finally:
            publisher.flush()
    _turn_calls(turn)
    if not counted:
        usage.estimate(prompt_tokens=prompt_tokens, model=run.model, turn=turn)
    return turn


def _turn_calls(turn: ResponseTurn) -> None:
    """The function_call items as chat tool calls (what run_loop's tools and history take), and the summary."""
    turn.tool_calls = [{"id": call.get("call_id", ""), "type": "function",
                        "function": {"name": call.get("name", ""), "arguments": call.get("arguments") or ""}}
                       for call in turn.calls]
    turn.reasoning.summary = "\n\n".join(part.get("text", "") for item in turn.reasoning.items
                                         for part in item.get("summary") or () if part.get("text"))


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
    client = _client(run.assistant.connection)
    wait = POLL_FIRST_SECONDS
    while True:
        _release_database_connection()
        with provider_errors():
            final = client.responses.with_raw_response.retrieve(run.response_id).parse().model_dump(mode="json")
        if final.get("status") in TERMINAL_STATUSES:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not _poked(run):
            _check_in(run, clock)
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        wait = min(wait * 2, POLL_MAX_SECONDS)
    if final.get("status") == "failed":
        raise _error_event(final.get("error") or {})
    if final.get("status") == "cancelled":
        raise RunStopped("The provider cancelled the reply.")
    resume = _resume_point(run)
    turn = ResponseTurn(response_id=run.response_id, status=str(final.get("status")),
                        incomplete_reason=str((final.get("incomplete_details") or {}).get("reason") or ""))
    _final_output(turn, final)
    shown = resume.shown_text if resume else ""
    if turn.text.startswith(shown) and turn.text != shown:
        streams.publish(run.pk, "delta", turn.text[len(shown):])
    elif not turn.text.startswith(shown):
        streams.publish(run.pk, "reset")
        streams.publish(run.pk, "delta", turn.text)
    if turn.text:
        _first_output(clock)
    if final.get("usage"):
        usage.add(_usage_as_chat(final["usage"]))
    _turn_calls(turn)
    return turn


def _cancel_background(run: Run) -> None:
    """Stop asks the provider to stop writing a background reply (it is billed for what it wrote)."""
    if not run.response_id or run.assistant.connection is None:
        return
    try:
        with provider_errors():
            _client(run.assistant.connection).responses.cancel(run.response_id)
    except ProviderError as error:
        log.warning("run %s: the provider's response %s was not cancelled: %s", run.pk, run.response_id, error.message)


def _call_with_retries(run: Run, body: dict[str, Any], clock: Clock, usage: Usage, prompt_tokens: int) -> ResponseTurn:
    """As run_loop's: transient failures are tried again after a backoff that honours
    retry-after, and what a broken attempt showed is reset."""
    attempt = 0
    while True:
        clock.text_shown = False
        try:
            return _stream_once(run, body, clock, usage, prompt_tokens)
        except ProviderRejected:
            if not run.response_id:
                raise
            # The provider will not stream this background response again: ask for it until it is done.
            return _poll(run, clock, usage)
        except ProviderError as error:
            attempt += 1
            if not error.transient or attempt >= MAX_ATTEMPTS_PER_CALL:
                raise
            wait = _backoff(attempt - 1, error)
            if clock.text_shown and not run.response_id:
                # The broken attempt's text is shown again from scratch; a background one is resumed instead.
                streams.publish(run.pk, "reset")
            streams.publish(run.pk, "note", f"{error.message} Retrying in {wait:.1f} s…")
            log.info("run %s: transient provider error, retry %s in %.1fs: %s", run.pk, attempt, wait, error.message)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                _check_in(run, clock)
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


# -- the run --------------------------------------------------------------------------------------

def _incomplete_message(reason: str) -> str:
    words = INCOMPLETE_REASONS.get(reason, f"the provider gave the reason {reason!r}" if reason else "no reason given")
    return f"The reply is incomplete: {words}."


def execute(run: Run, facts: ModelFacts, usage: Usage, clock: Clock) -> None:
    """The Responses run; run_engines has it run under the run's heartbeat."""
    request_id, trimmed = "", 0
    try:
        if _final_reply_saved(run):
            _finish(run, RunStatus.SUCCEEDED, usage=usage, facts=facts, clock=clock)
            return
        for _round in range(MAX_TOOL_ROUNDS):
            history, sources = history_with_sources(thread=run.thread, version=run.version, facts=facts)
            trimmed = history.trimmed
            if trimmed:
                streams.publish(run.pk, "note", f"{trimmed} older messages were left out to fit the context window.")
            body = responses_body(run.version, facts, input_items(history.messages, sources, model=run.model))
            turn = _call_with_retries(run, body, clock, usage, history.prompt_tokens)
            request_id = turn.request_id or request_id
            if turn.status == "incomplete":
                # The user's message stays; what was written is kept, marked as cut short.
                _finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed, error=_incomplete_message(turn.incomplete_reason),
                        reply=turn.text + " …" if turn.text else None, reasoning=turn.reasoning)
                return
            if not turn.tool_calls and not turn.text:
                raise RunStopped(f"{NO_TEXT_MESSAGE} (status: {turn.status or 'none'}).")
            if not turn.tool_calls:
                _finish(run, RunStatus.SUCCEEDED, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed, reply=turn.text, reasoning=turn.reasoning)
                return
            with transaction.atomic():
                _owned(run)
                _save_reply(run, turn.text, turn.tool_calls, reasoning=turn.reasoning)
                # The next round is a new response; this one is done with.
                Run.objects.filter(pk=run.pk).update(response_id="")
            run.response_id = ""
            waiting = _run_tools(run, turn.tool_calls, clock)
            streams.publish(run.pk, "saved")
            if waiting:
                _finish(run, RunStatus.WAITING, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed)
                return
        raise RunStopped(f"The model kept calling tools for {MAX_TOOL_ROUNDS} rounds; stopped.")
    except RunCancelled:
        _cancel_background(run)
        partial = _partial_text(run)
        _finish(run, RunStatus.CANCELLED, usage=usage, facts=facts, clock=clock, error="Stopped by a person.",
                request_id=request_id, trimmed=trimmed, reply=partial + " …" if partial else None)
    except ProviderError as error:
        _finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock, error=error.message,
                request_id=error.request_id or request_id, trimmed=trimmed)
    except (RunStopped, HistoryTooLong) as error:
        _finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock, error=str(error), request_id=request_id,
                trimmed=trimmed)
    except RunSuperseded:
        raise
    except Exception:
        log.exception("run %s crashed", run.pk)
        if Run.objects.filter(pk=run.pk).exists():
            _finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock,
                    error="The run failed because of an error in Switchboard; it was logged.", request_id=request_id)
        else:
            streams.publish_end(run.pk)

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

from assistants_app.conversation import HistoryTooLong, history_with_sources, responses_request, version_request_spec
from assistants_app.models import AssistantVersion, Message, Run, RunStatus
from assistants_app.run_loop import (
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
    _crashed,
    _final_reply_saved,
    _finish,
    _Outbox,
    _owned,
    _release_database_connection,
    _run_tools,
    _save_reply,
    _stream_error,
)
from project.providers.client import ProviderError, provider_errors
from project.providers.model_facts import ModelFacts

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
    response_id: str = ""
    # The response's final status (completed, incomplete) and, when incomplete, why.
    status: str = ""
    incomplete_reason: str = ""


@dataclass
class _ThinkingOutbox(_Outbox):
    """Reasoning summary deltas, sent to the run's stream as "thinking" entries."""

    def flush(self, now: float | None = None) -> None:
        if self.parts:
            self.live.publish("thinking", "".join(self.parts))
            self.parts = []
        self.last = now or time.monotonic()


# -- the request ----------------------------------------------------------------------------------

def _input_part(part: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions content part (conversation.user_content) as a Responses input part."""
    if part.get("type") == "image_url":
        return {"type": "input_image", "image_url": (part.get("image_url") or {}).get("url"), "detail": "auto"}
    if part.get("type") == "file":
        return {"type": "input_file", "file_id": (part.get("file") or {}).get("file_id")}
    return {"type": "input_text", "text": part.get("text", "")}


def input_items(messages: list[dict[str, Any]], sources: list[Message], *, model: str) -> list[dict[str, Any]]:
    """The history (conversation.history_with_sources) as Responses input items. A reply's
    reasoning items go back in front of it, when the reply was written by the same model
    (another model cannot read them)."""
    models = dict(AssistantVersion.objects.filter(pk__in={m.version_id for m in sources if m.reasoning_items})
                  .values_list("pk", "model"))
    items: list[dict[str, Any]] = []
    for api, source in zip(messages, sources, strict=True):
        role = api["role"]
        if role == "user":
            content = api["content"]
            items.append({"role": "user", "content": content if isinstance(content, str)
                          else [_input_part(part) for part in content]})
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": api["tool_call_id"], "output": api["content"]})
        else:
            if source.reasoning_items and source.version_id is not None and models.get(source.version_id) == model:
                items += source.reasoning_items
            if api.get("content"):
                items.append({"role": "assistant", "content": api["content"]})
            items += [{"type": "function_call", "call_id": call["id"], "name": call["function"]["name"],
                       "arguments": call["function"]["arguments"]} for call in api.get("tool_calls") or ()]
    return items


def responses_body(version: AssistantVersion, facts: ModelFacts, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The streamed request for a run: the version's spec through the one request builder
    (conversation.responses_request), not stored, with a reasoning model's summary and
    its encrypted reasoning asked for."""
    body = responses_request(version_request_spec(version, facts), items)
    body["stream"] = True
    body["store"] = False
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


def _stream_once(run: Run, body: dict[str, Any], clock: Clock, usage: Usage, prompt_tokens: int,
                 facts: ModelFacts) -> ResponseTurn:
    assert run.assistant.connection is not None
    client = _client(run.assistant.connection)
    outbox, thinking = _Outbox(clock.live), _ThinkingOutbox(clock.live)
    turn = ResponseTurn()
    calls: list[dict[str, Any]] = []
    counted = False
    _release_database_connection()
    with provider_errors(), client.responses.with_streaming_response.create(**body) as response:
        turn.request_id = response.headers.get("x-request-id", "")
        try:
            for event in _events(response, on_idle=lambda: _check_in(run, clock)):
                kind = event.get("type")
                if kind == "response.output_text.delta":
                    _first_output(clock)
                    turn.text += event.get("delta") or ""
                    outbox.add(event.get("delta") or "")
                    clock.text_shown = True
                elif kind == "response.reasoning_summary_text.delta":
                    _first_output(clock)
                    thinking.add(event.get("delta") or "")
                    clock.text_shown = True
                elif kind == "response.reasoning_summary_part.done":
                    thinking.add("\n\n")
                elif kind == "response.output_item.done":
                    item = event.get("item") or {}
                    if item.get("type") == "function_call":
                        _first_output(clock)
                        calls.append(item)
                    elif item.get("type") == "reasoning":
                        turn.reasoning.items.append(item)
                elif kind == "response.created":
                    turn.response_id = (event.get("response") or {}).get("id", "")
                elif kind in ("response.completed", "response.incomplete"):
                    final = event.get("response") or {}
                    turn.status = str(final.get("status") or "completed")
                    turn.incomplete_reason = str((final.get("incomplete_details") or {}).get("reason") or "")
                    if final.get("usage"):
                        usage.add(_usage_as_chat(final["usage"]))
                        counted = True
                elif kind == "response.failed":
                    raise _error_event((event.get("response") or {}).get("error") or {})
                elif kind == "error":
                    raise _error_event(event)
                _check_in(run, clock)
        finally:
            outbox.flush()
            thinking.flush()
    turn.tool_calls = [{"id": call.get("call_id", ""), "type": "function",
                        "function": {"name": call.get("name", ""), "arguments": call.get("arguments") or ""}}
                       for call in calls]
    turn.reasoning.summary = "\n\n".join(part.get("text", "") for item in turn.reasoning.items
                                         for part in item.get("summary") or () if part.get("text"))
    if not counted:
        usage.estimate(prompt_tokens=prompt_tokens, encoding_name=facts.encoding, turn=turn)
    return turn


def _call_with_retries(run: Run, body: dict[str, Any], clock: Clock, usage: Usage, prompt_tokens: int,
                      facts: ModelFacts) -> ResponseTurn:
    """As run_loop's: transient failures are tried again after a backoff that honours
    retry-after, and what a broken attempt showed is reset."""
    attempt = 0
    while True:
        clock.text_shown = False
        try:
            return _stream_once(run, body, clock, usage, prompt_tokens, facts)
        except ProviderError as error:
            attempt += 1
            if not error.transient or attempt >= MAX_ATTEMPTS_PER_CALL:
                raise
            wait = _backoff(attempt - 1, error)
            if clock.text_shown:
                clock.live.publish("reset")
            clock.live.publish("note", f"{error.message} Retrying in {wait:.1f} s…")
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
    """The Responses run; run_dispatch calls it under the run's heartbeat."""
    request_id, trimmed = "", 0
    try:
        if _final_reply_saved(run):
            _finish(run, RunStatus.SUCCEEDED, usage=usage, facts=facts, clock=clock)
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
            waiting = _run_tools(run, turn.tool_calls, clock)
            clock.live.publish("saved")
            if waiting:
                _finish(run, RunStatus.WAITING, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed)
                return
        raise RunStopped(f"The model kept calling tools for {MAX_TOOL_ROUNDS} rounds; stopped.")
    except RunCancelled:
        partial = clock.live.text()
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
    except Exception as error:  # noqa: BLE001 - logged (a bug) or named (a service) in _crashed
        _crashed(run, error, usage=usage, facts=facts, clock=clock, request_id=request_id)

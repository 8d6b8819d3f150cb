"""A streamed response, read into what the run needs (the Responses engine's wire).

The events come in as plain dicts (no pydantic model per event, as run_loop reads chat
chunks); text and reasoning summary deltas go to the run's Redis Stream; the finished
response's output (text, function calls, reasoning items) and usage make the turn.

A background response (a long-running version) can be resumed: each flush of deltas is
followed by a "cursor" entry on the run's stream (the last sequence_number flushed and
how much text and thinking the stream then shows), so the next attempt, in this worker or
another, follows the provider's stream from there with starting_after and shows nothing
twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
from django.db import transaction

from assistants_app import streams
from assistants_app.live import LiveDisplay
from assistants_app.models import Run
from assistants_app.run_attempt import (
    INCOMPLETE_MESSAGE,
    Clock,
    Reasoning,
    ReplyIncomplete,
    StreamedReply,
    Turn,
    Usage,
    check_in,
    ensure_owned,
    flush_seconds,
    provider_client,
    provider_stream,
    release_database_connection,
    sse_data,
    stream_error,
)
from project.outages import REDIS_ERRORS
from project.providers.client import ProviderError, ProviderTimeout, ProviderUnreachable, provider_errors
from project.providers.model_facts import ModelFacts
from project.providers.paced_reads import ReadPacer, read_pacer

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


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
    """Text and thinking deltas on their way to the run's stream: the first of each kind at
    once, later ones together at most every FLUSH_SECONDS, longer while the process is busy
    (flush_seconds; as run_loop's _Outbox). For a background
    response each flush is followed by a "cursor" entry: the sequence_number of the last
    event flushed and how much text and thinking the stream then shows, so a worker that
    takes the run over resumes the provider's stream after it, with nothing lost and,
    whatever it replays beyond the cursor, nothing shown twice (see resume_point)."""

    live: LiveDisplay
    background: bool
    # The reply's connection: once the reply's text has begun, its next read waits for the
    # next flush (paced_reads). Not while it thinks: the first words would wait for it.
    pacer: ReadPacer | None = None
    text_len: int = 0
    thinking_len: int = 0
    sequence: int | None = None
    parts: dict[str, list[str]] = field(default_factory=lambda: {"thinking": [], "delta": []})
    last: float = 0.0
    interval: float = 0.0  # until the next flush: set by each flush (flush_seconds)

    # The kinds already on the stream: the first piece of each (the thinking, then the
    # reply's first words) goes at once, not at the next flush.
    started: set[str] = field(default_factory=set)

    def add(self, kind: str, piece: str, sequence: int | None) -> None:
        if piece:
            self.parts[kind].append(piece)
        self.sequence = sequence if sequence is not None else self.sequence
        now = time.monotonic()
        if now - self.last >= self.interval or (piece and kind not in self.started):
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        wrote = False
        for kind, parts in self.parts.items():
            if parts:
                text = "".join(parts)
                self.live.publish(kind, text)
                self.started.add(kind)
                if kind == "delta":
                    self.text_len += len(text)
                else:
                    self.thinking_len += len(text)
                parts.clear()
                wrote = True
        if wrote and self.background and self.sequence is not None:
            self.live.publish("cursor", f"{self.sequence}:{self.text_len}:{self.thinking_len}")
        self.last = now or time.monotonic()
        self.interval = flush_seconds()
        if self.pacer is not None and "delta" in self.started:
            self.pacer.hold_until(self.last + self.interval)


@dataclass
class ResumePoint:
    """Where a background response's stream is picked up: after `after` (None: from its
    start), skipping the text and thinking the run's stream already shows beyond it."""

    response_id: str
    after: int | None
    shown_text: str
    shown_thinking: str
    skip_text: int
    skip_thinking: int


def resume_point(run: Run) -> ResumePoint | None:
    """A run whose background response was created (by this attempt before a broken stream,
    or by a worker that died): resume it from the last cursor its stream holds."""
    if not run.response_id:
        return None
    try:
        shown, _, _ = streams.fold(streams.redis_client().xrange(streams.stream_key(run.pk)))
    except REDIS_ERRORS:
        # The display is out of reach: resume from the response's start (nothing is lost;
        # the page is written over when Redis answers again).
        shown = []
    text = "".join(data for kind, data in shown if kind == "delta")
    thinking = "".join(data for kind, data in shown if kind == "thinking")
    cursor = next((data for kind, data in reversed(shown) if kind == "cursor"), None)
    after, text_len, thinking_len = (int(n) for n in cursor.split(":")) if cursor else (None, 0, 0)
    return ResumePoint(run.response_id, after, text, thinking, len(text) - text_len, len(thinking) - thinking_len)


def _record_response(run: Run, response_id: str) -> None:
    """The background response is the run's: a worker that takes the run over resumes it."""
    with transaction.atomic():
        ensure_owned(run)
        Run.objects.filter(pk=run.pk).update(response_id=response_id)
    run.response_id = response_id


def _events(response: StreamedReply, on_idle: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """A streamed response's events as plain dicts (run_attempt.sse_data, as run_loop._chunks
    reads chat chunks, without a pydantic model per event). Complete only when a terminal
    event came (completed, incomplete, failed); a stream that ends before raises ReplyIncomplete."""
    finished = False
    try:
        for payload in sse_data(response, on_idle):
            try:
                event = json.loads(payload)
            except ValueError as error:
                raise ReplyIncomplete(f"The provider sent an event that is not JSON: "
                                      f"{payload[:80].decode(errors='replace')!r}") from error
            if not isinstance(event, dict):
                continue
            finished = finished or event.get("type") in TERMINAL_EVENTS
            yield event
    # The provider was reached and the reply had begun: a connection that breaks now is not
    # "the host is unreachable" (what the SDK's APIConnectionError would be called).
    except httpx2.TimeoutException as error:
        raise ProviderTimeout("The provider stopped sending in the middle of the reply (timeout).") from error
    except httpx2.TransportError as error:
        raise ProviderUnreachable(f"The connection to the provider broke in the middle of the reply "
                                  f"({type(error).__name__}).") from error
    if not finished:
        raise ReplyIncomplete(INCOMPLETE_MESSAGE)


def usage_as_chat(usage: dict[str, Any]) -> dict[str, Any]:
    """A response's usage in Chat Completions' names, which run_attempt.Usage counts."""
    return {
        "prompt_tokens": usage.get("input_tokens") or 0,
        "completion_tokens": usage.get("output_tokens") or 0,
        "prompt_tokens_details": {"cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0},
        "completion_tokens_details": {
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0},
    }


def error_event(event: dict[str, Any]) -> ProviderError:
    """An `error` event, or a response.failed's error object: a server error is retried."""
    code = event.get("code")
    return stream_error({"message": event.get("message"),
                          "type": "server_error" if code in (None, "server_error") else code})


def first_output(clock: Clock) -> None:
    if clock.first_token is None:
        clock.first_token = time.monotonic()


def final_output(turn: ResponseTurn, final: dict[str, Any]) -> None:
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


def open_stream(run: Run, body: dict[str, Any], resume: ResumePoint | None) -> Any:
    assert run.assistant.connection is not None
    if resume is None:
        return provider_stream(run.assistant.connection, "/responses", body)
    client = provider_client(run.assistant.connection)
    if resume.after is None:
        return client.responses.with_streaming_response.retrieve(resume.response_id, stream=True)
    return client.responses.with_streaming_response.retrieve(resume.response_id, stream=True,
                                                              starting_after=resume.after)


def stream_once(run: Run, body: dict[str, Any], clock: Clock, usage: Usage, prompt_tokens: int,
                facts: ModelFacts) -> ResponseTurn:
    resume = resume_point(run)
    publisher = _Publisher(clock.live, background=bool(body.get("background")))
    skip_text = skip_thinking = 0
    turn = ResponseTurn()
    if resume is not None:
        publisher.text_len, publisher.thinking_len = len(resume.shown_text), len(resume.shown_thinking)
        skip_text, skip_thinking = resume.skip_text, resume.skip_thinking
        turn.text, turn.response_id = resume.shown_text, resume.response_id
    counted = False
    release_database_connection()
    with provider_errors(), open_stream(run, body, resume) as response, read_pacer(response) as pacer:
        publisher.pacer = pacer
        turn.request_id = response.headers.get("x-request-id", "")
        try:
            for event in _events(response, on_idle=lambda: check_in(run, clock)):
                kind = event.get("type")
                sequence = event.get("sequence_number")
                if kind == "response.output_text.delta":
                    first_output(clock)
                    piece = event.get("delta") or ""
                    cut, skip_text = min(skip_text, len(piece)), skip_text - min(skip_text, len(piece))
                    turn.text += piece[cut:]
                    publisher.add("delta", piece[cut:], sequence)
                    clock.text_shown = True
                elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_summary_part.done"):
                    first_output(clock)
                    piece = event.get("delta") or "" if kind.endswith(".delta") else "\n\n"
                    cut, skip_thinking = min(skip_thinking, len(piece)), skip_thinking - min(skip_thinking, len(piece))
                    publisher.add("thinking", piece[cut:], sequence)
                    clock.text_shown = True
                elif kind == "response.output_item.done":
                    item = event.get("item") or {}
                    if item.get("type") == "function_call":
                        first_output(clock)
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
                    final_output(turn, final)
                    if final.get("usage"):
                        usage.add(usage_as_chat(final["usage"]))
                        counted = True
                elif kind == "response.failed":
                    raise error_event((event.get("response") or {}).get("error") or {})
                elif kind == "error":
                    raise error_event(event)
                check_in(run, clock)
        finally:
            publisher.flush()
    turn_calls(turn)
    if not counted:
        usage.estimate(prompt_tokens=prompt_tokens, encoding_name=facts.encoding, turn=turn)
    return turn


def turn_calls(turn: ResponseTurn) -> None:
    """The function_call items as chat tool calls (what run_attempt's tools and the history take), and the summary."""
    turn.tool_calls = [{"id": call.get("call_id", ""), "type": "function",
                        "function": {"name": call.get("name", ""), "arguments": call.get("arguments") or ""}}
                       for call in turn.calls]
    turn.reasoning.summary = "\n\n".join(part.get("text", "") for item in turn.reasoning.items
                                         for part in item.get("summary") or () if part.get("text"))




def shown_text(run: Run) -> str:
    """The reply text the run's stream shows: this attempt's and, after a takeover, what an
    earlier attempt showed of the same background response ("" while Redis is down)."""
    try:
        shown, _, _ = streams.fold(streams.redis_client().xrange(streams.stream_key(run.pk)))
    except REDIS_ERRORS:
        return ""
    return "".join(data for kind, data in shown if kind == "delta")

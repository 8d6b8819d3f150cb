"""The run, as the worker executes it: claim, build and trim the history, stream
Chat Completions into the run's Redis Stream, run tools, repeat, save usage.

Everything here is restartable from the database: the history is rebuilt from
stored messages each time, so a run resumed after a person answered a tool, or
re-queued after its worker died, carries on from what was saved. What does not depend on
the engine (the watch, usage, tools, ending the run) is run_attempt's, shared with the
Responses engine's loop (responses_loop, responses_stream).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, partial
from typing import Any

import httpx2
from django.db import transaction
from django.utils import timezone

from assistants_app.conversation import (
    build_history,
    chat_request,
    history_first_page,
    history_first_page_statement,
    version_request_spec,
)
from assistants_app.live import LiveDisplay
from assistants_app.models import Assistant, AssistantVersion, Message, Run, RunStatus, Thread
from assistants_app.run_attempt import (
    DATABASE_OUTAGE_SECONDS,
    INCOMPLETE_MESSAGE,
    MAX_ATTEMPTS_PER_CALL,
    MAX_TOOL_ROUNDS,
    NO_TEXT_MESSAGE,
    Clock,
    ReplyIncomplete,
    RunStopped,
    RunSuperseded,
    StreamedReply,
    Turn,
    Usage,
    attempt_failed,
    backoff,
    check_in,
    ensure_owned,
    final_reply_saved,
    flush_seconds,
    provider_stream,
    release_database_connection,
    reply_save,
    run_finish,
    run_tools,
    run_watch,
    sse_data,
    stream_error,
)
from project.joined_rows import JoinedModel, joined_build, joined_fetch, pipelined_rows
from project.outages import database_call
from project.providers.capabilities import capabilities_known, refusal_after_error, request_needs, request_refusal
from project.providers.client import (
    ProviderError,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnreachable,
    provider_errors,
)
from project.providers.connection_facts import connection_model_facts_given
from project.providers.model_facts import ModelFacts
from project.providers.models import DEFAULT_ENGINES, ConnectionModelFacts, Engine, ProviderConnection
from project.providers.paced_reads import ReadPacer, read_pacer

log = logging.getLogger(__name__)


@dataclass
class _Outbox:
    """Deltas on their way to the run's stream. The first goes at once (time to first
    token); later ones are sent together at most every FLUSH_SECONDS (longer while the
    process is busy: flush_seconds), so a fast stream costs a few Redis writes instead of
    one per token, with no visible lag."""

    live: LiveDisplay
    # The reply's connection: its next read waits for the next flush (paced_reads).
    pacer: ReadPacer | None = None
    parts: list[str] = field(default_factory=list)
    last: float = 0.0
    interval: float = 0.0  # until the next flush: set by each flush

    def add(self, text: str) -> None:
        self.parts.append(text)
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self.parts:
            self.live.publish("delta", "".join(self.parts))
            self.parts = []
        self.last = now or time.monotonic()
        self.interval = flush_seconds()
        if self.pacer is not None:
            self.pacer.hold_until(self.last + self.interval)


def _chunks(response: StreamedReply, on_idle: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """A streamed Chat Completion's chunks as plain dicts, read off the server-sent
    events (sse_data). The SDK's own iterator builds a pydantic model per chunk: for a
    fast stream that was the worker's largest CPU cost. Errors are raised as the SDK
    would raise them. A stream is complete only when the provider says so (a
    finish_reason or [DONE]); one that ends without either raises ReplyIncomplete."""
    finished = False
    chunks = 0
    try:
        for payload in sse_data(response, on_idle):
            if payload.startswith(b"[DONE]"):
                return
            try:
                chunk = json.loads(payload)
            except ValueError as error:
                raise ProviderServerError(f"The provider sent a part of the reply that is not JSON: "
                                          f"{payload[:80].decode(errors='replace')!r}") from error
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                raise stream_error(chunk["error"])
            chunks += 1
            finished = finished or any(isinstance(choice, dict) and choice.get("finish_reason")
                                        for choice in chunk.get("choices") or ())
            yield chunk
    except httpx2.TimeoutException as error:
        raise ProviderTimeout("The provider stopped sending in the middle of the reply (timeout).") from error
    except httpx2.TransportError as error:
        # The provider was reached (the reply had begun): the connection broke, the host is not "unreachable".
        raise ProviderUnreachable(f"The connection to the provider broke in the middle of the reply "
                                  f"({type(error).__name__}).") from error
    if not finished:
        hint = (" It sent nothing at all, which some servers (llama.cpp) do when the conversation is over their "
                "context window." if not chunks else "")
        raise ReplyIncomplete(INCOMPLETE_MESSAGE + hint)


def _stream_once(run: Run, body: dict[str, Any], clock: Clock, usage: Usage, prompt_tokens: int,
                 facts: ModelFacts) -> Turn:
    assert run.assistant.connection is not None
    turn = Turn()
    calls: dict[int, dict[str, Any]] = {}
    counted = False
    release_database_connection()
    with (provider_errors(), provider_stream(run.assistant.connection, "/chat/completions", body) as response,
          read_pacer(response) as pacer):
        outbox = _Outbox(clock.live, pacer)
        turn.request_id = response.headers.get("x-request-id", "")
        try:
            for chunk in _chunks(response, on_idle=lambda: check_in(run, clock)):
                if chunk.get("usage"):
                    usage.add(chunk["usage"])
                    counted = True
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    content = delta.get("content")
                    if content:
                        if clock.first_token is None:
                            clock.first_token = time.monotonic()
                        turn.text += content
                        outbox.add(content)
                        clock.text_shown = True
                    for call in delta.get("tool_calls") or ():
                        if clock.first_token is None:
                            clock.first_token = time.monotonic()
                        slot = calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                        if call.get("id"):
                            slot["id"] = call["id"]
                        function = call.get("function") or {}
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
                    if choice.get("finish_reason"):
                        turn.finish_reason = choice["finish_reason"]
                check_in(run, clock)
        except BaseException:
            if not counted:  # stopped or broken mid-stream: the provider billed the prompt and what it sent
                usage.estimate(prompt_tokens=prompt_tokens, encoding_name=facts.encoding, turn=turn)
            raise
        finally:
            outbox.flush()
    turn.tool_calls = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                       for _, c in sorted(calls.items())]
    if not counted:
        usage.estimate(prompt_tokens=prompt_tokens, encoding_name=facts.encoding, turn=turn)
    return turn


def _capability_refusal(run: Run, body: dict[str, Any], error: ProviderError) -> str:
    """Whether a refused request (a 4xx, or a 5xx a server sends when it fails on what it does
    not support, as llama.cpp does for json_schema) was refused for a capability the server
    lacks: those capabilities are probed again. Such a refusal is final, never retried."""
    if error.status_code is None or error.status_code in (401, 403, 408, 429):
        return ""
    assert run.assistant.connection is not None
    refusal = refusal_after_error(connection=run.assistant.connection, needs=request_needs(body), model=run.model)
    return f"{refusal} (The server said: {error.message})" if refusal else ""


def _call_with_retries(run: Run, body: dict[str, Any], clock: Clock, usage: Usage, prompt_tokens: int,
                       facts: ModelFacts) -> Turn:
    attempt = 0
    while True:
        clock.text_shown = False
        try:
            return _stream_once(run, body, clock, usage, prompt_tokens, facts)
        except ProviderError as error:
            attempt += 1
            refusal = _capability_refusal(run, body, error) if attempt == 1 else ""
            if refusal:
                raise RunStopped(refusal) from error
            if not error.transient or attempt >= MAX_ATTEMPTS_PER_CALL:
                raise
            wait = backoff(attempt - 1, error)
            if clock.text_shown:
                clock.live.publish("reset")  # the broken attempt's text is shown again from scratch
            clock.live.publish("note", f"{error.message} Retrying in {wait:.1f} s…")
            log.info("run %s: transient provider error, retry %s in %.1fs: %s", run.pk, attempt, wait, error.message)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                check_in(run, clock)
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


# -- the run -----------------------------------------------------------------------------------

type RunLoop = Callable[[Run, ModelFacts, Usage, Clock], None]


_CLAIMED = (JoinedModel(Run, "r"), JoinedModel(Thread, "t"), JoinedModel(Assistant, "a"),
            JoinedModel(ProviderConnection, "c"), JoinedModel(AssistantVersion, "v"),
            JoinedModel(ConnectionModelFacts, "f"))


@cache
def _claim_sql() -> str:
    """The claim, one statement: the run taken if it is still queued (its attempt counted, its
    engine recorded), returned with what the way to its first token reads next (its thread,
    assistant, connection, version and the connection's facts for its model). Built once
    from the models' fields; the engine is ProviderConnection.run_engine said in SQL, with
    the kinds' defaults as parameters (_claim_params)."""
    run, thread, assistant, connection, version, facts = _CLAIMED
    defaults = " ".join(f"WHEN %(kind_{n})s THEN %(engine_{n})s" for n in range(len(DEFAULT_ENGINES)))
    engine = f"COALESCE(NULLIF(c.engine, ''), NULLIF(c.engine_detected, ''), CASE c.kind {defaults} ELSE %(chat)s END)"
    # Only table and column names from the models' own metadata are formatted in; every value is a parameter.
    # Columns by name, never `*`: the rows are cut into models by the models' own field lists,
    # so a column a migration adds while workers run (and the statement is prepared on their
    # connections) must not change the result's shape.
    return f"""
        WITH r AS (
            UPDATE {Run._meta.db_table} AS claimed
               SET status = %(running)s, attempts = claimed.attempts + 1, heartbeat_at = %(now)s,
                   started_at = %(now)s, engine = {engine}
              FROM {Assistant._meta.db_table} a LEFT JOIN {ProviderConnection._meta.db_table} c
                ON c.id = a.connection_id
             WHERE claimed.id = %(run_id)s AND claimed.status = %(queued)s AND a.id = claimed.assistant_id
         RETURNING {JoinedModel(Run, 'claimed').columns})
        SELECT {run.columns}, {thread.columns}, {assistant.columns}, {connection.columns}, {version.columns},
               {facts.columns}
          FROM r
          JOIN {Thread._meta.db_table} t ON t.id = r.thread_id
          JOIN {Assistant._meta.db_table} a ON a.id = r.assistant_id
          LEFT JOIN {ProviderConnection._meta.db_table} c ON c.id = a.connection_id
          JOIN {AssistantVersion._meta.db_table} v ON v.id = r.version_id
          LEFT JOIN {ConnectionModelFacts._meta.db_table} f ON f.connection_id = c.id AND f.model_id = r.model"""  # noqa: S608


def _claim_params(run_id: int, now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {"running": RunStatus.RUNNING, "queued": RunStatus.QUEUED, "now": now, "run_id": run_id,
                              "chat": Engine.CHAT_COMPLETIONS}
    for n, (kind, engine) in enumerate(DEFAULT_ENGINES.items()):
        params[f"kind_{n}"], params[f"engine_{n}"] = str(kind), str(engine)
    return params


@dataclass
class Claimed:
    run: Run
    execute: RunLoop
    saved_facts: ConnectionModelFacts | None  # the connection's facts for the run's model, if an admin set any


@cache
def _posting_waited_sql() -> str:
    # FOR SHARE waits for the lock the message POST's UPDATE of the thread holds until it commits.
    return f"SELECT 1 FROM {Thread._meta.db_table} WHERE id = %s FOR SHARE"  # noqa: S608 - the table's own name


def run_claim(run_id: int, choose_loop: Callable[[Run], RunLoop | None] | None = None, *,
              posted_in: int | None = None) -> Claimed | None:
    """Take a queued run for this worker, with the loop that runs it (`choose_loop` picks it
    by run.engine; this module's Chat Completions loop otherwise). One round trip, a prepared
    statement (_claim_sql): the start of a run is on the way to its first token, and the
    ORM's select-then-update took two round trips, a plan of a five-table join each time and
    the facts' query after (about 6 ms of the 21 ms the dashboard added). The update is
    conditional on the status, so a redelivered or duplicated task, or one that lost a race
    with another worker, claims nothing.

    `posted_in`: the thread of a run sent to the worker before the message POST that made it
    had committed (services.thread_post_message sends it as soon as its row is written, so the
    worker's start overlaps the rest of the POST). The claim then first waits, in the same
    round trip, for the POST's lock on that thread: the run is committed, or rolled back
    (a refused post: nothing to claim), when the claim reads it. The history's newest
    messages (the message just posted among them) are read in that round trip too, after
    the claim, instead of in one of their own on the way to the first token."""
    now = timezone.now()  # when this worker began to take it (the queue's wait ends here)
    claim = (_claim_sql(), _claim_params(run_id, now))
    if posted_in is None:
        built = joined_fetch(*claim, _CLAIMED)
        first_page = None
    else:
        _, claimed_rows, history_rows = pipelined_rows([(_posting_waited_sql(), (posted_in,)), claim,
                                                        history_first_page_statement(posted_in)])
        built = joined_build(claimed_rows[0], _CLAIMED) if claimed_rows else None
        first_page = history_first_page(history_rows)
    if built is None:
        return None
    run, thread, assistant, connection, version, facts = built
    assert isinstance(run, Run) and isinstance(thread, Thread) and isinstance(assistant, Assistant)
    assert isinstance(version, AssistantVersion)
    assert connection is None or isinstance(connection, ProviderConnection)
    assert facts is None or isinstance(facts, ConnectionModelFacts)
    assistant.connection = connection
    run.thread, run.assistant, run.version = thread, assistant, version
    # This module's loop starts from the history read with the claim (the Responses engine's reads its own).
    chat_loop = partial(_execute, first_page=first_page if run.thread_id == posted_in else None)
    return Claimed(run, (choose_loop(run) if choose_loop else None) or chat_loop, facts)


def run_execute(run_id: int, choose_loop: Callable[[Run], RunLoop | None] | None = None, *,
                posted_in: int | None = None) -> None:
    """Claim the run and execute it: with the loop `choose_loop` picks for it (run_engines
    picks by the connection's engine), or this module's Chat Completions loop. `posted_in`:
    see run_claim."""
    claimed = database_call(lambda: run_claim(run_id, choose_loop, posted_in=posted_in), what="taking the run",
                            limit_seconds=DATABASE_OUTAGE_SECONDS)
    if claimed is None:
        return
    run, execute = claimed.run, claimed.execute
    facts = connection_model_facts_given(run.assistant.connection, run.model, claimed.saved_facts)
    usage, clock = Usage(), Clock(LiveDisplay(run.pk))
    with run_watch.watch(run, clock):
        try:
            execute(run, facts, usage, clock)
        except RunSuperseded:
            log.warning("run %s: attempt %s was superseded by another; it stops without writing", run.pk, run.attempts)


def _execute(run: Run, facts: ModelFacts, usage: Usage, clock: Clock, *, first_page: list[Message] | None = None) -> None:
    """`first_page`: the history's newest messages, read with the claim (run_claim); the
    first round's history starts from them."""
    request_id, trimmed, turn = "", 0, Turn()
    try:
        if run.attempts > 1 and final_reply_saved(run):
            # Sent again after its reply was saved (a duplicate task, a sweep that raced the
            # end): the reply stands; the run ends without calling the provider again.
            run_finish(run, RunStatus.SUCCEEDED, usage=usage, facts=facts, clock=clock)
            return
        for _round in range(MAX_TOOL_ROUNDS):
            messages, trimmed, prompt_tokens = database_call(
                partial(build_history, thread=run.thread, version=run.version, facts=facts,
                        first_page=first_page if _round == 0 else None),
                what="reading the conversation", limit_seconds=DATABASE_OUTAGE_SECONDS)
            if trimmed:
                clock.live.publish("note", f"{trimmed} older messages were left out to fit the context window.")
            body = chat_request(version_request_spec(run.version, facts), messages, stream=True)
            _check_capabilities(run, body)
            turn = _call_with_retries(run, body, clock, usage, prompt_tokens, facts)
            request_id = turn.request_id or request_id
            if not turn.tool_calls and not turn.text:
                raise RunStopped(f"{NO_TEXT_MESSAGE} (finish reason: {turn.finish_reason or 'none'}).")
            if not turn.tool_calls:
                run_finish(run, RunStatus.SUCCEEDED, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed, reply=turn.text)
                return
            database_call(partial(_save_tool_calls, run, turn), what="saving the tool calls",
                          limit_seconds=DATABASE_OUTAGE_SECONDS)
            waiting = run_tools(run, turn.tool_calls, clock)
            clock.live.publish("saved")
            if waiting:
                run_finish(run, RunStatus.WAITING, usage=usage, facts=facts, clock=clock, request_id=request_id,
                        trimmed=trimmed)
                return
        raise RunStopped(f"The model kept calling tools for {MAX_TOOL_ROUNDS} rounds; stopped.")
    except RunSuperseded:
        raise
    except Exception as error:  # noqa: BLE001 - each kind ends the run in words (attempt_failed)
        attempt_failed(run, error, usage=usage, facts=facts, clock=clock, request_id=request_id, trimmed=trimmed,
                       shown=clock.live.text)


def _save_tool_calls(run: Run, turn: Turn) -> None:
    with transaction.atomic():
        ensure_owned(run)
        reply_save(run, turn.text, turn.tool_calls)


def _check_capabilities(run: Run, body: dict[str, Any]) -> None:
    """Refuse at once, in words, a request the connection's server was seen not to support
    (tools it ignores, a JSON-schema reply it fails on, pictures); probe first when never probed."""
    needs = request_needs(body)
    if not needs.any:
        return
    assert run.assistant.connection is not None
    refusal = request_refusal(capabilities_known(connection=run.assistant.connection, needs=needs, model=run.model),
                              needs)
    if refusal:
        raise RunStopped(refusal)

"""One attempt of a run, whichever engine runs it (run_loop: Chat Completions,
responses_loop: Responses): the clock and the usage it keeps, the process's run watch
(heartbeats, Stop, takeovers), the provider's client and stream reading, retries' backoff,
the tools, and ending the run (its reply, usage, cost and ledger line in one transaction,
a failure in words).

Everything here is restartable from the database, as the loops are: an attempt that no
longer owns its run (RunSuperseded) writes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, Protocol

import httpx2
import openai
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from jsonschema import Draft202012Validator

from assistants_app import streams
from assistants_app.conversation import HistoryTooLong
from assistants_app.live import LiveDisplay
from assistants_app.models import Message, Role, Run, RunStatus, Thread
from assistants_app.spend import run_poster, run_poster_statement, run_spend_record
from assistants_app.tools import ToolFailed, call_http_tool, run_builtin
from project.joined_rows import insert_statement, inserted, pipelined
from project.outages import DATABASE_ERRORS, POSTGRESQL, REDIS_ERRORS, database_call, service_of
from project.providers.client import (
    ClientOptions,
    ProviderError,
    ProviderServerError,
    client_for,
    public_error_text,
)
from project.providers.model_facts import ModelFacts, cost_usd
from project.providers.models import ProviderConnection
from project.tokens import count_message, encoding_for_model, encoding_named

log = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 8
MAX_ATTEMPTS_PER_CALL = 4
HEARTBEAT_SECONDS = 5.0
CANCEL_CHECK_SECONDS = 0.2
RETRY_BASE_SECONDS = 0.5
# Later deltas of a reply are gathered this long (the first goes at once): a tenth of a second
# is under what a reader notices, and halves the Redis writes (and the pages' reads) of 0.05.
# Once a reply's first words are out its reads from the provider keep the same pace
# (project.providers.paced_reads): a token that arrives between flushes waits in the kernel.
FLUSH_SECONDS = 0.1
# While this worker process streams more than BUSY_RUNS replies at once, each one's flush
# interval grows in proportion (up to BUSY_FLUSH_SECONDS): a burst's CPU goes on the flushes
# (a Redis write each, the web's read and an event to the page), not on the text, so the
# flushes per second then stay level as replies are added instead of growing with them.
# A reply still shows its first words at once and then some text four times a second.
BUSY_RUNS = 64
BUSY_FLUSH_SECONDS = 0.25
# retry-after beyond this fails the run rather than holding a worker slot for minutes.
RETRY_MAX_SECONDS = 20.0
# How long a run waits out PostgreSQL (a restart, a pool that ran dry) before it gives up
# its attempt; below the stale-run sweep's 60 s, so the sweep never takes over a run
# that is only waiting.
DATABASE_OUTAGE_SECONDS = 45.0


class RunCancelled(Exception):
    pass


class RunStopped(Exception):
    """The run cannot go on (bad history, too long, thread deleted); the message is shown."""


class RunSuperseded(Exception):
    """This attempt no longer owns the run: the stale-run sweep sent it again (or another
    attempt finished it). It stops without writing anything; the run is the other's."""


@dataclass
class Usage:
    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0
    calls: int = 0
    # Some of the counts are Switchboard's own (a stream without usage), not the provider's.
    estimated: bool = False

    def add(self, usage: dict[str, Any] | None) -> None:
        """Count a completion's `usage` object (a stream's last chunk carries it)."""
        self.calls += 1
        if not usage:
            return
        self.input += usage.get("prompt_tokens") or 0
        self.output += usage.get("completion_tokens") or 0
        self.cached += (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        self.reasoning += (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0

    def estimate(self, *, prompt_tokens: int, encoding_name: str, turn: Turn) -> None:
        """Count a completion whose stream carried no usage with tiktoken: the input is the
        request's count, made while the history was built (conversation.build_history),
        the output is counted from the reply's text and tool calls."""
        self.calls += 1
        self.estimated = True
        self.input += prompt_tokens
        encoding = encoding_named(encoding_name)
        self.output += len(encoding.encode(turn.text, disallowed_special=()))
        if turn.tool_calls:
            self.output += len(encoding.encode(json.dumps(turn.tool_calls, separators=(",", ":")),
                                               disallowed_special=()))

    def cost(self, facts: ModelFacts) -> Decimal | None:
        prices = (facts.price("input"), facts.price("cached_input") or facts.price("input"), facts.price("output"))
        parts = [cost_usd(self.input - self.cached, prices[0]), cost_usd(self.cached, prices[1]),
                 cost_usd(self.output, prices[2])]
        if any(part is None for part in parts):
            return None
        return sum((part for part in parts if part is not None), Decimal(0))


@dataclass
class Turn:
    """What one streamed completion produced."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    request_id: str = ""


@dataclass
class Reasoning:
    """What a reasoning model thought before a reply (Responses engine): the summary shown
    in the "Thinking" block, and the items (encrypted) sent back with the reply later."""

    summary: str = ""
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Clock:
    live: LiveDisplay
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    # Whether the current attempt has put reply text on the run's stream.
    text_shown: bool = False
    # Set by the process's run watch (_RunWatch): another attempt has taken the run over,
    # or a person asked to stop it.
    superseded: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Watched:
    run_id: int
    attempt: int
    superseded: threading.Event
    cancelled: threading.Event


class _RunWatch:
    """The runs a worker process is executing, watched by one thread for all of them, so a
    run costs no thread and no polling of its own. Every CANCEL_CHECK_SECONDS one Redis
    MGET reads whether a person asked to stop any of them (the stop button sets a key);
    every HEARTBEAT_SECONDS one UPDATE writes all their heartbeats. Liveness is the
    worker's, so a provider that takes minutes to the first token (reading a long prompt,
    a reasoning model thinking) never makes a run look dead. A heartbeat only counts for
    an attempt that still owns its run (running, its attempt number); for one that does
    not, `superseded` is set and its run loop stops at its next check-in (check_in)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[tuple[int, int], _Watched] = {}
        self.thread: threading.Thread | None = None
        self.last_beat = time.monotonic()

    def watch(self, run: Run, clock: Clock) -> _Watching:
        return _Watching(self, _Watched(run.pk, run.attempts, clock.superseded, clock.cancelled))

    def add(self, watched: _Watched) -> None:
        with self.lock:
            self.runs[watched.run_id, watched.attempt] = watched
            # Started with the first run (and again in a forked child, where it is not alive).
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._watch, name="run-watch", daemon=True)
                self.thread.start()

    def remove(self, watched: _Watched) -> None:
        with self.lock:
            self.runs.pop((watched.run_id, watched.attempt), None)

    def _watch(self) -> None:
        while True:
            time.sleep(min(CANCEL_CHECK_SECONDS, HEARTBEAT_SECONDS))
            with self.lock:
                watched = list(self.runs.values())
            if not watched:
                continue
            try:
                self._stops(watched)
                if time.monotonic() - self.last_beat >= HEARTBEAT_SECONDS:
                    self.last_beat = time.monotonic()
                    self._beat(watched)
            except Exception:  # a bug here must not end the watch of every run
                log.exception("the run watch failed; it goes on")

    @staticmethod
    def _stops(watched: list[_Watched]) -> None:
        try:
            stopped = streams.cancels_requested([w.run_id for w in watched])
        except REDIS_ERRORS:
            return  # nobody can have asked while Redis is down (the stop button writes to Redis)
        for each in watched:
            if each.run_id in stopped:
                each.cancelled.set()

    @staticmethod
    def _beat(watched: list[_Watched]) -> None:
        try:
            owned = heartbeats_write([(w.run_id, w.attempt) for w in watched])
        except Exception:  # a database blip, a pool that ran dry: the next beat tries again
            log.warning("heartbeats of %d runs not written", len(watched), exc_info=True)
            return
        finally:
            db_connection.close()  # the watch's connection goes back to the pool between beats
        for each in watched:
            if (each.run_id, each.attempt) not in owned:
                each.superseded.set()


@dataclass
class _Watching:
    watch: _RunWatch
    watched: _Watched

    def __enter__(self) -> None:
        self.watch.add(self.watched)

    def __exit__(self, *exc: object) -> None:
        self.watch.remove(self.watched)


run_watch = _RunWatch()


def flush_seconds() -> float:
    """How long a reply's later deltas are gathered now (see BUSY_RUNS): FLUSH_SECONDS, or
    longer while this process executes more than BUSY_RUNS runs."""
    return min(BUSY_FLUSH_SECONDS, FLUSH_SECONDS * max(1.0, len(run_watch.runs) / BUSY_RUNS))


def heartbeats_write(attempts: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """Write the heartbeat of each (run, attempt) that still owns its run, in one UPDATE;
    returns those that do."""
    if not attempts:
        return set()
    owned = Q(pk__in=[])
    for run_id, attempt in attempts:
        owned |= Q(pk=run_id, attempts=attempt)
    runs = Run.objects.filter(owned, status=RunStatus.RUNNING)
    runs.update(heartbeat_at=timezone.now())
    return set(runs.values_list("pk", "attempts"))


def check_in(run: Run, clock: Clock) -> None:
    """Stop when a person asked to, or another attempt has taken the run over (both seen
    by the run watch); while Redis is down, try to catch the display up (on its backoff)."""
    if clock.superseded.is_set():
        raise RunSuperseded()
    if clock.cancelled.is_set():
        raise RunCancelled()
    if clock.live.down:
        clock.live.catch_up()


def release_database_connection() -> None:
    """Give this thread's PostgreSQL connection back to the pool while the model
    streams: a reply can take minutes, and many runs stream at once on one worker,
    so holding a connection per run would exhaust the pool (and the server)."""
    if not db_connection.in_atomic_block:
        db_connection.close()


_clients: dict[tuple[Any, ...], openai.OpenAI] = {}


_clients_lock = threading.Lock()


def provider_client(connection: ProviderConnection) -> openai.OpenAI:
    """One SDK client per process and connection settings, shared by the worker's
    threads (the SDK's clients are thread-safe): its pool keeps connections to the
    provider open between runs, and building a client costs more than a short reply."""
    key = (connection.pk, connection.kind, connection.base_url, connection.api_key_encrypted, connection.api_version,
           connection.organization, connection.project)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = client_for(connection, ClientOptions(max_retries=0))
    return client


class StreamedReply(Protocol):
    """What reading a streamed reply needs of the HTTP response."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def iter_bytes(self) -> Iterator[bytes]: ...


@contextmanager
def provider_stream(connection: ProviderConnection, path: str, body: dict[str, Any]) -> Iterator[httpx2.Response]:
    """POST `body` to the provider's `path` and hand over its streamed reply unread, closed
    afterwards. Through the SDK's client (its base URL, key, Azure's deployment paths,
    timeouts, and its errors for a status that is not 2xx) but not its typed `create`, which
    first walks the whole request through the parameter types (about 0.4 ms of CPU a
    request, in-process, on the way to the first token): our bodies are built as JSON."""
    response = provider_client(connection).post(path, cast_to=httpx2.Response, body=body, stream=True)
    try:
        yield response
    finally:
        response.close()


def stream_error(error: Any) -> ProviderError:
    """An error event in the middle of a reply. OpenAI sends one when a server fails
    after the reply has begun: that is worth a retry, as a 5xx would be."""
    details = error if isinstance(error, dict) else {}
    message = public_error_text(details["message"]) if isinstance(details.get("message"), str) else ""
    message = message or "no reason given"
    if details.get("type") in ("server_error", "api_error", None):
        return ProviderServerError(f"The provider failed in the middle of the reply: {message}")
    return ProviderError(f"The provider stopped the reply: {message}")


class ReplyIncomplete(ProviderServerError):
    """The stream ended without the provider saying the reply was complete (no
    finish_reason, no [DONE]): a server cut it short, or (llama.cpp over its context)
    sent a 200 with an empty body. An interrupted attempt, so it is tried again."""


INCOMPLETE_MESSAGE = "The provider ended the reply before it was complete."
NO_TEXT_MESSAGE = "The provider returned no text"


def sse_data(response: StreamedReply, on_idle: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The data of each server-sent event of a streamed response, as bytes (json.loads
    takes them as they are). Read off the raw bytes: httpx's line reader decodes text and
    splits lines in Python for every read, which for a fast stream was a large part of the
    worker's CPU, paid under the GIL that the worker's other runs share. Lines end with
    LF, CRLF or CR, as the SSE format allows. `on_idle` is called for each comment line
    (a server's keep-alive ": ping" while it reads the prompt); other fields (event, id)
    are not needed."""
    pending = b""
    data: list[bytes] = []
    for block in response.iter_bytes():
        pending += block
        if b"\r" in pending:
            # A CR at the end may be the first half of a CRLF: it waits for the next block.
            held = pending.endswith(b"\r")
            pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                pending = pending[:-1] + b"\r"
        if b"\n" not in pending:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif line.startswith(b":"):
                if on_idle is not None:
                    on_idle()
            elif not line and data:
                yield data[0] if len(data) == 1 else b"\n".join(data)
                data = []


def backoff(attempt: int, error: ProviderError) -> float:
    wait = error.retry_after if error.retry_after is not None else RETRY_BASE_SECONDS * 2 ** attempt
    return float(min(wait, RETRY_MAX_SECONDS))


# -- tools -------------------------------------------------------------------------------------

def _run_tool(run: Run, call: dict[str, Any]) -> str | None:
    """The tool's result text, or None for a question to a person."""
    name = call["function"]["name"]
    tool = run.version.tool_named(name)
    if tool is None:
        return f"Error: there is no tool named {name!r}."
    try:
        arguments = json.loads(call["function"]["arguments"] or "{}")
    except ValueError:
        return "Error: the arguments were not valid JSON."
    if not isinstance(arguments, dict):
        return "Error: the arguments must be a JSON object."
    errors = sorted(Draft202012Validator(tool["parameters"]).iter_errors(arguments), key=lambda e: e.path)
    if errors:
        return f"Error: invalid arguments: {errors[0].message}"
    if tool["binding"] == "human":
        return None
    try:
        if tool["binding"] == "http":
            return call_http_tool(tool=tool, arguments=arguments, secret=run.assistant.get_tool_secret(), call_id=call["id"])
        return run_builtin(tool=tool, arguments=arguments, team=run.thread.team)
    except ToolFailed as error:
        return f"Error: {error}"


def run_tools(run: Run, calls: list[dict[str, Any]], clock: Clock) -> bool:
    """Run the calls in parallel, each with its timeout; store results. True when a person must answer."""
    results: dict[str, str | None] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(calls)), thread_name_prefix=f"run{run.pk}-tool") as pool:
        futures = {call["id"]: pool.submit(_run_tool, run, call) for call in calls}
        for call in calls:
            tool = run.version.tool_named(call["function"]["name"]) or {}
            try:
                results[call["id"]] = futures[call["id"]].result(timeout=float(tool.get("timeout", 10)) + 1)
            except FutureTimeout:
                results[call["id"]] = "Error: the tool did not finish in time."
            except Exception as error:  # a bug in a tool must not kill the run; the model is told
                log.exception("run %s: tool %s crashed", run.pk, call["function"]["name"])
                results[call["id"]] = f"Error: the tool failed ({type(error).__name__})."
            check_in(run, clock)
    def save() -> None:
        with transaction.atomic():
            ensure_owned(run)
            for call in calls:
                result = results[call["id"]]
                Message.objects.create(thread=run.thread, team_id=run.team_id, role=Role.TOOL,
                                       tool_call_id=call["id"], tool_name=call["function"]["name"], text=result or "",
                                       pending=result is None, run=run, version=run.version)

    database_call(save, what="saving the tools' results", limit_seconds=DATABASE_OUTAGE_SECONDS)
    waiting = False
    for call in calls:
        result = results[call["id"]]
        name = call["function"]["name"]
        if result is None:
            waiting = True
            clock.live.publish("tool", f"{name}({call['function']['arguments']}) → waiting for a person")
        else:
            clock.live.publish("tool", f"{name}({call['function']['arguments']}) → {result[:300]}")
    return waiting


# -- ending the run ----------------------------------------------------------------------------

def ensure_owned(run: Run) -> None:
    """Inside a transaction: lock the run's row and make sure this attempt still owns it
    (running, with this attempt's number); RunSuperseded otherwise. Every write of the
    run's messages goes through here (its ending through the same check, made by the
    ending's own UPDATE: run_finish), so two attempts never both write."""
    if not Run.objects.select_for_update().filter(pk=run.pk, status=RunStatus.RUNNING,
                                                  attempts=run.attempts).exists():
        raise RunSuperseded()


def run_finish(run: Run, status: str, *, usage: Usage, facts: ModelFacts, clock: Clock, error: str = "",
            request_id: str = "", trimmed: int = 0, reply: str | None = None,
            reasoning: Reasoning | None = None) -> None:
    """End the run; `reply`, when given, is its final reply, saved in the same transaction
    (so a run is never finished without its reply, nor has a reply and runs again)."""
    now = time.monotonic()
    cost = usage.cost(facts)

    # One transaction: nobody may see the run finished while its cost is still missing.
    # Safe to try again through a database blip: it happened whole or not at all, and a
    # try after one that did commit finds the run no longer running (RunSuperseded).
    def save() -> None:
        with transaction.atomic():
            ending = _end_update(run, status, usage=usage, clock=clock, cost=cost, now=now, error=error,
                                 request_id=request_id, trimmed=trimmed, owned=True)
            message = _reply(run, reply, reasoning=reasoning) if reply is not None else None
            poster = run_poster_statement(run) if usage.calls else None
            # The run's end, its reply, the thread's time (the thread list's order) and who
            # posted the message (for the ledger) in one round trip, prepared statements all,
            # where the ORM took five (the ownership check's lock, the reply, the run, the
            # poster, the thread after the commit), each planned again.
            found = pipelined([ending, *([insert_statement(message)] if message is not None else []),
                               (_thread_touch_sql(), (timezone.now(), run.thread_id)),
                               *([poster] if poster is not None else [])])
            if found[0] is None:
                raise RunSuperseded()  # the conditional update found the run not this attempt's: nothing stays
            if message is not None:
                assert found[1] is not None
                inserted(message, found[1][0])
            run_spend_record(run=run, usage=usage, facts=facts,
                             poster=run_poster(found[-1]) if poster is not None else None)

    database_call(save, what="saving the reply", limit_seconds=DATABASE_OUTAGE_SECONDS)
    clock.live.end()


@cache
def _thread_touch_sql() -> str:
    return f"UPDATE {Thread._meta.db_table} SET updated_at = %s WHERE id = %s"  # noqa: S608 - the table's own name


@cache
def _end_sql(*, owned: bool) -> str:
    # Only the model's own table name is formatted in; every value is a parameter.
    return f"""UPDATE {Run._meta.db_table} SET status = %(status)s, error = %(error)s, finished_at = %(now)s,
        heartbeat_at = %(now)s, input_tokens = input_tokens + %(input)s, cached_tokens = cached_tokens + %(cached)s,
        output_tokens = output_tokens + %(output)s, reasoning_tokens = reasoning_tokens + %(reasoning)s,
        provider_calls = provider_calls + %(calls)s, usage_estimated = usage_estimated OR %(estimated)s,
        ttft_ms = %(ttft)s, total_ms = %(total)s, request_id = %(request_id)s, trimmed_messages = %(trimmed)s,
        cost_usd = CASE WHEN %(priced)s THEN coalesce(cost_usd, 0) + %(cost)s ELSE cost_usd END
        WHERE id = %(run)s{" AND status = %(running)s AND attempts = %(attempts)s" if owned else ""}
        RETURNING id"""  # noqa: S608


def _end_update(run: Run, status: str, *, usage: Usage, clock: Clock, cost: Decimal | None, now: float, error: str,
                request_id: str, trimmed: int, owned: bool) -> tuple[str, dict[str, Any]]:
    """The run's UPDATE with its end and the attempt's usage (added to what an earlier half,
    before a person answered, counted and cost). `owned`: only while this attempt owns the
    run (running, its attempt number; ensure_owned in the same statement), which then
    returns no row when it does not."""
    return _end_sql(owned=owned), {
        "status": status, "error": error, "now": timezone.now(), "input": usage.input, "cached": usage.cached,
        "output": usage.output, "reasoning": usage.reasoning, "calls": usage.calls, "estimated": usage.estimated,
        "ttft": int((clock.first_token - clock.started) * 1000) if clock.first_token else None,
        "total": int((now - clock.started) * 1000), "request_id": request_id, "trimmed": trimmed,
        "priced": cost is not None, "cost": cost or Decimal(0), "run": run.pk, "running": RunStatus.RUNNING,
        "attempts": run.attempts}


def _record_end(run: Run, status: str, *, usage: Usage, clock: Clock, cost: Decimal | None, now: float, error: str,
                request_id: str, trimmed: int) -> None:
    pipelined([_end_update(run, status, usage=usage, clock=clock, cost=cost, now=now, error=error,
                           request_id=request_id, trimmed=trimmed, owned=False)])


def _reply(run: Run, text: str, tool_calls: list[dict[str, Any]] | None = None, *,
           reasoning: Reasoning | None = None) -> Message:
    """The reply's message, unsaved."""
    encoding = encoding_for_model(run.model)
    api = {"role": "assistant", "content": text, "tool_calls": tool_calls or None}
    return Message(thread=run.thread, team_id=run.team_id, role=Role.ASSISTANT, text=text,
                   tool_calls=tool_calls or [], version=run.version, run=run,
                   token_count=count_message(api, encoding),
                   **({"reasoning_summary": reasoning.summary, "reasoning_items": reasoning.items}
                      if reasoning else {}))


def reply_save(run: Run, text: str, tool_calls: list[dict[str, Any]] | None = None, *,
                reasoning: Reasoning | None = None) -> Message:
    message = _reply(run, text, tool_calls, reasoning=reasoning)
    message.save(force_insert=True)
    return message


def final_reply_saved(run: Run) -> bool:
    return Message.objects.filter(run=run, role=Role.ASSISTANT, tool_calls=[]).exists()


def attempt_failed(run: Run, error: Exception, *, usage: Usage, facts: ModelFacts, clock: Clock, request_id: str,
                   trimmed: int, shown: Callable[[], str]) -> None:
    """End the run after its attempt raised, the same way for either engine's loop: a stop
    keeps what was shown (`shown`, asked only then), the provider's or the run's own reason
    fails it in those words, anything else is attempt_crashed's."""
    if isinstance(error, RunCancelled):
        text = shown()
        run_finish(run, RunStatus.CANCELLED, usage=usage, facts=facts, clock=clock, error="Stopped by a person.",
                request_id=request_id, trimmed=trimmed, reply=text + " …" if text else None)
    elif isinstance(error, ProviderError):
        run_finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock, error=error.message,
                request_id=error.request_id or request_id, trimmed=trimmed)
    elif isinstance(error, (RunStopped, HistoryTooLong)):
        run_finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock, error=str(error), request_id=request_id,
                trimmed=trimmed)
    else:
        attempt_crashed(run, error, usage=usage, facts=facts, clock=clock, request_id=request_id)


def attempt_crashed(run: Run, error: Exception, *, usage: Usage, facts: ModelFacts, clock: Clock, request_id: str) -> None:
    """An error that is neither the provider's nor the run's own. PostgreSQL that stayed
    down past DATABASE_OUTAGE_SECONDS: the attempt stops writing nothing (it could not),
    and the stale-run sweep sends the run again once its heartbeat is old, so the reply is
    written by a fresh attempt instead of being failed. Another service that was down is
    named; anything else is a bug: logged, and the run failed with words that say so."""
    service = service_of(error)
    if service == POSTGRESQL:
        log.warning("run %s: %s; the stale-run sweep will send it again", run.pk, error)
        return
    if service is None:
        log.exception("run %s crashed", run.pk)
        text = "The run failed because of an error in Switchboard; it was logged."
    else:
        log.warning("run %s: stopped, %s was unreachable: %s", run.pk, service, error)
        text = f"The run stopped because {service} was unreachable. Send the message again."
    try:
        if Run.objects.filter(pk=run.pk).exists():
            run_finish(run, RunStatus.FAILED, usage=usage, facts=facts, clock=clock, error=text, request_id=request_id)
        else:
            clock.live.end()
    except DATABASE_ERRORS:
        log.warning("run %s: its failure could not be saved; the stale-run sweep will take it", run.pk)

"""The SSE endpoint an open thread page listens to.

One connection per page, opened when the page loads, so posting a message costs no
new connection before the reply can stream. It follows the thread's feed (one entry
per run started or resumed) and the Redis Stream of every run it shows, through the
process's stream hub (one XREAD for every page the process serves). Async, so a
waiting viewer holds no thread.

Events, all carrying the position to resume from as their id (the browser sends it
back as Last-Event-ID on reconnect, so nothing is lost or repeated):
- `run`: a run started or resumed; the data is the user's message and the live run
  block, which the page adds (or, for a resumed run, puts in place of the old block).
- `delta-<run>`, `note-<run>`, `tool-<run>`, `thinking-<run>` (a reasoning summary, Responses
  engine): what the run writes, for its live block.
- `reset-<run>`: a retried attempt starts over (or a fresh page replays): drop what
  the live block shows.
- `done-<run>`: the run ended; the data is its messages rendered from the database.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from django.db import connection as db_connection
from django.http import Http404, HttpRequest, HttpResponseForbidden, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from django.utils.html import escape

from assistants_app.models import ACTIVE_STATUSES, Run, feed_key, stream_key
from assistants_app.stream_hub import BLOCK_MS, Reply, Subscription, stream_hub
from assistants_app.stream_reads import team_thread_stream_start, thread_run_block
from assistants_app.streams import fold, newest_id
from assistants_app.view_helpers import run_block_context
from project.outages import REDIS_ERRORS

_STREAM_ID = r"\d+-\d+"
_POSITION = re.compile(rf"^(?P<feed>{_STREAM_ID})(?P<runs>(?:;\d+={_STREAM_ID})*)$")
_FOLLOWED = re.compile(rf";(\d+)=({_STREAM_ID})")


@dataclass
class Position:
    """Where a page is: the last feed entry it saw and, for each run it follows, the
    last entry of that run's stream."""

    feed: str
    runs: dict[int, str] = field(default_factory=dict)

    def event_id(self) -> str:
        return ";".join([self.feed, *(f"{run_id}={cursor}" for run_id, cursor in self.runs.items())])

    @classmethod
    def parse(cls, text: str) -> Position | None:
        match = _POSITION.match(text)
        if match is None:
            return None
        return cls(match["feed"], {int(run_id): cursor for run_id, cursor in _FOLLOWED.findall(match["runs"])})


def sse_event(kind: str, data: str, event_id: str | None = None) -> bytes:
    lines = [f"event: {kind}"] if kind else []
    if event_id:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def _fragment(kind: str, data: str) -> str:
    if kind in ("delta", "thinking"):
        return f"<span>{escape(data)}</span>"
    return f'<div class="{kind}-line">{escape(data)}</div>'


# How long a run's announced block stands for it: a page reading the announcement later (a
# reconnect) renders the run as it is now, whose stream may have expired meanwhile.
ANNOUNCED_FOR_MS = 60_000


def _recent(entry_id: bytes) -> bool:
    """Whether the feed entry was written in the last ANNOUNCED_FOR_MS (its id is Redis's clock)."""
    written_ms = int(entry_id.split(b"-")[0])
    return time.time() * 1000 - written_ms < ANNOUNCED_FOR_MS


def _db[T](call: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """Run ORM work in the request's sync thread, then close that thread's connection:
    a stream can stay open for hours, and holding a database connection per viewer
    for that long would exhaust PostgreSQL's connection limit."""
    def run() -> T:
        try:
            return call()
        finally:
            if not db_connection.in_atomic_block:  # inside a test's transaction the connection must live on
                db_connection.close()

    return sync_to_async(run)


def render_run(thread_id: int, run_id: int, request: HttpRequest, *, with_user_message: bool = False) -> str:
    """A run of the thread rendered from the database: its block, and before it the
    user's message that started it when the page is to add both. Empty when the run
    is not (or no longer) in the thread: the page drops the block."""
    block = thread_run_block(thread_id=thread_id, run_id=run_id, with_user_message=with_user_message)
    if block is None:
        return ""
    context = run_block_context(block.run, messages=block.messages, billed=block.billed)
    if not with_user_message:
        return render_to_string("assistants_app/_run_group.html", context, request=request)
    return render_to_string("assistants_app/_run_started.html", {"message": block.run.user_message, **context},
                            request=request)


class _Feed:
    """One page's connection: what it follows and the events to send it."""

    def __init__(self, thread_id: int, position: Position, request: HttpRequest) -> None:
        self.thread_id, self.position, self.request = thread_id, position, request

    async def done(self, run_id: int) -> bytes:
        self.position.runs.pop(run_id, None)
        html = await _db(lambda: render_run(self.thread_id, run_id, self.request))()
        return sse_event(f"done-{run_id}", html, self.position.event_id())

    async def replay(self, client: aredis.Redis, run_id: int) -> list[bytes]:
        """A run the page shows from the database: what its live block must show now."""
        shown, cursor, ended = fold(await client.xrange(stream_key(run_id)))
        self.position.runs[run_id] = cursor
        events = [sse_event(f"reset-{run_id}", "")]
        events += [sse_event(f"{kind}-{run_id}", _fragment(kind, data)) for kind, data in shown
                   if kind in ("delta", "note", "tool", "thinking")]
        events.append(await self.done(run_id) if ended else f"id: {self.position.event_id()}\n\n".encode())
        return events

    async def run_entries(self, run_id: int, entries: list[Any]) -> list[bytes]:
        events: list[bytes] = []
        text: list[str] = []  # consecutive deltas go out as one event

        def send_text() -> None:
            if text:
                events.append(sse_event(f"delta-{run_id}", _fragment("delta", "".join(text)), self.position.event_id()))
                text.clear()

        for raw_id, fields in entries:
            kind = fields.get(b"t", b"").decode()
            data = fields.get(b"d", b"").decode()
            if kind != "delta":
                send_text()
            self.position.runs[run_id] = raw_id.decode()
            if kind == "delta":
                text.append(data)
            elif kind == "done":
                events.append(await self.done(run_id))
                return events
            elif kind in ("note", "tool", "reset", "thinking"):
                events.append(sse_event(f"{kind}-{run_id}", _fragment(kind, data) if kind != "reset" else "",
                                        self.position.event_id()))
        send_text()
        return events

    async def feed_entries(self, entries: list[Any]) -> list[bytes]:
        events: list[bytes] = []
        for raw_id, fields in entries:
            self.position.feed = raw_id.decode()
            run_id = int(fields.get(b"run", b"0"))
            announced = fields.get(b"html")
            if announced is not None and _recent(raw_id):
                html = announced.decode()  # the posted run's block (view_helpers.PostedRunBlock)
            else:
                html = await _db(partial(render_run, self.thread_id, run_id, self.request, with_user_message=True))()
            if html:
                # A run already followed keeps its cursor (the page saw part of it);
                # a new or resumed one is read from its start.
                self.position.runs.setdefault(run_id, "0-0")
                events.append(sse_event("run", html, self.position.event_id()))
        return events

    async def ended_runs(self) -> list[int]:
        """Followed runs that ended without a "done" (their worker died and recovery gave up)."""
        followed = list(self.position.runs)
        if not followed:
            return []
        active = await _db(lambda: set(Run.objects.filter(pk__in=followed, status__in=ACTIVE_STATUSES)
                                       .values_list("pk", flat=True)))()
        return [run_id for run_id in followed if run_id not in active]


async def _thread_events(thread_id: int, position: Position | None, since: str, request: HttpRequest,
                         shown_live: frozenset[int] = frozenset(), active: list[int] | None = None,
                         ) -> AsyncIterator[bytes]:
    """`active`: the thread's active runs, when read after `since` was (the view reads them
    with the thread's check); otherwise read here, after the feed's position."""
    subscription = stream_hub().subscribe()
    feed_name = feed_key(thread_id).encode()
    try:
        # The subscription's client at each use, not one kept: an idle hub changes it.
        if position is None and since == "$":
            since = newest_id(await subscription.client.xrevrange(feed_key(thread_id), count=1))
        feed = _Feed(thread_id, position or Position(since), request)
        # A browser that loses the connection comes back within a second.
        events = [b"retry: 1000\n\n"]
        if position is None:
            # A page just rendered: it shows the database, so each active run's live
            # block needs what its stream holds that the database does not yet.
            if active is None:
                active = await _db(lambda: list(Run.objects.filter(thread_id=thread_id, status__in=ACTIVE_STATUSES)
                                                .order_by("id").values_list("pk", flat=True)))()
            for run_id in active:
                events += await feed.replay(subscription.client, run_id)
            # A run the page shows as writing that ended before this stream began: no
            # "done" would ever come for it, and "writing…" and Stop would stay for good.
            events += [await feed.done(run_id) for run_id in sorted(shown_live - set(active))]
        yield b"".join(events) + f"id: {feed.position.event_id()}\n\n".encode()
        while True:
            reply = await _follow(subscription, feed, feed_name) or await subscription.next(BLOCK_MS / 1000)
            if not reply:
                events = [await feed.done(run_id) for run_id in await feed.ended_runs()]
                yield b"".join(events) + b": still here\n\n"
                continue
            events = []
            # A run's own entries before the feed's: its "done" comes before the next run.
            for key, entries in sorted(reply, key=lambda item: item[0] == feed_name):
                if key == feed_name:
                    events += await feed.feed_entries(entries)
                elif int(key.split(b":")[2]) in feed.position.runs:
                    events += await feed.run_entries(int(key.split(b":")[2]), entries)
            # Everything read at once goes out in one write.
            yield b"".join(events) + f"id: {feed.position.event_id()}\n\n".encode()
    finally:
        subscription.close()


async def _follow(subscription: Subscription, feed: _Feed, feed_name: bytes) -> Reply:
    """Make the subscription follow what the page's position names (the feed and the
    runs it shows); what the process's reader had already read past is returned."""
    wanted = {stream_key(run_id).encode(): cursor for run_id, cursor in feed.position.runs.items()}
    wanted[feed_name] = feed.position.feed
    for key in subscription.following() - set(wanted):
        subscription.unfollow(key)
    caught: Reply = []
    for key, cursor in wanted.items():
        if key not in subscription.cursors:
            entries = await subscription.follow(key, cursor)
            if entries:
                caught.append((key, entries))
    return caught


MAX_SHOWN_LIVE = 50


def _run_ids(text: str) -> set[int]:
    """The `live` parameter: comma-separated run ids (at most MAX_SHOWN_LIVE; junk ignored)."""
    return {int(part) for part in text.split(",")[:MAX_SHOWN_LIVE] if part.isdecimal() and len(part) < 19}


async def thread_events(request: HttpRequest, thread_id: int) -> HttpResponseBase:
    position = Position.parse(request.headers.get("Last-Event-ID", ""))
    shown_live = _run_ids(request.GET.get("live", ""))
    # The middleware has already loaded the user and their team (None unless logged in to one).
    team = getattr(request, "team", None)
    if team is None:
        return HttpResponseForbidden("Log in to a team to watch this thread.")
    since = request.GET.get("feed", "")
    since = since if re.fullmatch(_STREAM_ID, since) else "$"
    if position is None and since == "$":
        # Read before the active runs, as the stream would: a run started in between is
        # then in the feed after `since`, so it is shown twice at worst, never missed. Read
        # here, the active runs come with the thread's check, in one trip to the database.
        with contextlib.suppress(*REDIS_ERRORS):  # the stream tries again, and reports it as before
            since = newest_id(await stream_hub().client.xrevrange(feed_key(thread_id), count=1))
    # Last-Event-ID and `live` come from the client: only runs of this thread are followed
    # and rendered back, or a forged id would stream another thread's (or team's) runs.
    named = set(position.runs) | shown_live if position is not None else shown_live
    with_active = position is None and since != "$"
    start = await _db(partial(team_thread_stream_start, team_id=team.pk, thread_id=thread_id, named=named,
                              with_active=with_active))()
    if start is None:
        raise Http404("No such thread.")
    if position is not None:
        position.runs = {run_id: cursor for run_id, cursor in position.runs.items() if run_id in start.own}
    response = StreamingHttpResponse(
        _thread_events(thread_id, position, since, request, frozenset(shown_live & start.own),
                       start.active if with_active else None),
        content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response

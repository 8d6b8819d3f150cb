"""The SSE endpoint a thread page listens to while a run writes its reply.

Async, so a waiting viewer holds no thread: it XREADs the run's Redis Stream with
BLOCK from the id it last saw (the browser sends Last-Event-ID on reconnect), and
every event carries its stream id. A fresh connection first gets `reset` and a
replay of what is not yet in the database. The stream ends with `done`, whose data
is the run's messages rendered from the database, which htmx swaps in.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection as db_connection
from django.http import Http404, HttpRequest, HttpResponseForbidden, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from django.utils.html import escape

from assistants_app.models import ACTIVE_STATUSES, Run, stream_key
from assistants_app.streams import fold

BLOCK_MS = 10_000
_STREAM_ID = re.compile(r"^\d+-\d+$")


def sse_event(kind: str, data: str, event_id: str | None = None) -> bytes:
    lines = [f"event: {kind}"] if kind else []
    if event_id:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def _fragment(kind: str, data: str) -> str:
    if kind == "delta":
        return f"<span>{escape(data)}</span>"
    return f'<div class="{kind}-line">{escape(data)}</div>'


def _db[T](call: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """Run ORM work in the request's sync thread, then close that thread's connection:
    a stream can stay open for minutes, and holding a database connection per
    viewer for that long would exhaust PostgreSQL's connection limit."""
    def run() -> T:
        try:
            return call()
        finally:
            if not db_connection.in_atomic_block:  # inside a test's transaction the connection must live on
                db_connection.close()

    return sync_to_async(run)


def render_run_group(run_id: int, request: HttpRequest) -> str:
    from assistants_app.views import run_group_context

    run = Run.objects.select_related("thread", "version").get(pk=run_id)
    return render_to_string("assistants_app/_run_group.html", run_group_context(run), request=request)


async def _events(run_id: int, last_id: str, request: HttpRequest) -> AsyncIterator[bytes]:
    client = aredis.Redis.from_url(settings.REDIS_URL)
    key = stream_key(run_id)

    async def finished(event_id: str | None) -> bytes:
        html = await _db(lambda: render_run_group(run_id, request))()
        return sse_event("done", html, event_id)

    try:
        cursor = last_id if _STREAM_ID.match(last_id) else ""
        if not cursor:
            shown, cursor, ended = fold(await client.xrange(key))
            yield sse_event("reset", "")
            for kind, data in shown:
                if kind in ("delta", "note", "tool"):
                    yield sse_event(kind, _fragment(kind, data))
            if ended:
                yield await finished(cursor)
                return
            yield f"id: {cursor}\n\n".encode()
        while True:
            reply: Any = await client.xread({key: cursor}, block=BLOCK_MS, count=1000)
            if not reply:
                status = await _db(lambda: Run.objects.filter(pk=run_id).values_list("status", flat=True).first())()
                if status not in ACTIVE_STATUSES:
                    yield await finished(None)
                    return
                yield b": still working\n\n"
                continue
            text: list[str] = []
            text_id = cursor
            for raw_id, fields in reply[0][1]:
                cursor = raw_id.decode()
                kind = fields.get(b"t", b"").decode()
                data = fields.get(b"d", b"").decode()
                if kind == "delta":
                    text.append(data)  # consecutive deltas go out as one event
                    text_id = cursor
                    continue
                if text:
                    yield sse_event("delta", _fragment("delta", "".join(text)), text_id)
                    text = []
                if kind == "done":
                    yield await finished(cursor)
                    return
                if kind in ("note", "tool", "reset"):
                    yield sse_event(kind, _fragment(kind, data) if kind != "reset" else "", cursor)
            if text:
                yield sse_event("delta", _fragment("delta", "".join(text)), cursor)
            else:
                yield f"id: {cursor}\n\n".encode()
    finally:
        await client.aclose()


async def run_events(request: HttpRequest, run_id: int) -> HttpResponseBase:
    def allowed() -> bool | None:
        # The middleware has already loaded the user and the team in this thread.
        team = getattr(request, "team", None)
        if not request.user.is_authenticated or team is None:
            return None
        return Run.objects.filter(team=team, pk=run_id).exists()

    found = await _db(allowed)()
    if found is None:
        return HttpResponseForbidden("Log in to a team to watch this run.")
    if not found:
        raise Http404("No such run.")
    response = StreamingHttpResponse(_events(run_id, request.headers.get("Last-Event-ID", ""), request),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response

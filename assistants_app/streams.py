"""The live side of a run: every delta goes into a Redis Stream per run.

The worker appends; any number of SSE views read from the id they last saw, so a
reconnect resumes with nothing lost or repeated and several viewers see the same
run. A run's entries are {"t": kind, "d": data}; kinds: delta (reply text), tool (a
tool call and its result, one line), note (status line), reset (a retried attempt
starts over: drop what was shown), saved (what came before is now in the database,
so a fresh viewer, who renders it from there, need not replay it), done (the run
ended; render it from the database).

Each thread also has a feed stream with one entry per run started or resumed in it:
an open thread page follows the feed, so a new run (whoever posted it) is shown and
streamed there over the connection the page already has.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
from django.conf import settings
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from assistants_app.models import cancel_key, feed_key, stream_key
from project import redis_connect
from project.outages import ServiceHealth

# Streams outlive the run a little so a late reconnect still finds the end; the
# finished message itself always comes from the database.
STREAM_TTL_SECONDS = 60 * 60
STREAM_MAXLEN = 200_000
# A feed only needs the runs a page opened a moment ago has not seen yet.
FEED_MAXLEN = 100
FEED_TTL_SECONDS = 24 * 60 * 60
# A run's announcement carries its block's HTML up to this many characters (a long message
# pasted in is read and rendered by each page instead of kept a hundred times in the feed).
ANNOUNCED_HTML_MAX = 32 * 1024


# A worker streams many replies at once, a thread each, and every flush is a write. redis-py's
# own pool fails past 100 connections; this one makes a thread wait for a free connection
# (each is held for a single command), so a burst of runs slows down instead of failing.
POOL_CONNECTIONS = 128
POOL_WAIT_SECONDS = 20


# Whether this process's last write of a run's announcement (or read of a feed) reached
# Redis: the message POST says "live updates are paused" from it, without a PING.
live_health = ServiceHealth()


@cache
def redis_client() -> redis.Redis:
    # Fail fast: redis-py's default retries a dead server for about four seconds per
    # command, in the thread that is reading the provider's stream. The worker's live
    # display (assistants_app.live) keeps the text and retries with backoff of its own.
    return redis_connect.redis_client(settings.REDIS_URL, max_connections=POOL_CONNECTIONS,
                                      pool_wait_seconds=POOL_WAIT_SECONDS, socket_connect_timeout=1.0,
                                      socket_timeout=5.0,
                                      retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.05), retries=1))


def publish(run_id: int, kind: str, data: str = "") -> str:
    entry_id = redis_client().xadd(stream_key(run_id), {"t": kind, "d": data}, maxlen=STREAM_MAXLEN, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def publish_many(run_id: int, entries: list[tuple[str, str]]) -> None:
    """Several entries in one round trip, in order (a display catching up after an outage)."""
    pipe = redis_client().pipeline(transaction=False)
    for kind, data in entries:
        pipe.xadd(stream_key(run_id), {"t": kind, "d": data}, maxlen=STREAM_MAXLEN, approximate=True)
    pipe.execute()


def publish_end(run_id: int) -> None:
    client = redis_client()
    pipe = client.pipeline()
    pipe.xadd(stream_key(run_id), {"t": "done", "d": ""})
    pipe.expire(stream_key(run_id), STREAM_TTL_SECONDS)
    pipe.delete(cancel_key(run_id))
    pipe.execute()


def run_clear(run_id: int) -> None:
    """Drop anything left under a run's stream and stop keys (a database restored while
    Redis kept its data, or the first half of a resumed run), before a worker is sent the
    run: it may begin writing at once. A run sent again must not be cleared: a worker may
    have begun writing it since."""
    redis_client().delete(stream_key(run_id), cancel_key(run_id))


def announce_run(thread_id: int, run_id: int, html: str = "") -> None:
    """A run is starting (or resuming) in the thread: tell the thread's open pages, which
    then read the run's stream from its start (so they miss nothing a worker wrote first).
    `html`: the run's block as every page is to show it (a message just posted and its
    live block), so that a page shows it without a query and a render of its own
    (views_stream); left out past ANNOUNCED_HTML_MAX, when pages render it themselves."""
    fields: dict[Any, Any] = {"run": str(run_id)}
    if html and len(html) <= ANNOUNCED_HTML_MAX:
        fields["html"] = html
    pipe = redis_client().pipeline(transaction=False)
    pipe.xadd(feed_key(thread_id), fields, maxlen=FEED_MAXLEN, approximate=True)
    pipe.expire(feed_key(thread_id), FEED_TTL_SECONDS)
    pipe.execute()


def feed_position(thread_id: int) -> str:
    """The id of the thread's newest feed entry: a page rendered after reading it
    follows the feed from there and misses no run."""
    return newest_id(redis_client().xrevrange(feed_key(thread_id), count=1))


def newest_id(entries: Any) -> str:
    """The id of the first of XREVRANGE's entries, or the id before every entry."""
    return entries[0][0].decode() if entries else "0-0"


def cancel_request(run_id: int) -> None:
    redis_client().set(cancel_key(run_id), "1", ex=STREAM_TTL_SECONDS)


def cancels_requested(run_ids: list[int]) -> set[int]:
    """Which of these runs a person asked to stop: one MGET for all of them (a worker's run watch)."""
    if not run_ids:
        return set()
    values = redis_client().mget([cancel_key(run_id) for run_id in run_ids])
    return {run_id for run_id, value in zip(run_ids, values, strict=True) if value}


def fold(entries: Any) -> tuple[list[tuple[str, str]], str, bool]:
    """Collapse stream entries into what a fresh viewer must see: the events since
    the last reset, the id to continue from, and whether the run has ended."""
    shown: list[tuple[str, str]] = []
    cursor = "0-0"
    ended = False
    for raw_id, fields in entries:
        cursor = raw_id.decode()
        kind = fields.get(b"t", b"").decode()
        data = fields.get(b"d", b"").decode()
        if kind in ("reset", "saved"):
            shown = []
        elif kind == "done":
            ended = True
        else:
            shown.append((kind, data))
    return shown, cursor, ended

"""One Redis reader per web process for every open thread page.

Each page's event stream follows a few Redis Streams (its thread's feed and the runs it
shows). Rather than one blocking XREAD per page, re-sent after every batch (a hundred
pages watching a hundred runs made a hundred XREADs per flush of every run), a hub per
event loop (a uvicorn process has one) keeps a single XREAD over the union of what its
pages follow and hands each page the entries of its own streams.

Nothing is lost or repeated: a page's subscription keeps its own position per stream and
drops what it has already seen. A page that starts following a stream reads what the
stream already holds after its position itself, with one XRANGE, after it has joined, so
what arrives meanwhile is queued behind it: a stream the hub already reads past that
position (a second viewer of a run, a reconnect), and a stream the hub does not read yet
(a run just started, whose first words may be written already: they go out at once, not
after the hub's next read, which takes the wake below and a round trip more). The hub
reads a new stream from that page's position.

When a page follows a new stream while the XREAD blocks, the hub is woken through a
stream of its own so the next XREAD includes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import Iterable
from typing import Any, cast

import redis.asyncio as aredis
from django.conf import settings

from project.redis_connect import async_redis_client

BLOCK_MS = 10_000
READ_COUNT = 1000
# An XREAD names every stream the hub follows, so its cost (packing, Redis's lookups, the
# reply) grows with them, and when many replies stream each read returns at once with a
# few entries: the hub re-read as fast as one process could, a third of a web process's CPU
# in a burst of 200 chats. Past BUSY_STREAMS streams it waits GATHER_SECONDS after a read
# that brought something, so each read brings what all of them wrote meanwhile. A page
# following one or a few streams is read as before, at once.
BUSY_STREAMS = 32
GATHER_SECONDS = 0.05
POOL_CONNECTIONS = 64
POOL_WAIT_SECONDS = 20
_WAKE_TTL_SECONDS = 60 * 60

type Entries = list[tuple[bytes, dict[bytes, bytes]]]
type Reply = list[tuple[bytes, Entries]]


def _id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Subscription:
    """What one page follows, with its position in each stream, and the entries the hub
    has read for it that it has not taken yet."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub
        self.cursors: dict[bytes, tuple[int, int]] = {}
        self.queue: asyncio.Queue[Reply | BaseException] = asyncio.Queue()

    @property
    def client(self) -> aredis.Redis:
        """The process's Redis client (pooled connections) for the page's own reads."""
        return self.hub.client

    def following(self) -> set[bytes]:
        return set(self.cursors)

    async def follow(self, key: bytes, cursor: str) -> Entries:
        """Follow a stream after `cursor`; returns the entries after it that are already
        there, unless the hub has read them for this page (to handle before anything
        `next` returns)."""
        self.cursors[key] = _id(cursor)
        if not self.hub.join(self, key, cursor):
            return []
        entries = await self.client.xrange(key, min=f"({cursor}" if cursor != "0-0" else "-", max="+")
        return self._unseen(key, cast(Entries, entries))

    def unfollow(self, key: bytes) -> None:
        self.cursors.pop(key, None)
        self.hub.leave(self, [key])

    def close(self) -> None:
        self.hub.leave(self, list(self.cursors))
        self.cursors.clear()

    def _unseen(self, key: bytes, entries: Entries) -> Entries:
        cursor = self.cursors.get(key)
        if cursor is None:
            return []
        fresh = [entry for entry in entries if _id(entry[0]) > cursor]
        if fresh:
            self.cursors[key] = _id(fresh[-1][0])
        return fresh

    async def next(self, timeout: float) -> Reply:
        """Everything read for this page since the last call, as XREAD replies it (one
        item per stream, in the order read); empty only after `timeout` seconds of nothing.
        A batch of entries the page has already seen (the hub read what the page's own
        XRANGE had caught) is not "nothing": the wait goes on. Returning it empty made the
        page take the quiet for a run that ended without its "done" (views_stream), and a
        run already finished in the database was ended there and then, its later text,
        still on its way, never shown live (1 to 2 chats in 1,000 in bench/chat_streaming)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                first = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return []
            batches = [first]
            while not self.queue.empty():
                batches.append(self.queue.get_nowait())
            reply: Reply = []
            for batch in batches:
                if isinstance(batch, BaseException):
                    raise batch
                for key, entries in batch:
                    fresh = self._unseen(key, entries)
                    if fresh:
                        reply.append((key, fresh))
            if reply:
                return reply


class StreamHub:
    def __init__(self) -> None:
        self.client = self._connect()
        self.positions: dict[bytes, str] = {}  # stream -> the id the hub has read up to
        self.subscribers: dict[bytes, set[Subscription]] = {}
        self.wake_key = f"sb:hub:{uuid.uuid4().hex}".encode()
        self.wake_position = "0-0"
        self.reading = False
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    def _connect() -> aredis.Redis:
        # The client's socket timeout must outlast the XREAD's BLOCK (redis-py's default
        # of 5 s would cut every quiet read). Pages opened in a burst each read a little
        # on their own: they wait for a free connection rather than fail past the pool's size.
        return async_redis_client(settings.REDIS_URL, max_connections=POOL_CONNECTIONS,
                                  pool_wait_seconds=POOL_WAIT_SECONDS, socket_timeout=BLOCK_MS / 1000 + 10)

    def subscribe(self) -> Subscription:
        return Subscription(self)

    def join(self, subscription: Subscription, key: bytes, cursor: str) -> bool:
        """Add the page to the stream's readers; True when the page is to read what the
        stream holds after its cursor itself: the hub has read past the cursor, or does
        not read the stream yet (it starts from the cursor, at its next read)."""
        self.subscribers.setdefault(key, set()).add(subscription)
        position = self.positions.get(key)
        if position is None:
            self.positions[key] = cursor
            if self.reading:
                self._wake()
        self._start()
        return position is None or _id(position) > _id(cursor)

    def leave(self, subscription: Subscription, keys: Iterable[bytes]) -> None:
        # The hub's position in a stream nobody follows any more is dropped before the
        # next read, not now: a read in flight may still return past it, and a page that
        # follows the stream again meanwhile must know the hub is there.
        for key in keys:
            readers = self.subscribers.get(key)
            if readers is not None:
                readers.discard(subscription)
                if not readers:
                    del self.subscribers[key]

    def _wake(self) -> None:
        async def wake() -> None:
            pipe = self.client.pipeline(transaction=False)
            pipe.xadd(self.wake_key, {"w": "1"}, maxlen=10, approximate=True)
            pipe.expire(self.wake_key, _WAKE_TTL_SECONDS)
            with contextlib.suppress(Exception):  # the read wakes by itself within BLOCK_MS anyway
                await pipe.execute()

        task = asyncio.get_running_loop().create_task(wake())
        _background.add(task)
        task.add_done_callback(_background.discard)

    def _start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while self.subscribers:
                for key in [key for key in self.positions if key not in self.subscribers]:
                    del self.positions[key]
                streams: dict[Any, Any] = dict(self.positions)
                streams[self.wake_key] = self.wake_position
                self.reading = True
                try:
                    reply = await self.client.xread(streams, block=BLOCK_MS, count=READ_COUNT)
                finally:
                    self.reading = False
                self._deliver(cast(Reply, reply or []))
                if reply and len(self.positions) > BUSY_STREAMS:
                    await asyncio.sleep(GATHER_SECONDS)
        except Exception as error:  # noqa: BLE001 - every page ends its stream and reconnects
            for readers in list(self.subscribers.values()):
                for subscription in readers:
                    subscription.queue.put_nowait(error)
            self.subscribers.clear()
            self.positions.clear()
        finally:
            if not self.subscribers:
                # Idle: the pooled connections close (the next page reconnects). The hub lets
                # go of them before the close is awaited: a page that joins meanwhile starts a
                # reader of its own (this one is over; it had found the task still running and
                # got no reader at all) and reads through a fresh pool, not a connection closed
                # under it (its catch-up XRANGE failed: "Connection closed by server").
                idle, self.client, self.task = self.client, self._connect(), None
                await idle.connection_pool.disconnect(inuse_connections=False)

    def _deliver(self, reply: Reply) -> None:
        batches: dict[Subscription, Reply] = {}
        for key, entries in reply:
            if key == self.wake_key:
                self.wake_position = entries[-1][0].decode()
                continue
            if key not in self.positions or not entries:  # nobody follows it any more
                continue
            self.positions[key] = entries[-1][0].decode()
            for subscription in self.subscribers.get(key, ()):
                batches.setdefault(subscription, []).append((key, entries))
        for subscription, batch in batches.items():
            subscription.queue.put_nowait(batch)


_background: set[asyncio.Task[None]] = set()
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamHub] = weakref.WeakKeyDictionary()


def stream_hub() -> StreamHub:
    """The hub of the running event loop (one per uvicorn process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = StreamHub()
    return hub

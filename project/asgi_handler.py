"""Django under ASGI with a bound on the synchronous work one web process does at once.

Django runs each request's synchronous part (the middleware stack, which has sync-only
members, and the view) in a thread of the request's own, so requests never wait for one
another's database or Redis round trips. Unbounded, though, a burst of 200 message POSTs
made 100 threads in each process: all of them took turns at the GIL (one core's worth of
Python per process), and past DATABASE_POOL_SIZE they queued inside the pool for a
connection, where one that waits more than 10 s fails (PoolTimeout).

Here at most `in_flight` requests per process are in their synchronous part at once (the
settings make it DATABASE_POOL_SIZE - 2, so a connection is always there for them). The
others wait, first come first served, holding neither a thread nor a connection: the first
POSTs of a burst are answered at once, and none times out waiting for the pool. The event
streams' database reads (async code) take turns in a queue of their own,
`stream_read_slot()`, on the two connections left.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from asgiref.sync import SyncToAsync
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest
from django.http.response import HttpResponseBase

# The queues of each event loop (one per uvicorn process) that a BoundedASGIHandler serves on:
# the requests' synchronous parts, and the event streams' database reads.
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[asyncio.Semaphore, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary())


@asynccontextmanager
async def stream_read_slot() -> AsyncIterator[None]:
    """Wait for a turn among the process's event-stream reads (no wait where no
    BoundedASGIHandler serves, as under the test client). A queue of their own beside the
    requests', with the connections the requests leave: a run's announcement reaches its
    pages (which then follow its text) without waiting behind a burst of POSTs, and a burst
    of announcements to 200 pages does not ask the pool for 200 connections at once."""
    gates = _gates.get(asyncio.get_running_loop())
    if gates is None:
        yield
        return
    async with gates[1]:
        yield


class BoundedASGIHandler(ASGIHandler):
    def __init__(self, *, in_flight: int, stream_reads: int = 2) -> None:
        self.in_flight, self.stream_reads = max(1, in_flight), max(1, stream_reads)
        self.waiting = 0  # requests waiting for their turn now
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=is_async)
        chain: Any = getattr(self, "_middleware_chain")  # noqa: B009 - untyped in the stubs
        if isinstance(chain, SyncToAsync):  # a sync stack, run in the request's own thread
            setattr(self, "_middleware_chain", self._queued(chain))  # noqa: B010

    def gates(self) -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        """The running loop's queues: the requests', the event streams' reads'."""
        loop = asyncio.get_running_loop()
        gates = _gates.get(loop)
        if gates is None:
            gates = _gates[loop] = (asyncio.Semaphore(self.in_flight), asyncio.Semaphore(self.stream_reads))
        return gates

    def _queued(self, chain: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
                ) -> Callable[[HttpRequest], Awaitable[HttpResponseBase]]:
        async def queued(request: HttpRequest) -> HttpResponseBase:
            gate = self.gates()[0]
            self.waiting += 1
            try:
                await gate.acquire()
            finally:
                self.waiting -= 1
            try:
                return await chain(request)
            finally:
                gate.release()

        return queued

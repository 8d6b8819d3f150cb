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
POSTs of a burst are answered at once, and none times out waiting for the pool. The two
connections left serve the event streams' short reads (assistants_app.views_stream), which
are not queued: a stream that waited for a turn before asking whether a run it follows has
ended could hear "ended" after the run's text had arrived, and end the run without it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import SyncToAsync
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from project.upload_limits import BoundedBodyASGIHandler

# The queue of each event loop (one per uvicorn process) that a BoundedASGIHandler serves on.
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


class BoundedASGIHandler(BoundedBodyASGIHandler):
    """Uploads bounded (project.upload_limits), and the process's synchronous work."""

    def __init__(self, *, in_flight: int) -> None:
        self.in_flight = max(1, in_flight)
        self.waiting = 0  # requests waiting for their turn now
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=is_async)
        chain: Any = getattr(self, "_middleware_chain")  # noqa: B009 - untyped in the stubs
        if isinstance(chain, SyncToAsync):  # a sync stack, run in the request's own thread
            setattr(self, "_middleware_chain", self._queued(chain))  # noqa: B010

    def gate(self) -> asyncio.Semaphore:
        """The running loop's queue."""
        loop = asyncio.get_running_loop()
        gate = _gates.get(loop)
        if gate is None:
            gate = _gates[loop] = asyncio.Semaphore(self.in_flight)
        return gate

    def _queued(self, chain: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
                ) -> Callable[[HttpRequest], Awaitable[HttpResponseBase]]:
        async def queued(request: HttpRequest) -> HttpResponseBase:
            gate = self.gate()
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

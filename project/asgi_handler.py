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
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing
from typing import IO, Any

from asgiref.sync import SyncToAsync, iscoroutinefunction, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections
from django.http import FileResponse, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, get_resolver, set_script_prefix

from project.upload_limits import BoundedBodyASGIHandler

# The queue of each event loop (one per uvicorn process) that a BoundedASGIHandler serves on.
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


class _BoundedSyncWork(ASGIHandler):
    """Django's ASGI handler with the process's synchronous work bounded (`turn`) and a
    synchronous view's request served in one hop to a thread of the process's pool (see
    the module's docstring), through a synchronous middleware chain of its own (Django's,
    under ASGI, hops back to the event loop to resolve the view and out again to call it).
    Async views keep Django's path, which also listens for the client leaving (an event
    stream ends then); their middleware waits for the same turn."""

    def __init__(self, *, in_flight: int) -> None:
        self.in_flight = max(1, in_flight)
        self.waiting = 0  # requests waiting for their turn now
        self._threads = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix="request")
        super().__init__()
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)

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

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for one of the process's `in_flight` turns at synchronous work, first come
        first served, and hold it for the block."""
        gate = self.gate()
        self.waiting += 1
        try:
            await gate.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            gate.release()

    def _queued(self, chain: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
                ) -> Callable[[HttpRequest], Awaitable[HttpResponseBase]]:
        async def queued(request: HttpRequest) -> HttpResponseBase:
            async with self.turn():
                return await chain(request)

        return queued

    async def handle(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[..., Any]) -> None:
        if _view_is_async(scope):
            await super().handle(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            async with self.turn():
                response = await sync_to_async(self._respond, thread_sensitive=False, executor=self._threads)(
                    scope, body_file)
            await self.send_response(response, send)
            if response.streaming:
                await sync_to_async(response.close)()

    def _respond(self, scope: dict[str, Any], body_file: IO[bytes]) -> HttpResponseBase:
        """What Django's handle and run_get_response do between the body and the send,
        in the thread: the signal, the request, the middleware and the view."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            error_response.close()
            return error_response
        response = self._sync.get_response(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]  # as Django's run_get_response
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if response.streaming:
            # Its content is read after this, in another thread: the view's database
            # connection goes back to the pool now rather than at this thread's next request.
            close_old_connections()
        else:
            response.close()  # request_finished: the connection goes back to the pool
        return response


def _view_is_async(scope: dict[str, Any]) -> bool:
    root = scope.get("root_path", "")
    path = scope["path"].removeprefix(root) if root else scope["path"]
    try:
        return iscoroutinefunction(get_resolver().resolve(path).func)
    except Resolver404:
        return False


class BoundedASGIHandler(BoundedBodyASGIHandler, _BoundedSyncWork):
    """Uploads bounded (project.upload_limits), and the process's synchronous work."""

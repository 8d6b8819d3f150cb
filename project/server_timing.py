"""The Server-Timing header for a view's steps, with DEBUG on (as under `make run`):
the browser's network panel and bench/chat_streaming show where a request's time
goes without a profiler. Steps are timed with `timed(name)` anywhere under the view
(a service, a helper); outside a timed view, `timed` costs a context-variable read."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

_steps: ContextVar[list[tuple[str, float]] | None] = ContextVar("server_timing_steps", default=None)


@contextmanager
def timed(name: str) -> Iterator[None]:
    steps = _steps.get()
    if steps is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        steps.append((name, (time.perf_counter() - started) * 1000))


def server_timing[View: Callable[..., HttpResponseBase]](view: View) -> View:
    """Send the view's timed steps, and the whole view as `view` (its CPU time as `view-cpu`),
    as Server-Timing (DEBUG only); under ASGI, the time from the request reaching Django to
    the view as `before-view`."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.DEBUG:
            return view(request, *args, **kwargs)
        started, cpu_started = time.perf_counter(), time.thread_time()
        received = getattr(request, "scope", {}).get("switchboard.received")  # project.asgi, under ASGI
        steps: list[tuple[str, float]] = [("before-view", (started - received) * 1000)] if received else []
        token = _steps.set(steps)
        try:
            response = view(request, *args, **kwargs)
        finally:
            _steps.reset(token)
        # The view's own CPU time apart from its wall time: on a busy machine the two differ.
        steps += [("view", (time.perf_counter() - started) * 1000), ("view-cpu", (time.thread_time() - cpu_started) * 1000)]
        response["Server-Timing"] = ", ".join(f"{name};dur={ms:.2f}" for name, ms in steps)
        return response

    return cast(View, wrapped)

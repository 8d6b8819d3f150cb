"""Short outages of the services Switchboard stands on, ridden out and named.

Redis carries the live display and the task queue; PostgreSQL is the record. A
restart of either takes seconds, and work that waits those seconds out loses
nothing, where work that treats the first error as a crash throws away a reply the
provider is still writing. When an outage lasts too long, the words say which
service was down, not "an error in Switchboard".
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import kombu.exceptions
import redis
from django.db import InterfaceError, OperationalError
from django.db import connection as db_connection
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.views import defaults

log = logging.getLogger(__name__)

REDIS = "Redis (live updates and the task queue)"
POSTGRESQL = "PostgreSQL (the database)"
# What a page that met an unreachable database tells the browser to wait before asking again.
RETRY_PAGE_SECONDS = 5

# What a client raises when its Redis is restarting, full of loading data or out of
# reach. OSError covers a Unix socket that has gone.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, kombu.exceptions.OperationalError, OSError)
# A server restart, a connection killed under a query, or a pool that could not hand
# one out in time (psycopg_pool.PoolTimeout, which Django wraps as OperationalError).
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


def service_of(error: BaseException) -> str | None:
    """The service an error says is unreachable (REDIS, POSTGRESQL), or None for any other error."""
    if isinstance(error, ServiceDown):
        return error.service
    if isinstance(error, DATABASE_ERRORS):
        return POSTGRESQL
    if isinstance(error, REDIS_ERRORS):
        return REDIS
    return None


class ServiceDown(Exception):
    """A service stayed unreachable for longer than the work could wait."""

    def __init__(self, service: str, seconds: float, what: str) -> None:
        self.service, self.seconds, self.what = service, seconds, what
        super().__init__(f"{service} was unreachable for {seconds:.0f} s while {what}.")


@dataclass
class Backoff:
    """When to try an unreachable service again: exponential from `base` to `cap`, with
    jitter so the threads of a worker do not all knock at the same moment, and how long
    it has been down."""

    base: float = 0.1
    cap: float = 2.0
    down_since: float | None = None
    next_try: float = 0.0
    failures: int = 0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def due(self) -> bool:
        return self.down_since is None or self.clock() >= self.next_try

    def failed(self) -> float:
        """Record a failure; returns the wait before the next try."""
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
        wait = min(self.cap, self.base * 2 ** self.failures) * random.uniform(0.5, 1.0)
        self.failures += 1
        self.next_try = now + wait
        return wait

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    def recovered(self) -> float:
        """Record success; returns how long the service had been down (0 when it was not)."""
        lasted = self.down_for()
        self.down_since, self.failures, self.next_try = None, 0, 0.0
        return lasted


def retry_while_down[T](call: Callable[[], T], *, service: str, errors: tuple[type[Exception], ...], what: str,
                        limit_seconds: float, backoff: Backoff | None = None,
                        before_retry: Callable[[], None] | None = None) -> T:
    """`call()`, tried again with backoff while it raises one of `errors`, for at most
    `limit_seconds`; ServiceDown after that. Only for calls that are safe to repeat (a
    read, or a write in one transaction that either happened whole or not at all and
    checks its own precondition)."""
    backoff = backoff or Backoff(cap=5.0)
    while True:
        try:
            return call()
        except errors as error:
            wait = backoff.failed()
            if backoff.down_for() + wait > limit_seconds:
                raise ServiceDown(service, backoff.down_for(), what) from error
            log.warning("%s unreachable while %s (%s); trying again in %.1f s", service, what, error, wait)
            if before_retry is not None:
                before_retry()
            time.sleep(wait)


def database_call[T](call: Callable[[], T], *, what: str, limit_seconds: float) -> T:
    """`call()` retried through a PostgreSQL blip (a restart, a connection killed, a pool
    that ran dry): between tries this thread's broken connection is dropped so the next
    try takes a fresh one. Never inside an outer transaction, which a blip has already
    lost: then the first error goes up."""
    if db_connection.in_atomic_block:
        return call()
    return retry_while_down(call, service=POSTGRESQL, errors=DATABASE_ERRORS, what=what, limit_seconds=limit_seconds,
                            before_retry=_drop_connection)


def _drop_connection() -> None:
    try:
        db_connection.close()
    except DATABASE_ERRORS:  # closing a connection the server already dropped
        log.debug("closing a broken database connection failed", exc_info=True)


def _service_down_in(error: BaseException | None) -> str | None:
    """The service named by an error or by any error it was raised from (Django wraps
    psycopg's errors), when that service is PostgreSQL: the one a page cannot do without."""
    while error is not None:
        if service_of(error) == POSTGRESQL:
            return POSTGRESQL
        error = error.__cause__ or error.__context__
    return None


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500: when the page failed because PostgreSQL was out of reach (a
    restart, a pool that could not connect), a 503 that says so and when to try again,
    instead of "something went wrong". Rendered without the request's context: its
    processors would ask the database again."""
    service = _service_down_in(sys.exception())
    if service is None:
        return defaults.server_error(request)
    page = loader.get_template("503.html").render({"service": service, "retry_seconds": RETRY_PAGE_SECONDS})
    response = HttpResponse(page, status=503)
    response["Retry-After"] = str(RETRY_PAGE_SECONDS)
    return response

"""The site's Redis cache: one client per process, and a Redis outage turns it into no
cache instead of a 500.

Everything the site caches can be rebuilt: sessions are kept in PostgreSQL too
(cached_db), model lists are asked for again, a throttle or a lock that cannot be
taken just skips that round. So while Redis is down a read is a miss, a write is
dropped and `add` says "not added" (whoever wanted a lock waits for the next round),
each logged; the pages keep working, and say so where live updates need Redis.

Django keeps a cache object per thread and async context; under ASGI each request runs
in a thread of its own, so the stock RedisCache built a new client, a new connection
pool and a new connection for every request, and redis-py reads its package metadata
from disk each time a client is made: a few milliseconds of every request (the session
is read from this cache) spent connecting. Here every cache object of the process
shares one client and its pool (redis-py's pool is thread-safe). One server: REDIS_URL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

from project.outages import REDIS, REDIS_ERRORS
from project.redis_connect import redis_client

log = logging.getLogger(__name__)


def _or[T](default: T, call: Callable[[], T], operation: str) -> T:
    try:
        return call()
    except REDIS_ERRORS as error:
        log.warning("cache %s skipped: %s unreachable (%s)", operation, REDIS, error)
        return default


class _ClientThroughOutages(RedisCacheClient):
    def add(self, key: Any, value: Any, timeout: Any) -> bool:
        return _or(False, lambda: bool(super(_ClientThroughOutages, self).add(key, value, timeout)), "add")

    def get(self, key: Any, default: Any) -> Any:
        return _or(default, lambda: super(_ClientThroughOutages, self).get(key, default), "get")

    def set(self, key: Any, value: Any, timeout: Any) -> None:
        _or(None, lambda: super(_ClientThroughOutages, self).set(key, value, timeout), "set")

    def touch(self, key: Any, timeout: Any) -> bool:
        return _or(False, lambda: bool(super(_ClientThroughOutages, self).touch(key, timeout)), "touch")

    def delete(self, key: Any) -> bool:
        return _or(False, lambda: bool(super(_ClientThroughOutages, self).delete(key)), "delete")

    def get_many(self, keys: Any) -> dict[Any, Any]:
        return _or({}, lambda: dict(super(_ClientThroughOutages, self).get_many(keys)), "get_many")

    def has_key(self, key: Any) -> bool:
        return _or(False, lambda: bool(super(_ClientThroughOutages, self).has_key(key)), "has_key")

    def set_many(self, data: Any, timeout: Any) -> None:
        _or(None, lambda: super(_ClientThroughOutages, self).set_many(data, timeout), "set_many")

    def delete_many(self, keys: Any) -> None:
        _or(None, lambda: super(_ClientThroughOutages, self).delete_many(keys), "delete_many")


# Past the pool's size a request waits for a free connection (each is held for one
# command) instead of failing, as redis-py's default pool does past 100.
POOL_CONNECTIONS = 64
POOL_WAIT_SECONDS = 20

_clients: dict[tuple[str, str], SharedRedisCacheClient] = {}
_lock = threading.Lock()


class SharedRedisCacheClient(_ClientThroughOutages):
    def __init__(self, location: str, **options: Any) -> None:
        super().__init__([location], **options)
        # The socket timeouts of the OPTIONS (settings.CACHES) keep an unreachable Redis
        # from holding a page for long.
        # Through Sentinel, a client of the master the sentinels name (project.redis_connect).
        pool_options: dict[str, Any] = getattr(self, "_pool_options")  # noqa: B009 - not in the stubs
        socket_options = {key: value for key, value in pool_options.items() if key.startswith("socket_")}
        self.shared_client = redis_client(location, max_connections=POOL_CONNECTIONS,
                                          pool_wait_seconds=POOL_WAIT_SECONDS, **socket_options)

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        return self.shared_client


class SharedRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self.location, self.client_options = server, dict(params.get("OPTIONS", {}))

    @cached_property
    def _cache(self) -> SharedRedisCacheClient:
        key = (self.location, repr(sorted(self.client_options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = SharedRedisCacheClient(self.location, **self.client_options)
        return client

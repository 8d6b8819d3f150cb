"""The cache, on Redis, that a Redis outage turns into no cache instead of a 500.

Everything the site caches can be rebuilt: sessions are kept in PostgreSQL too
(cached_db), model lists are asked for again, a throttle or a lock that cannot be
taken just skips that round. So while Redis is down a read is a miss, a write is
dropped and `add` says "not added" (whoever wanted a lock waits for the next round),
each logged; the pages keep working, and say so where live updates need Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from project.outages import REDIS, REDIS_ERRORS
from project.redis_connect import SentinelUrl, redis_client

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


class _SentinelAwareClient(_ClientThroughOutages):
    """Django's client builds a pool from each URL; a sentinel:// URL needs the pool of the
    master that the sentinels name (and follow through a failover)."""

    _master_pool: Any = None

    def _get_connection_pool(self, write: bool) -> Any:
        # Django's client keeps its URLs and options in attributes the stubs do not declare.
        servers: list[str] = getattr(self, "_servers")  # noqa: B009
        if SentinelUrl.parse(servers[0]) is None:
            return getattr(super(), "_get_connection_pool")(write)  # noqa: B009
        if self._master_pool is None:
            pool_options: dict[str, Any] = getattr(self, "_pool_options")  # noqa: B009
            options = {key: value for key, value in pool_options.items() if key.startswith("socket_")}
            self._master_pool = redis_client(servers[0], **options).connection_pool
        return self._master_pool


class RedisCacheThroughOutages(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SentinelAwareClient

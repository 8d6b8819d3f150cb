"""Django's Redis cache with one client per process.

Django keeps a cache object per thread and async context; under ASGI each request runs
in a thread of its own, so the stock RedisCache built a new client, a new connection
pool and a new connection for every request, and redis-py reads its package metadata
from disk each time a client is made: a few milliseconds of every request (the session
is read from this cache) spent connecting. Here every cache object of the process
shares one client and its pool (redis-py's pool is thread-safe).
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

POOL_CONNECTIONS = 64
POOL_WAIT_SECONDS = 20

_clients: dict[tuple[str, ...], SharedRedisCacheClient] = {}
_lock = threading.Lock()


class SharedRedisCacheClient(RedisCacheClient):
    def __init__(self, servers: list[str], **options: Any) -> None:
        # Every request thread of the process shares the pool: past its size a request waits
        # for a free connection (each is held for one command) instead of failing, as
        # redis-py's default pool does past 100.
        options.setdefault("pool_class", redis.BlockingConnectionPool)
        options.setdefault("max_connections", POOL_CONNECTIONS)
        options.setdefault("timeout", POOL_WAIT_SECONDS)
        super().__init__(servers, **options)
        self._redis_clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._redis_clients.get(id(pool))
        if client is None:
            with _lock:
                client = self._redis_clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client

    def _get_connection_pool(self, write: bool) -> Any:
        index = self._get_connection_pool_index(write)
        if index not in self._pools:
            with _lock:
                if index not in self._pools:
                    self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
        return self._pools[index]


class SharedRedisCache(RedisCache):
    @cached_property
    def _cache(self) -> SharedRedisCacheClient:
        key = (*self._servers, repr(sorted(self._options.items())))
        client = _clients.get(key)
        if client is None:
            with _lock:
                client = _clients.get(key)
                if client is None:
                    client = _clients[key] = SharedRedisCacheClient(self._servers, **self._options)
        return client

"""Django's Redis cache with one client per process.

Django keeps a cache object per thread and async context; under ASGI each request runs
in a thread of its own, so the stock RedisCache built a new client, a new connection
pool and a new connection for every request, and redis-py reads its package metadata
from disk each time a client is made: a few milliseconds of every request (the session
is read from this cache) spent connecting. Here every cache object of the process
shares one client and its pool (redis-py's pool is thread-safe). One server: REDIS_URL.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

# Past the pool's size a request waits for a free connection (each is held for one
# command) instead of failing, as redis-py's default pool does past 100.
POOL_CONNECTIONS = 64
POOL_WAIT_SECONDS = 20

_clients: dict[tuple[str, str], SharedRedisCacheClient] = {}
_lock = threading.Lock()


class SharedRedisCacheClient(RedisCacheClient):
    def __init__(self, location: str, **options: Any) -> None:
        super().__init__([location], **options)
        pool = redis.BlockingConnectionPool.from_url(location, max_connections=POOL_CONNECTIONS,
                                                     timeout=POOL_WAIT_SECONDS)
        self.shared_client = redis.Redis(connection_pool=pool)

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

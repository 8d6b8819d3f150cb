"""Connecting to Redis, directly or through Sentinel.

REDIS_URL is either a plain Redis URL (redis://, rediss://, unix://) or a Sentinel one:

    sentinel://[:password@]host1:26379,host2:26379,host3:26379/<master name>[/<db>]

With Sentinel, every client asks the sentinels which server is the master and follows
a failover: the live streams (assistants_app.streams and the SSE view), the cache, and
Celery's broker (kombu's own sentinel transport, see broker_settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel"


@dataclass(frozen=True)
class SentinelUrl:
    hosts: list[tuple[str, int]]
    master: str
    db: int
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SentinelUrl | None:
        """The parts of a sentinel:// URL; None for any other URL. ValueError when malformed."""
        parts = urlsplit(url)
        if parts.scheme != SENTINEL_SCHEME:
            return None
        location = parts.netloc.rsplit("@", 1)
        password = unquote(location[0].split(":", 1)[-1]) if len(location) == 2 else None
        hosts = []
        for host in location[-1].split(","):
            name, _, port = host.rpartition(":")
            hosts.append((name or host, int(port) if name else 26379))
        path = [piece for piece in parts.path.split("/") if piece]
        if not path or not all(name for name, _ in hosts):
            raise ValueError("a Sentinel URL is sentinel://host:port[,host:port…]/<master name>[/<db>]")
        return cls(hosts=hosts, master=path[0], db=int(path[1]) if len(path) > 1 else 0, password=password or None)


def redis_client(url: str, *, max_connections: int | None = None, pool_wait_seconds: float = 20.0,
                 **options: Any) -> redis.Redis:
    """A client for REDIS_URL; through Sentinel, one that follows the current master. With
    `max_connections`, a thread past the pool's size waits up to `pool_wait_seconds` for a
    free connection instead of failing (redis-py's own pool fails past its size); through
    Sentinel the master's pool is capped at that size."""
    sentinel = SentinelUrl.parse(url)
    if sentinel is None:
        if max_connections is None:
            return redis.Redis.from_url(url, **options)
        return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_wait_seconds, **options))
    if max_connections is not None:
        options["max_connections"] = max_connections
    return Sentinel(sentinel.hosts, sentinel_kwargs={"password": sentinel.password} if sentinel.password else None,
                    **_timeouts(options)).master_for(sentinel.master, db=sentinel.db, password=sentinel.password,
                                                     **options)


def async_redis_client(url: str, *, max_connections: int | None = None, pool_wait_seconds: float = 20.0,
                       **options: Any) -> aredis.Redis:
    """As redis_client, for asyncio."""
    sentinel = SentinelUrl.parse(url)
    if sentinel is None:
        if max_connections is None:
            return aredis.Redis.from_url(url, **options)
        return aredis.Redis(connection_pool=aredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_wait_seconds, **options))
    if max_connections is not None:
        options["max_connections"] = max_connections
    return AsyncSentinel(sentinel.hosts, sentinel_kwargs={"password": sentinel.password} if sentinel.password else None,
                         **_timeouts(options)).master_for(sentinel.master, db=sentinel.db, password=sentinel.password,
                                                          **options)


def _timeouts(options: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key in ("socket_timeout", "socket_connect_timeout")}


def broker_settings(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and transport options for REDIS_URL (kombu spells a Unix socket
    redis+socket:// and Sentinel as one sentinel:// URL per sentinel, master in the options)."""
    sentinel = SentinelUrl.parse(url)
    if sentinel is not None:
        auth = f":{sentinel.password}@" if sentinel.password else ""
        hosts = ";".join(f"sentinel://{auth}{host}:{port}/{sentinel.db}" for host, port in sentinel.hosts)
        return hosts, {"master_name": sentinel.master}
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://"), {}
    return url, {}

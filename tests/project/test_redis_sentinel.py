"""REDIS_URL through Redis Sentinel: the live streams, the cache and Celery's broker find
the master the sentinels name. A real redis-server and a real sentinel (tests/outages.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from project.config import Config
from project.redis_connect import SentinelUrl, broker_settings, redis_client
from tests.outages import StoppableRedis, sentinel_for, stoppable_redis


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    with stoppable_redis() as server, sentinel_for(server, tmp_path) as port:
        yield f"sentinel://127.0.0.1:{port}/switchboard/0"


def test_a_sentinel_url_is_read_and_malformed_ones_are_named() -> None:
    parsed = SentinelUrl.parse("sentinel://:pw@a:26379,b/mymaster/2")
    assert parsed == SentinelUrl(hosts=[("a", 26379), ("b", 26379)], master="mymaster", db=2, password="pw")
    assert SentinelUrl.parse("redis://localhost:6379/0") is None
    assert broker_settings("sentinel://a:1,b:2/m/3") == ("sentinel://a:1/3;sentinel://b:2/3", {"master_name": "m"})
    environ = {"SECRET_KEY": "x" * 50, "DEBUG": "true", "DATABASE_URL": "postgres://u@h/db",
               "FIELD_ENCRYPTION_KEYS": "tGJ1wKNj0zhbkd2jF7C8X5rjJLq8_Ql0b6bVAvnCzXY=", "REDIS_URL": "sentinel://a:1"}
    with pytest.raises(Exception, match="REDIS_URL: a Sentinel URL is sentinel://host:port"):
        Config.from_environ(environ)


def test_streams_the_cache_and_the_broker_reach_the_master_through_sentinel(sentinel_url: str, settings: Any) -> None:
    from django.core.cache import caches

    from assistants_app import streams

    assert redis_client(sentinel_url).ping()
    settings.REDIS_URL = sentinel_url
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": sentinel_url}}
    streams.redis_client.cache_clear()
    try:
        streams.publish(1, "delta", "through the sentinel")
        shown, _, _ = streams.fold(streams.redis_client().xrange(streams.stream_key(1)))
        assert shown == [("delta", "through the sentinel")]
    finally:
        streams.redis_client.cache_clear()
    # Search's list of messages waiting for their embeddings, too.
    from search_app import pending

    pending.redis_client.cache_clear()
    try:
        pending.redis_client().set(pending.DRAIN_DUE_KEY, 1)  # a drain is due: the push sends no task
        pending.pending_push(7, 99)
        assert pending.pending_take() == {7: [99]}
    finally:
        pending.redis_client.cache_clear()
    caches["default"].set("sentinel-check", 42)
    assert caches["default"].get("sentinel-check") == 42
    url, options = broker_settings(sentinel_url)
    with Connection(url, transport_options=options) as broker:
        queue = broker.SimpleQueue("sentinel-check")
        queue.put({"hello": "sentinel"})
        assert queue.get(timeout=5).payload == {"hello": "sentinel"}
        queue.close()


def test_a_client_through_sentinel_follows_the_master_it_names(tmp_path: Path) -> None:
    with stoppable_redis() as first, sentinel_for(first, tmp_path) as port:
        client = redis_client(f"sentinel://127.0.0.1:{port}/switchboard/0", socket_connect_timeout=0.5)
        client.set("where", "first")
        assert client.get("where") == b"first"
        second = StoppableRedis()
        second.start()
        try:
            # What a failover does: the sentinels name another server; the client goes there.
            control = redis_client(f"redis://127.0.0.1:{port}")
            control.execute_command("SENTINEL", "REMOVE", "switchboard")
            control.execute_command("SENTINEL", "MONITOR", "switchboard", "127.0.0.1", second.port, 1)
            first.kill()
            client.set("where", "second")
            assert redis_client(second.url).get("where") == b"second"
        finally:
            second.kill()

"""One Redis client per broker channel, not one per message sent.

kombu's Redis transport (5.7) builds a new `redis.Redis` for every message it publishes
(`Channel.conn_or_acquire` without a client), and with redis-py 8 building one costs more
than sending the message: its command-callback table and argument checks, ~0.3 ms of CPU
per task sent, measured in-process, and over a millisecond in a busy web process, on the
way from a posted chat message to its worker. The client holds no connection of its own
(the channel's pool does), so one per channel serves every message: a channel is used by
one thread at a time (Celery's producer pool lends it out), and a closed channel is
replaced with a new one, with a new client.

Installed from project.celery; the Sentinel transport's channel inherits it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

_CLIENT_ATTRIBUTE = "_switchboard_sync_client"


@contextmanager
def _channel_client(channel: Any, client: Any = None) -> Iterator[Any]:
    if client:
        yield client
        return
    kept = channel.__dict__.get(_CLIENT_ATTRIBUTE)
    if kept is None:
        kept = channel.__dict__[_CLIENT_ATTRIBUTE] = channel._create_client()
    yield kept


def install() -> None:
    kombu_redis.Channel.conn_or_acquire = _channel_client  # type: ignore[method-assign,assignment]

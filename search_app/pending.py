"""New messages waiting for their embeddings: a Redis list drained by one task at a time.

Saving a message pushes its id (after the commit) and asks for a drain unless one is
already due, so a busy minute of chat becomes a few requests of many inputs, not one
request per message. What a lost list forgets, the backfill finds (it embeds every
message that has no embedding).
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from typing import cast

import redis
from django.conf import settings

from project import redis_connect
from project.celery import app

PENDING_KEY = "sb:search:pending"
DRAIN_DUE_KEY = "sb:search:drain-due"
# A drain waits this long, so the messages saved meanwhile (a busy chat, a reply and its
# question) go in one request.
DRAIN_DELAY_SECONDS = 0.5
DRAIN_MAX = 2048


@cache
def redis_client() -> redis.Redis:
    # Through redis_connect, as every other client: a Sentinel REDIS_URL reaches the
    # current master, and a dead server fails the push in a second (the push runs after a
    # chat message's commit, before its reply is sent to a worker) instead of redis-py's
    # default of waiting on the socket.
    return redis_connect.redis_client(settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=5.0)


def pending_push(team_id: int, message_id: int) -> None:
    # One round trip for both (it runs in the message POST, after the run is sent): the id
    # is queued whatever the flag says, and the flag says whether a drain is already due.
    pipe = redis_client().pipeline(transaction=False)
    pipe.rpush(PENDING_KEY, f"{team_id}:{message_id}")
    pipe.set(DRAIN_DUE_KEY, 1, nx=True, ex=30)
    _, due_now = pipe.execute()
    if due_now:
        # By name (services never import a tasks module), with the delay project.queue does not offer.
        app.tasks["search_app.pending_drain"].apply_async(countdown=DRAIN_DELAY_SECONDS)


def pending_take(limit: int = DRAIN_MAX) -> dict[int, list[int]]:
    """Up to `limit` waiting ids, by team. The due flag is cleared first: an id pushed after
    this starts a drain of its own."""
    client = redis_client()
    client.delete(DRAIN_DUE_KEY)
    raw = cast(list[bytes], client.lpop(PENDING_KEY, limit) or [])
    by_team: dict[int, list[int]] = defaultdict(list)
    for item in raw:
        team_id, _, message_id = item.decode().partition(":")
        by_team[int(team_id)].append(int(message_id))
    return dict(by_team)


def pending_left() -> int:
    return int(redis_client().llen(PENDING_KEY))

"""Tasks are sent through one Redis client per broker channel (project.broker_clients):
kombu built a new client for every message, which cost more CPU than the send itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from project.celery import app

QUEUE = "switchboard-test-broker-clients"


@pytest.fixture
def unread_queue() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)


def test_sending_many_tasks_builds_no_redis_client_per_message(unread_queue: redis.Redis, monkeypatch) -> None:
    app.send_task("switchboard.test.nothing", queue=QUEUE)  # the channel's client, made once
    made: list[int] = []
    build = redis.Redis.__init__

    def counted(self: redis.Redis, *args: object, **kwargs: object) -> None:
        made.append(1)
        build(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(redis.Redis, "__init__", counted)
    for _ in range(20):
        app.send_task("switchboard.test.nothing", queue=QUEUE)

    assert made == []
    # Every message was delivered all the same.
    assert unread_queue.llen(QUEUE) == 21

"""What a Celery task spends its time on, which decides the queue it runs on.

`io` tasks wait on a provider (a thread-pool worker serves many at once); `cpu`
tasks parse and validate (a process per core). Declare it with the base class:
`@shared_task(base=IoTask)`; project.celery.route_by_workload routes on it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import kombu.exceptions
import redis
from celery import Task

WORKLOAD_QUEUES = ("io", "cpu")
# What sending a task (or writing to Redis) raises when the broker cannot be reached.
BROKER_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, kombu.exceptions.KombuError, OSError)


class IoTask(Task):
    workload: ClassVar[str] = "io"


class CpuTask(Task):
    workload: ClassVar[str] = "cpu"


def queue_for(task: Any) -> str | None:
    workload = getattr(task, "workload", None)
    return workload if workload in WORKLOAD_QUEUES else None

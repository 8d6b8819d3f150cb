"""The Celery app. Settings come from Django's CELERY_* settings (JSON only, time
limits there); each app adds its periodic tasks (project.periodic).

acks_late is set per task, only on tasks that are safe to run twice.
"""

from __future__ import annotations

import os

from celery import Celery

from project import broker_clients
from project.workloads import queue_for

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")



def route_by_workload(name: str, args: object, kwargs: object, options: object, task: object = None,
                      **extra: object) -> dict[str, str] | None:
    """Send a task to the queue its base class names (project.workloads), so the
    per-task `queue` attribute, deprecated in Celery 6, is not needed."""
    queue = queue_for(task)
    return {"queue": queue} if queue else None

broker_clients.install()
app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work is added by the apps that need it, from their AppConfig.ready()
# (project.periodic.periodic_task_register); Celery reads this after Django has set up.
app.conf.beat_schedule = {}

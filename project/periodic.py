"""Periodic tasks: each app adds its own from AppConfig.ready(), so the Celery app
(project.celery) names no feature. Beat reads the schedule after Django has set up."""

from __future__ import annotations

from project.celery import app


def periodic_task_register(key: str, *, task: str, seconds: float) -> None:
    """Every `seconds`, beat sends `task`. A tick no worker has started within its period
    expires: the next tick does the same work, so while a worker is down (or busy) the
    ticks do not pile up in its queue to run back to back when it returns."""
    app.conf.beat_schedule[key] = {"task": task, "schedule": seconds, "options": {"expires": seconds}}

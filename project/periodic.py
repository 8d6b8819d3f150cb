"""Periodic tasks: each app adds its own from AppConfig.ready(), so the Celery app
(project.celery) names no feature. Beat reads the schedule after Django has set up."""

from __future__ import annotations

from project.celery import app


def periodic_task_register(key: str, *, task: str, seconds: float) -> None:
    app.conf.beat_schedule[key] = {"task": task, "schedule": seconds}

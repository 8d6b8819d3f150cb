"""Sending Celery tasks by name.

Services enqueue through here, so no service imports a tasks module: tasks import
services, never the reverse, and there is no import cycle to patch with a lazy
import. Each app registers its tasks by importing its tasks module in
AppConfig.ready(), so a name is known in every process (web, workers, beat).
"""

from __future__ import annotations

from functools import partial

from celery import Task
from django.db import transaction

from project.celery import app


class UnknownTask(LookupError):
    pass


def _registered(name: str) -> Task:
    try:
        return app.tasks[name]
    except KeyError as error:
        raise UnknownTask(f"no Celery task is registered as {name!r}") from error


def task_send(name: str, *args: object) -> None:
    """Send the task now. Raises one of project.workloads.BROKER_ERRORS when the
    broker cannot be reached; the caller decides whether that matters."""
    _registered(name).delay(*args)


def task_send_on_commit(name: str, *args: object) -> None:
    """Send the task once the current transaction commits (at once outside one), so a
    worker never looks for a row that is not there yet. An unknown name fails now, in
    the caller, not after the commit."""
    transaction.on_commit(partial(_registered(name).delay, *args))

"""Thin tasks of the spend ledger: the periodic sweep of expired budget reservations."""

from __future__ import annotations

from celery import shared_task

from project.spend.budgets import reservations_expire
from project.workloads import IoTask


# Idempotent: a second sweep finds nothing expired.
@shared_task(base=IoTask, name="project.spend.tasks.reservations_expire_task")
def reservations_expire_task() -> None:
    reservations_expire()

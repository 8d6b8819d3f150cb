"""Thin Celery tasks: take ids, call a service. Provider hiccups (rate limits, timeouts,
5xx) are retried with backoff; what is already stored is not asked for again."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from project.providers.client import ProviderError, poll_backoff_seconds
from project.teams.models import Team
from project.workloads import IoTask
from search_app import services

log = logging.getLogger(__name__)

MAX_RETRIES = 5


def _retry_or_raise(task: Any, error: ProviderError) -> None:
    if error.transient and task.request.retries < MAX_RETRIES:
        countdown = poll_backoff_seconds(task.request.retries + 1, error, base=2.0, cap=120.0)
        raise task.retry(countdown=countdown, exc=error)


@shared_task(base=IoTask, name="search_app.pending_drain")
def pending_drain_task() -> int:
    return services.pending_drain()


@shared_task(base=IoTask, bind=True, name="search_app.messages_embed", max_retries=MAX_RETRIES)
def messages_embed_task(self: Any, team_id: int, message_ids: list[int]) -> int:
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        return 0
    try:
        return services.team_messages_embed(team=team, message_ids=message_ids)
    except ProviderError as error:
        _retry_or_raise(self, error)
        # The backfill (or the next save) embeds them later; the failure is the provider's.
        log.warning("embedding %d messages of team %d failed: %s", len(message_ids), team_id, error.message)
        return 0


@shared_task(base=IoTask, bind=True, name="search_app.backfill_step", max_retries=MAX_RETRIES)
def backfill_step_task(self: Any, backfill_id: int) -> bool:
    try:
        return services.backfill_step(backfill_id=backfill_id)
    except ProviderError as error:
        _retry_or_raise(self, error)
        services.backfill_fail(backfill_id=backfill_id, error=error)
        return False

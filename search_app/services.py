"""Writes of the search feature: settings, the backfill, and handing new messages to the worker."""

from __future__ import annotations

import logging

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from assistants_app.conversation import Message
from project.providers.client import ProviderError
from project.providers.models import ProviderConnection
from project.queue import task_send_on_commit
from project.teams.models import Team
from project.teams.services import audit_record
from search_app import pending
from search_app.embedding import messages_embed
from search_app.models import BackfillStatus, EmbeddingBackfill, EmbeddingSettings
from search_app.selectors import (
    EMBEDDABLE_ROLES,
    backfill_estimate,
    messages_to_embed,
    team_backfill_latest,
    team_embedding_config,
)
from search_app.vector_schema import vectors_ready

log = logging.getLogger(__name__)

# Messages per backfill step: one step is one task, so a pause takes effect within one step.
BACKFILL_STEP = 512


class SearchSettingsError(ValueError):
    """A setting cannot be saved; the message says why, for the page."""


def embedding_settings_save(*, team: Team, actor: User | None, connection: ProviderConnection | None, model: str,
                            dimensions: int, enabled: bool) -> bool:
    """Save the team's embedding settings; True when the model or size changed, which
    supersedes a running backfill (the page then shows a new estimate to start again)."""
    with transaction.atomic():
        saved, _ = EmbeddingSettings.objects.select_for_update().get_or_create(team=team)
        # A new row holds the defaults, which is what the team used until now.
        changed = (saved.model, saved.dimensions) != (model, dimensions)
        saved.connection, saved.model, saved.dimensions, saved.enabled = connection, model, dimensions, enabled
        saved.save()
        if changed:
            EmbeddingBackfill.objects.filter(team=team, status__in=(BackfillStatus.RUNNING, BackfillStatus.PAUSED)).update(
                status=BackfillStatus.SUPERSEDED, finished_at=timezone.now())
        audit_record(team=team, actor=actor, action="search.settings_changed", target=model, dimensions=dimensions,
                     enabled=enabled, connection=connection.name if connection else "")
    return changed


def message_saved(message: Message) -> None:
    """A message was written: queue it for embedding once the transaction commits."""
    if message.role not in EMBEDDABLE_ROLES or message.pending or not message.text.strip():
        return
    team_id, message_id = message.team_id, message.pk
    # robust: Redis being down must not fail the chat that saved the message (the backfill
    # embeds what was missed).
    transaction.on_commit(lambda: pending.pending_push(team_id, message_id), robust=True)


def pending_drain() -> int:
    """Hand the waiting messages to an embedding task per team; another drain follows while
    some are left."""
    by_team = pending.pending_take()
    for team_id, message_ids in by_team.items():
        task_send_on_commit("search_app.messages_embed", team_id, message_ids)
    if pending.pending_left():
        task_send_on_commit("search_app.pending_drain")
    return sum(len(ids) for ids in by_team.values())


def team_messages_embed(*, team: Team, message_ids: list[int]) -> int:
    """Embed new messages with the team's settings; ProviderError propagates for the task's retry."""
    outcome = messages_embed(team=team, config=team_embedding_config(team=team), message_ids=message_ids)
    return outcome.messages


# -- backfill --------------------------------------------------------------------------------

def backfill_start(*, team: Team, actor: User | None) -> EmbeddingBackfill:
    """Start embedding the team's older messages with its current settings (an active
    backfill of the same settings is returned as it is)."""
    config = team_embedding_config(team=team)
    if not vectors_ready():
        raise SearchSettingsError("This database has no pgvector: nothing can be embedded.")
    if not config.usable:
        raise SearchSettingsError("Choose a provider connection and turn embeddings on first.")
    with transaction.atomic():
        current = team_backfill_latest(team=team)
        if current is not None and current.is_active and (current.model, current.dimensions) == (config.model,
                                                                                                 config.dimensions):
            return current
        estimate = backfill_estimate(team=team, config=config)
        backfill = EmbeddingBackfill.objects.create(team=team, model=config.model, dimensions=config.dimensions,
                                                    total_messages=estimate.messages, estimated_tokens=estimate.tokens)
        audit_record(team=team, actor=actor, action="search.backfill_started", target=config.model,
                     messages=estimate.messages, tokens=estimate.tokens)
        task_send_on_commit("search_app.backfill_step", backfill.pk)
    return backfill


def backfill_pause(*, backfill: EmbeddingBackfill, actor: User | None) -> bool:
    with transaction.atomic():
        paused = EmbeddingBackfill.objects.filter(pk=backfill.pk, status=BackfillStatus.RUNNING).update(
            status=BackfillStatus.PAUSED)
        if paused:
            audit_record(team=backfill.team, actor=actor, action="search.backfill_paused", target=backfill.model)
    return bool(paused)


def backfill_resume(*, backfill: EmbeddingBackfill, actor: User | None) -> bool:
    with transaction.atomic():
        resumed = EmbeddingBackfill.objects.filter(pk=backfill.pk, status__in=(BackfillStatus.PAUSED, BackfillStatus.FAILED)
                                                   ).update(status=BackfillStatus.RUNNING, error="", finished_at=None)
        if resumed:
            audit_record(team=backfill.team, actor=actor, action="search.backfill_resumed", target=backfill.model)
            task_send_on_commit("search_app.backfill_step", backfill.pk)
    return bool(resumed)


def backfill_step(*, backfill_id: int) -> bool:
    """Embed the next messages after the cursor; True when another step was queued. A step
    of a backfill that is not running does nothing, so a redelivered task, or one sent
    before a pause, is harmless."""
    backfill = EmbeddingBackfill.objects.select_related("team").filter(pk=backfill_id).first()
    if backfill is None or backfill.status != BackfillStatus.RUNNING:
        return False
    config = team_embedding_config(team=backfill.team)
    if (config.model, config.dimensions) != (backfill.model, backfill.dimensions):
        EmbeddingBackfill.objects.filter(pk=backfill.pk).update(status=BackfillStatus.SUPERSEDED,
                                                                finished_at=timezone.now())
        return False
    ids = list(messages_to_embed(team=backfill.team, model=backfill.model, dimensions=backfill.dimensions,
                                 after_id=backfill.cursor).values_list("id", flat=True)[:BACKFILL_STEP])
    if not ids:
        EmbeddingBackfill.objects.filter(pk=backfill.pk, status=BackfillStatus.RUNNING).update(
            status=BackfillStatus.DONE, finished_at=timezone.now())
        return False
    outcome = messages_embed(team=backfill.team, config=config, message_ids=ids, purpose="backfill")
    with transaction.atomic():
        # The step's work counts even when a pause came in meanwhile; only a running one goes on.
        EmbeddingBackfill.objects.filter(pk=backfill.pk, status__in=(BackfillStatus.RUNNING, BackfillStatus.PAUSED)).update(
            cursor=ids[-1], done_messages=F("done_messages") + len(ids),
            embedded_tokens=F("embedded_tokens") + outcome.tokens)
        still_running = EmbeddingBackfill.objects.filter(pk=backfill.pk, status=BackfillStatus.RUNNING).exists()
        if still_running:
            task_send_on_commit("search_app.backfill_step", backfill.pk)
    return still_running


def backfill_fail(*, backfill_id: int, error: ProviderError) -> None:
    EmbeddingBackfill.objects.filter(pk=backfill_id, status=BackfillStatus.RUNNING).update(
        status=BackfillStatus.FAILED, error=error.message, finished_at=timezone.now())

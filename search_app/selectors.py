"""Reads of the search feature, always scoped to a team (the ranking itself is ranking.py)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Length, NullIf
from django.shortcuts import get_object_or_404

from assistants_app.conversation import Message, Role
from project.providers.model_facts import cost_usd, model_facts
from project.providers.models import ProviderConnection
from project.providers.selectors import team_connections, team_default_connection
from project.teams.models import Team
from search_app.models import (
    DEFAULT_DIMENSIONS,
    DEFAULT_MODEL,
    EmbeddingBackfill,
    EmbeddingSettings,
    MessageEmbedding,
)
from search_app.vector_schema import vectors_ready

EMBEDDABLE_ROLES = (Role.USER, Role.ASSISTANT)
# Without a stored count, a message's tokens are guessed from its length (about 4 characters
# a token in English); the estimate says "about".
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class EmbeddingConfig:
    connection: ProviderConnection | None
    model: str
    dimensions: int
    enabled: bool

    @property
    def usable(self) -> bool:
        return self.enabled and self.connection is not None


def team_embedding_settings(*, team: Team) -> EmbeddingSettings | None:
    return EmbeddingSettings.objects.select_related("connection").filter(team=team).first()


def team_embedding_config(*, team: Team) -> EmbeddingConfig:
    saved = team_embedding_settings(team=team)
    if saved is None:
        return EmbeddingConfig(team_default_connection(team=team), DEFAULT_MODEL, DEFAULT_DIMENSIONS, True)
    connection = saved.connection or team_default_connection(team=team)
    return EmbeddingConfig(connection, saved.model, saved.dimensions, saved.enabled)


def team_embedding_connections(*, team: Team) -> QuerySet[ProviderConnection]:
    return team_connections(team=team)


def embeddable_messages(*, team: Team) -> QuerySet[Message]:
    """The messages that get embeddings: a person's or an assistant's text (tool results and
    empty tool-call turns say nothing to search for)."""
    return (Message.objects.filter(team=team, role__in=EMBEDDABLE_ROLES, pending=False)
            .exclude(text__regex=r"^\s*$"))


def messages_to_embed(*, team: Team, model: str, dimensions: int, after_id: int = 0) -> QuerySet[Message]:
    """Embeddable messages with no embedding of this model and size yet, oldest first."""
    done = MessageEmbedding.objects.filter(team=team, model=model, dimensions=dimensions, chunk=0).values("message_id")
    qs = embeddable_messages(team=team).filter(id__gt=after_id)
    if vectors_ready():
        qs = qs.exclude(id__in=done)
    return qs.order_by("id")


@dataclass(frozen=True)
class Estimate:
    messages: int
    tokens: int
    live_cost: Decimal | None
    batch_cost: Decimal | None
    model: str
    dimensions: int


def backfill_estimate(*, team: Team, config: EmbeddingConfig) -> Estimate:
    """What embedding every message not yet embedded with this model and size would take:
    tokens (the stored count, or a guess from the length), and the cost live and through
    the Batch API (half price)."""
    totals = messages_to_embed(team=team, model=config.model, dimensions=config.dimensions).aggregate(
        n=Count("id"), tokens=Coalesce(Sum(Coalesce(NullIf("token_count", 0), Length("text") / CHARS_PER_TOKEN)), 0))
    facts = model_facts(config.model)
    tokens = int(totals["tokens"])
    return Estimate(messages=int(totals["n"]), tokens=tokens, live_cost=cost_usd(tokens, facts.price("input")),
                    batch_cost=cost_usd(tokens, facts.price("batch_input")), model=config.model,
                    dimensions=config.dimensions)


def embedded_message_count(*, team: Team, config: EmbeddingConfig) -> int:
    if not vectors_ready():
        return 0
    return MessageEmbedding.objects.filter(team=team, model=config.model, dimensions=config.dimensions, chunk=0).count()


def team_has_embeddings(*, team: Team, config: EmbeddingConfig) -> bool:
    return vectors_ready() and MessageEmbedding.objects.filter(
        team=team, model=config.model, dimensions=config.dimensions).exists()


def team_backfill_latest(*, team: Team) -> EmbeddingBackfill | None:
    return EmbeddingBackfill.objects.filter(team=team).first()


def team_backfill_get(*, team: Team, backfill_id: int) -> EmbeddingBackfill:
    return get_object_or_404(EmbeddingBackfill, team=team, pk=backfill_id)


def team_message_get(*, team: Team, message_id: int) -> Message:
    return get_object_or_404(Message.objects.select_related("thread"), team=team, pk=message_id)


def messages_neighbours(*, team: Team, message_ids: list[int]) -> dict[int, tuple[Message | None, Message | None]]:
    """For each message, the person's or assistant's message just before and just after it
    in its thread (for a result's context), in two queries."""
    around = Message.objects.filter(team=team, thread_id=OuterRef("thread_id"), role__in=EMBEDDABLE_ROLES)
    pairs = list(Message.objects.filter(team=team, id__in=message_ids).annotate(
        before_id=Subquery(around.filter(id__lt=OuterRef("id")).order_by("-id").values("id")[:1]),
        after_id=Subquery(around.filter(id__gt=OuterRef("id")).order_by("id").values("id")[:1]),
    ).values_list("id", "before_id", "after_id"))
    wanted = {pk for _, before, after in pairs for pk in (before, after) if pk is not None}
    found = Message.objects.filter(team=team, id__in=wanted).in_bulk() if wanted else {}
    return {pk: (found.get(before) if before else None, found.get(after) if after else None) for pk, before, after in pairs}

"""Embeddings of the team's messages, the team's embedding settings, the backfill of
older messages, and what embedding cost.

The embeddings table is made by migration only where PostgreSQL has pgvector
(search_app/vector_schema.py); everything that reads or writes it asks
`vectors_ready()` first.
"""

from __future__ import annotations

from django.db import models
from pgvector.django import VectorField

from assistants_app.conversation import Message, Thread
from project.providers.models import ProviderConnection
from project.teams.models import Team

DEFAULT_MODEL = "text-embedding-3-small"
DEFAULT_DIMENSIONS = 256
MIN_DIMENSIONS = 256


class EmbeddingSettings(models.Model):
    """Which connection and model embed a team's messages. A team without a row uses its
    default connection with the defaults."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(default=True)
    connection = models.ForeignKey(ProviderConnection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    model = models.CharField(max_length=200, default=DEFAULT_MODEL)
    dimensions = models.PositiveIntegerField(default=DEFAULT_DIMENSIONS)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.model} ({self.dimensions}) for team {self.team_id}"


class MessageEmbedding(models.Model):
    """One chunk of one message's text, embedded with one model at one size. A message
    short enough for one chunk has one row; `text_sha256` says which text was embedded,
    so an unchanged message is never embedded (nor paid for) twice."""

    # Deleted by the database with their message, thread or team: the foreign keys are made
    # ON DELETE CASCADE by vector_schema.install, not by Django, so deleting a message never
    # asks for this table, which a server without pgvector does not have. (Django's own
    # DB_CASCADE refuses a chain whose other links cascade in Python, as chat's do.)
    team = models.ForeignKey(Team, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+")
    # Indexed by the unique constraint (message first) and embedding_team_model (team first).
    message = models.ForeignKey(Message, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                                related_name="+")
    # Denormalised from the message: the thread list's filters apply to semantic hits too.
    thread = models.ForeignKey(Thread, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    chunk = models.PositiveSmallIntegerField(default=0)
    model = models.CharField(max_length=200)
    dimensions = models.PositiveIntegerField()
    text_sha256 = models.CharField(max_length=64)
    tokens = models.PositiveIntegerField(default=0)
    # No fixed size: each team picks its own; the HNSW indexes are partial, one per size.
    embedding = VectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "model", "dimensions", "chunk"],
                                               name="embedding_once_per_chunk")]
        indexes = [models.Index(fields=["team", "model", "dimensions"], name="embedding_team_model")]

    def __str__(self) -> str:
        return f"message {self.message_id} chunk {self.chunk} ({self.model}/{self.dimensions})"


class BackfillStatus(models.TextChoices):
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    SUPERSEDED = "superseded", "superseded (the model or size changed)"


class EmbeddingBackfill(models.Model):
    """Embedding a team's older messages, oldest first, a batch per task. The cursor is the
    last message id handled, so a paused or crashed backfill resumes where it stopped."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200)
    dimensions = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=BackfillStatus.choices, default=BackfillStatus.RUNNING)
    total_messages = models.PositiveIntegerField(default=0)
    estimated_tokens = models.PositiveBigIntegerField(default=0)
    done_messages = models.PositiveIntegerField(default=0)
    embedded_tokens = models.PositiveBigIntegerField(default=0)
    cursor = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"backfill {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if not self.total_messages else min(100, self.done_messages * 100 // self.total_messages)

    @property
    def is_active(self) -> bool:
        return self.status in (BackfillStatus.RUNNING, BackfillStatus.PAUSED)


class EmbeddingSpend(models.Model):
    """One embeddings request's tokens and cost: new messages, a backfill or a search query."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200)
    purpose = models.CharField(max_length=10)  # "messages", "backfill", "query"
    inputs = models.PositiveIntegerField()
    tokens = models.PositiveIntegerField()
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["team", "created_at"], name="embedding_spend_team_day")]

    def __str__(self) -> str:
        return f"{self.tokens} tokens of {self.model}"

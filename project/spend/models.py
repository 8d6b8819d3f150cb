"""The cost ledger, its daily and monthly rollups, budgets and their reservations.

The ledger (SpendEntry) is append-only: one row per billable provider call, written by
features through `project.spend.ledger.spend_record`, never updated (a database trigger
refuses it) and never removed with what it describes. It names what it describes by id
and name (no foreign key to a feature's table), so deleting a thread, a batch, a job, a
connection or a person leaves the row as it was.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from project.providers.models import ProviderConnection
from project.teams.models import Team


class Feature(models.TextChoices):
    CHAT = "chat", "Chat"
    BATCH = "batch", "Batches"
    EMBEDDINGS = "embeddings", "Embeddings"
    FINE_TUNING = "fine_tuning", "Fine-tuning"
    EVAL = "eval", "Evaluations"


class Pricing(models.TextChoices):
    STANDARD = "standard", "Standard"
    BATCH = "batch", "Batch"
    TRAINING = "training", "Training"


class SpendEntry(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    occurred_at = models.DateTimeField(default=timezone.now)
    feature = models.CharField(max_length=20, choices=Feature.choices)
    connection_id = models.BigIntegerField(null=True, blank=True)
    connection_name = models.CharField(max_length=120, blank=True)
    person_id = models.BigIntegerField(null=True, blank=True)
    person_name = models.CharField(max_length=150, blank=True)
    assistant_id = models.BigIntegerField(null=True, blank=True)
    assistant_name = models.CharField(max_length=200, blank=True)
    version_id = models.BigIntegerField(null=True, blank=True)
    version_number = models.IntegerField(null=True, blank=True)
    # What was billed: "run", "batch", "finetune_job", "eval"; its id and a label to show.
    source_kind = models.CharField(max_length=20)
    source_id = models.BigIntegerField(null=True, blank=True)
    source_label = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200)
    input_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    trained_tokens = models.BigIntegerField(default=0, db_default=0)  # fine-tuning: tokens trained on
    calls = models.IntegerField(default=1)
    pricing = models.CharField(max_length=10, choices=Pricing.choices, default=Pricing.STANDARD)
    # USD per 1M tokens used for the cost, by kind; the cost is None when the model's price is unknown.
    prices = models.JSONField(default=dict, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    # The token counts are Switchboard's (tiktoken), not the provider's.
    estimated = models.BooleanField(default=False)
    # What makes a write idempotent: a second write of the same call is ignored.
    key = models.CharField(max_length=200, unique=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["team", "-occurred_at"], name="spend_entry_team_time"),
            models.Index(fields=["team", "source_kind", "source_id"], name="spend_entry_source"),
        ]

    def __str__(self) -> str:
        return f"{self.feature} {self.model} {self.cost_usd}"


class SpendDaily(models.Model):
    """The ledger summed per team, day and every filter of the Usage page. Kept in the
    same transaction as each ledger write, so it always equals the raw rows."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    feature = models.CharField(max_length=20)
    connection_id = models.BigIntegerField(null=True)
    person_id = models.BigIntegerField(null=True)
    assistant_id = models.BigIntegerField(null=True)
    model = models.CharField(max_length=200)
    # Latest names, for the page's labels (the ledger keeps each row's own).
    connection_name = models.CharField(max_length=120, blank=True)
    person_name = models.CharField(max_length=150, blank=True)
    assistant_name = models.CharField(max_length=200, blank=True)
    calls = models.BigIntegerField(default=0)
    estimated_calls = models.BigIntegerField(default=0)
    unpriced_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    trained_tokens = models.BigIntegerField(default=0, db_default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["team", "day", "feature", "connection_id", "person_id", "assistant_id", "model"],
            nulls_distinct=False, name="spend_daily_one_row_per_key")]
        indexes = [models.Index(fields=["team", "day"], name="spend_daily_team_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.feature} {self.model} {self.cost_usd}"


class SpendMonth(models.Model):
    """Month-to-date per team and connection: what a budget check reads (one or a few rows)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    connection_id = models.BigIntegerField(null=True)
    month = models.DateField()  # the first day of the month (UTC)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "month", "connection_id"], nulls_distinct=False,
                                               name="spend_month_one_row_per_key")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.cost_usd}"


class Budget(models.Model):
    """A monthly amount for the team (connection None) or for one connection."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="+")
    amount_usd = models.DecimalField(max_digits=12, decimal_places=2)
    thresholds = models.JSONField(default=list, blank=True)  # percentages, e.g. [50, 80, 100]
    hard_limit = models.BooleanField(default=False)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "connection"], nulls_distinct=False,
                                               name="budget_one_per_team_or_connection")]

    def __str__(self) -> str:
        return f"{self.amount_usd} a month"


class BudgetAlert(models.Model):
    """A threshold that was announced: each is announced once a month."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField()
    threshold = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["budget", "month", "threshold"], name="budget_alert_once")]

    def __str__(self) -> str:
        return f"{self.threshold}% in {self.month:%Y-%m}"


class BudgetMeter(models.Model):
    """What a hard limit is checked against, one row per team (connection None) and per
    connection: this month's spend and what running work may still cost, side by side, so
    a check and a reservation are one conditional update of the row (see budgets.py).
    The month is the one `spent_usd` counts: a row last written in an earlier month has
    spent nothing this month yet. Reservations are not per month: work let through at the
    end of a month still counts in the next until it is settled."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    connection_id = models.BigIntegerField(null=True)
    month = models.DateField()
    spent_usd = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    reserved_usd = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "connection_id"], nulls_distinct=False,
                                               name="budget_meter_one_per_scope")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.spent_usd} spent, {self.reserved_usd} reserved"


class SpendReservation(models.Model):
    """The most a piece of work that was let through may still cost: counted against hard
    limits until its ledger row settles it (or it expires, if the work never reported)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    connection_id = models.BigIntegerField(null=True)
    key = models.CharField(max_length=200, unique=True)
    amount_usd = models.DecimalField(max_digits=14, decimal_places=6)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["team", "expires_at"], name="spend_reservation_team")]

    def __str__(self) -> str:
        return f"{self.key} {self.amount_usd}"

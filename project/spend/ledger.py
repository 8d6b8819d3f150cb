"""The one way spend is recorded: `spend_record`, called by every feature at the point a
provider call's usage is known (a chat run attempt ending, a batch's output collected,
a fine-tune job finished). One transaction writes the ledger row, its daily and monthly
rollups, settles the work's budget reservation and announces budget thresholds crossed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from project.providers.model_facts import PER_MILLION, model_facts
from project.spend.budgets import budget_alerts_send, month_of, reservation_release
from project.spend.models import Pricing, SpendEntry

CENT_FRACTION = Decimal("0.000001")


@dataclass(frozen=True)
class SpendLine:
    """What one billable call cost, in the words of the feature that made it."""

    team_id: int
    feature: str
    model: str
    source_kind: str  # "run", "batch", "finetune_job", "eval"
    key: str  # unique per billed call: writing the same key twice records it once
    source_id: int | None = None
    source_label: str = ""
    connection_id: int | None = None
    connection_name: str = ""
    person_id: int | None = None
    person_name: str = ""
    assistant_id: int | None = None
    assistant_name: str = ""
    version_id: int | None = None
    version_number: int | None = None
    input_tokens: int = 0  # for training: the trained tokens
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    calls: int = 1
    pricing: str = Pricing.STANDARD
    estimated: bool = False
    occurred_at: datetime | None = None
    # The budget reservation this call settles (see project.spend.budgets.budget_reserve).
    settles: str = ""


def line_cost(line: SpendLine) -> tuple[Decimal | None, dict[str, str]]:
    """The cost at the model's prices for the line's pricing, rounded once, and the prices
    used (USD per 1M tokens). None when a price it needs is unknown."""
    facts = model_facts(line.model)
    if line.pricing == Pricing.TRAINING:
        wanted = {"training": (facts.price("training"), line.input_tokens)}
    elif line.pricing == Pricing.BATCH:
        batch_input = facts.price("batch_input")
        wanted = {"batch_input": (batch_input, line.input_tokens),
                  "batch_output": (facts.price("batch_output") if line.output_tokens else Decimal(0),
                                   line.output_tokens)}
    else:
        wanted = {"input": (facts.price("input"), line.input_tokens - line.cached_tokens),
                  "cached_input": (facts.price("cached_input") or facts.price("input"), line.cached_tokens),
                  "output": (facts.price("output"), line.output_tokens)}
    prices = {kind: str(price) for kind, (price, _) in wanted.items() if price is not None}
    if any(price is None for price, tokens in wanted.values() if tokens):
        return None, prices
    total = sum((Decimal(tokens) * (price or Decimal(0)) for price, tokens in wanted.values()), Decimal(0))
    return (total / PER_MILLION).quantize(CENT_FRACTION), prices


_DAILY_UPSERT = """
INSERT INTO spend_spenddaily AS d (team_id, day, feature, connection_id, person_id, assistant_id, model,
    connection_name, person_name, assistant_name, calls, estimated_calls, unpriced_calls,
    input_tokens, cached_tokens, output_tokens, reasoning_tokens, cost_usd)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (team_id, day, feature, connection_id, person_id, assistant_id, model) DO UPDATE SET
    connection_name = EXCLUDED.connection_name, person_name = EXCLUDED.person_name,
    assistant_name = EXCLUDED.assistant_name,
    calls = d.calls + EXCLUDED.calls, estimated_calls = d.estimated_calls + EXCLUDED.estimated_calls,
    unpriced_calls = d.unpriced_calls + EXCLUDED.unpriced_calls,
    input_tokens = d.input_tokens + EXCLUDED.input_tokens, cached_tokens = d.cached_tokens + EXCLUDED.cached_tokens,
    output_tokens = d.output_tokens + EXCLUDED.output_tokens,
    reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens, cost_usd = d.cost_usd + EXCLUDED.cost_usd
"""

_MONTH_UPSERT = """
INSERT INTO spend_spendmonth AS m (team_id, connection_id, month, cost_usd) VALUES (%(team)s, %(connection)s, %(month)s, %(cost)s)
ON CONFLICT (team_id, month, connection_id) DO UPDATE SET cost_usd = m.cost_usd + EXCLUDED.cost_usd
"""
# The budget meters (the team's row, then the connection's: the order every meter write
# takes) count the month's spend; a row last written in an earlier month starts again.
_METER_SPENT = """
INSERT INTO spend_budgetmeter AS m (team_id, connection_id, month, spent_usd, reserved_usd)
SELECT %(team)s, s.connection_id, %(month)s, %(cost)s, 0
FROM (SELECT NULL::bigint AS connection_id UNION SELECT %(connection)s::bigint) s ORDER BY s.connection_id NULLS FIRST
ON CONFLICT (team_id, connection_id) DO UPDATE SET
    spent_usd = CASE WHEN m.month = EXCLUDED.month THEN m.spent_usd + EXCLUDED.spent_usd
                     WHEN m.month < EXCLUDED.month THEN EXCLUDED.spent_usd ELSE m.spent_usd END,
    month = greatest(m.month, EXCLUDED.month)
"""


def spend_record(line: SpendLine) -> SpendEntry | None:
    """Append the line to the ledger (None when its key was recorded already) and keep the
    rollups, the reservation and the budget alerts in step, in the caller's transaction
    when there is one."""
    cost, prices = line_cost(line)
    occurred_at = line.occurred_at or timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                entry = SpendEntry.objects.create(
                    team_id=line.team_id, occurred_at=occurred_at, feature=line.feature,
                    connection_id=line.connection_id, connection_name=line.connection_name[:120],
                    person_id=line.person_id, person_name=line.person_name[:150], assistant_id=line.assistant_id,
                    assistant_name=line.assistant_name[:200], version_id=line.version_id,
                    version_number=line.version_number, source_kind=line.source_kind, source_id=line.source_id,
                    source_label=line.source_label[:200], model=line.model[:200], input_tokens=line.input_tokens,
                    cached_tokens=line.cached_tokens, output_tokens=line.output_tokens,
                    reasoning_tokens=line.reasoning_tokens, calls=line.calls, pricing=line.pricing, prices=prices,
                    cost_usd=cost, estimated=line.estimated, key=line.key[:200])
        except IntegrityError:
            return None  # recorded before (a collection or a finish run again)
        day = occurred_at.astimezone(UTC).date()
        with connection.cursor() as cursor:
            cursor.execute(_DAILY_UPSERT, [
                line.team_id, day, line.feature, line.connection_id, line.person_id, line.assistant_id,
                entry.model, entry.connection_name, entry.person_name, entry.assistant_name, line.calls,
                line.calls if line.estimated else 0, line.calls if cost is None else 0, line.input_tokens,
                line.cached_tokens, line.output_tokens, line.reasoning_tokens, cost or Decimal(0)])
            month = {"team": line.team_id, "connection": line.connection_id, "month": month_of(day),
                     "cost": cost or Decimal(0)}
            cursor.execute(_MONTH_UPSERT, month)
            if cost:
                cursor.execute(_METER_SPENT, month)
        if line.settles:
            reservation_release(key=line.settles)
        if cost:
            budget_alerts_send(team_id=line.team_id, connection_id=line.connection_id, month=month_of(day))
    return entry

"""The one way spend is recorded: `spend_record`, called by every feature at the point a
provider call's usage is known (a chat run attempt ending, a batch's output collected,
a fine-tune job finished). One transaction writes the ledger row, its daily and monthly
rollups, settles the work's budget reservation and announces budget thresholds crossed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from project.joined_rows import insert_statement, inserted, pipelined
from project.providers.connection_facts import connection_price_facts
from project.providers.model_facts import PER_MILLION, ModelFacts
from project.spend.budgets import (
    alerting_budgets_statement,
    budget_alerts_send,
    month_of,
    reservation_release,
    reservation_release_statement,
)
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
    input_tokens: int = 0
    cached_tokens: int = 0  # of the input tokens
    trained_tokens: int = 0  # fine-tuning: tokens trained on (epochs x the dataset's)
    output_tokens: int = 0
    reasoning_tokens: int = 0
    calls: int = 1
    pricing: str = Pricing.STANDARD
    estimated: bool = False
    occurred_at: datetime | None = None
    # The budget reservation this call settles (see project.spend.budgets.budget_reserve).
    settles: str = ""


# The token counts a price applies to: "uncached" is the input less the cached input.
_TOKENS = {"uncached": lambda line: line.input_tokens - line.cached_tokens, "cached": lambda line: line.cached_tokens,
           "input": lambda line: line.input_tokens, "output": lambda line: line.output_tokens,
           "trained": lambda line: line.trained_tokens}


def _rates(model: str, pricing: str, connection_id: int | None,
           facts: ModelFacts | None = None) -> list[tuple[str, str, Decimal | None]]:
    """(price name, tokens it applies to, USD per 1M tokens or None when unknown) of a
    line's pricing, at the prices set for the model on its connection (a self-hosted model
    set free costs $0, as its run says): the one rule the single and bulk writes price by.
    `facts`: the model's facts on the connection when the caller has read them (a run has,
    when it was claimed); read here otherwise."""
    facts = facts if facts is not None else connection_price_facts(connection_id, model)
    if pricing == Pricing.TRAINING:
        return [("training", "trained", facts.price("training"))]
    if pricing == Pricing.BATCH:
        return [("batch_input", "input", facts.price("batch_input")),
                ("batch_output", "output", facts.price("batch_output"))]
    return [("input", "uncached", facts.price("input")),
            ("cached_input", "cached", facts.price("cached_input") or facts.price("input")),
            ("output", "output", facts.price("output"))]


def _prices_used(rates: list[tuple[str, str, Decimal | None]]) -> dict[str, str]:
    """What a ledger row keeps of the prices it was priced at (USD per 1M tokens)."""
    return {name: str(price) for name, _, price in rates if price is not None}


def line_cost(line: SpendLine, *, facts: ModelFacts | None = None) -> tuple[Decimal | None, dict[str, str]]:
    """The cost at the model's prices for the line's pricing, rounded once (half up, as
    PostgreSQL's round() does for the bulk write), and the prices used (USD per 1M
    tokens). None when a price it needs is unknown. `facts`: as for _rates."""
    rates = _rates(line.model, line.pricing, line.connection_id, facts)
    prices = _prices_used(rates)
    wanted = [(price, _TOKENS[tokens](line)) for _, tokens, price in rates]
    if any(price is None for price, count in wanted if count):
        return None, prices
    total = sum((Decimal(count) * (price or Decimal(0)) for price, count in wanted), Decimal(0))
    return (total / PER_MILLION).quantize(CENT_FRACTION, rounding=ROUND_HALF_UP), prices


_DAILY_UPSERT = """
INSERT INTO spend_spenddaily AS d (team_id, day, feature, connection_id, person_id, assistant_id, model,
    connection_name, person_name, assistant_name, calls, estimated_calls, unpriced_calls,
    input_tokens, cached_tokens, output_tokens, reasoning_tokens, trained_tokens, cost_usd)
VALUES (%(team)s, %(day)s, %(feature)s, %(connection)s, %(person)s, %(assistant)s, %(model)s, %(connection_name)s,
    %(person_name)s, %(assistant_name)s, %(calls)s, %(estimated_calls)s, %(unpriced_calls)s, %(input)s, %(cached)s,
    %(output)s, %(reasoning)s, %(trained)s, %(cost)s)
ON CONFLICT (team_id, day, feature, connection_id, person_id, assistant_id, model) DO UPDATE SET
    connection_name = EXCLUDED.connection_name, person_name = EXCLUDED.person_name,
    assistant_name = EXCLUDED.assistant_name,
    calls = d.calls + EXCLUDED.calls, estimated_calls = d.estimated_calls + EXCLUDED.estimated_calls,
    unpriced_calls = d.unpriced_calls + EXCLUDED.unpriced_calls,
    input_tokens = d.input_tokens + EXCLUDED.input_tokens, cached_tokens = d.cached_tokens + EXCLUDED.cached_tokens,
    output_tokens = d.output_tokens + EXCLUDED.output_tokens,
    reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens,
    trained_tokens = d.trained_tokens + EXCLUDED.trained_tokens, cost_usd = d.cost_usd + EXCLUDED.cost_usd
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


def _entry_values(line: SpendLine) -> dict[str, Any]:
    """The ledger columns every call of the line shares (names cut to their columns)."""
    return {"team_id": line.team_id, "feature": line.feature, "connection_id": line.connection_id,
            "connection_name": line.connection_name[:120], "person_id": line.person_id,
            "person_name": line.person_name[:150], "assistant_id": line.assistant_id,
            "assistant_name": line.assistant_name[:200], "version_id": line.version_id,
            "version_number": line.version_number, "source_kind": line.source_kind, "source_id": line.source_id,
            "source_label": line.source_label[:200], "model": line.model[:200], "pricing": line.pricing,
            "estimated": line.estimated}


def _rollups(line: SpendLine, *, day: date, calls: int, unpriced: int, tokens: dict[str, int], cost: Decimal) -> None:
    """Add recorded calls to the daily and monthly rollups and the budget meters, settle
    the work's reservation and announce thresholds crossed."""
    shared = _entry_values(line)
    month = {"team": line.team_id, "connection": line.connection_id, "month": month_of(day), "cost": cost}
    # The rows every record of the team and connection shares come first, the day's row
    # of the model last: a transaction recording several models (an eval flush) and one
    # recording any of them then meet at the shared rows, and one waits for the other,
    # instead of each holding a day row the other needs next (a deadlock PostgreSQL ends
    # by aborting one of them). Pipelined, they keep that order in one round trip, each
    # a prepared statement (the ORM's cursor binds on the client and plans every time).
    statements: list[tuple[str, Any]] = [(_MONTH_UPSERT, month)]
    if cost:
        statements.append((_METER_SPENT, month))
    statements.append((_DAILY_UPSERT, {
        **month, "day": day, "feature": line.feature, "person": line.person_id, "assistant": line.assistant_id,
        "model": shared["model"], "connection_name": shared["connection_name"],
        "person_name": shared["person_name"], "assistant_name": shared["assistant_name"], "calls": calls,
        "estimated_calls": calls if line.estimated else 0, "unpriced_calls": unpriced, **tokens}))
    if line.settles:
        statements.append(reservation_release_statement(key=line.settles))
    if cost:
        # Whether any budget could announce a threshold, asked in the same round trip: most
        # teams set none, and then the alerts' own queries are not needed.
        statements.append(alerting_budgets_statement(team_id=line.team_id, connection_id=line.connection_id))
    found = pipelined(statements)
    if cost and found[-1] is not None and found[-1][0]:
        budget_alerts_send(team_id=line.team_id, connection_id=line.connection_id, month=month_of(day))


def spend_record(line: SpendLine, *, facts: ModelFacts | None = None) -> SpendEntry | None:
    """Append the line to the ledger (None when its key was recorded already) and keep the
    rollups, the reservation and the budget alerts in step, in the caller's transaction
    when there is one. `facts`: the model's facts on the line's connection when the caller
    has read them (connection_price_facts's prices), saving their query."""
    cost, prices = line_cost(line, facts=facts)
    occurred_at = line.occurred_at or timezone.now()
    entry = SpendEntry(**_entry_values(line), occurred_at=occurred_at, input_tokens=line.input_tokens,
                       cached_tokens=line.cached_tokens, output_tokens=line.output_tokens,
                       reasoning_tokens=line.reasoning_tokens, trained_tokens=line.trained_tokens, calls=line.calls,
                       prices=prices, cost_usd=cost, key=line.key[:200])
    # No savepoint inside the caller's transaction: a key recorded before (a collection or a
    # finish run again) is skipped by ON CONFLICT, not caught as an error to roll back to.
    with transaction.atomic(savepoint=False):
        (added,) = pipelined([insert_statement(entry, on_conflict="ON CONFLICT (key) DO NOTHING")])
        if added is None:
            return None
        inserted(entry, added[0])
        _rollups(line, day=occurred_at.astimezone(UTC).date(), calls=line.calls, unpriced=line.calls if cost is None else 0,
                 tokens={"input": line.input_tokens, "cached": line.cached_tokens, "output": line.output_tokens,
                         "reasoning": line.reasoning_tokens, "trained": line.trained_tokens}, cost=cost or Decimal(0))
    return entry


@dataclass(frozen=True)
class Call:
    """One billable call of many that share a SpendLine (a batch's output lines)."""

    key: str  # added to the line's key: unique per call
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0  # part of output_tokens, as the provider counts them


_CALL_COLUMNS = ("key", "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens")
_INCOMING = "spend_calls_incoming"
# Each call priced by the database as line_cost prices one (the same rates, rounded half
# up once), appended unless its key is recorded, and the appended ones summed for the rollups.
_APPEND_CALLS = """
WITH added AS (
    INSERT INTO spend_spendentry (team_id, occurred_at, feature, connection_id, connection_name, person_id,
        person_name, assistant_id, assistant_name, version_id, version_number, source_kind, source_id, source_label,
        model, input_tokens, cached_tokens, output_tokens, reasoning_tokens, trained_tokens, calls, pricing, prices,
        cost_usd, estimated, key)
    SELECT %(team_id)s, %(occurred_at)s, %(feature)s, %(connection_id)s, %(connection_name)s, %(person_id)s,
        %(person_name)s, %(assistant_id)s, %(assistant_name)s, %(version_id)s, %(version_number)s, %(source_kind)s,
        %(source_id)s, %(source_label)s, %(model)s, c.input_tokens, c.cached_tokens, c.output_tokens, c.reasoning_tokens, 0, 1,
        %(pricing)s, %(prices)s::jsonb, {cost}, %(estimated)s, left(%(key)s || c.key, 200)
    FROM spend_calls_incoming c
    ON CONFLICT (key) DO NOTHING
    RETURNING input_tokens, cached_tokens, output_tokens, reasoning_tokens, cost_usd)
SELECT count(*), count(*) FILTER (WHERE cost_usd IS NULL), coalesce(sum(input_tokens), 0),
       coalesce(sum(cached_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(reasoning_tokens), 0),
       coalesce(sum(cost_usd), 0) FROM added
"""
_CALL_TOKENS = {"uncached": "(c.input_tokens - c.cached_tokens)", "cached": "c.cached_tokens",
                "input": "c.input_tokens", "output": "c.output_tokens", "trained": "0"}


def _cost_sql(rates: list[tuple[str, str, Decimal | None]]) -> str:
    """line_cost as SQL over a call's columns, at the line's `rates`: NULL where a price it
    needs is unknown."""
    terms, unknown = [], []
    for _, tokens, price in rates:
        if price is None:
            unknown.append(f"{_CALL_TOKENS[tokens]} <> 0")
        else:
            terms.append(f"{_CALL_TOKENS[tokens]} * {price:f}")
    total = f"round(({' + '.join(terms) or '0'}) / 1000000.0, 6)"
    return f"CASE WHEN {' OR '.join(unknown)} THEN NULL ELSE {total} END" if unknown else total


def spend_record_calls(line: SpendLine, calls: Iterable[Call]) -> int:
    """Append one ledger row per call (its key is the line's key plus the call's), all
    sharing the line's team, model, person, source and pricing, in one transaction with
    their rollups: streamed in with COPY and priced by the database, so a batch's 50,000
    output lines cost a few statements. Calls recorded before are skipped. Returns how
    many were appended."""
    occurred_at = line.occurred_at or timezone.now()
    # The prices looked up once (a query for the connection's own) for both uses.
    rates = _rates(line.model, line.pricing, line.connection_id)
    prices = _prices_used(rates)
    sql = _APPEND_CALLS.replace("{cost}", _cost_sql(rates))
    # Read before the COPY: calls may come from a query on the same connection, which
    # cannot run while a COPY holds it (about 50 bytes a call).
    rows = [(call.key, call.input_tokens, call.cached_tokens, call.output_tokens, call.reasoning_tokens)
            for call in calls]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {_INCOMING} (key text, input_tokens bigint, cached_tokens bigint, "
                       "output_tokens bigint, reasoning_tokens bigint) ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY {_INCOMING} ({', '.join(_CALL_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(sql, {**_entry_values(line), "occurred_at": occurred_at, "prices": json.dumps(prices),
                             "key": line.key})
        added, unpriced, input_tokens, cached_tokens, output_tokens, reasoning_tokens, cost = cursor.fetchone()
        cursor.execute(f"DROP TABLE {_INCOMING}")
        if added:
            _rollups(line, day=occurred_at.astimezone(UTC).date(), calls=added, unpriced=unpriced,
                     tokens={"input": input_tokens, "cached": cached_tokens, "output": output_tokens,
                             "reasoning": reasoning_tokens,
                             "trained": 0}, cost=cost)
        elif line.settles:
            reservation_release(key=line.settles)
    return int(added)


def spend_key_recorded(*, key: str) -> bool:
    return SpendEntry.objects.filter(key=key[:200]).exists()

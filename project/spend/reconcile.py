"""Reconciliation: the ledger's cost per day and model beside the provider's own figures,
read from the organization endpoints (GET /v1/organization/costs grouped by line item,
GET /v1/organization/usage/completions grouped by model) with the connection's admin key.

A cost line item is "<model>, <kind>" ("gpt-4o-mini, input"); its model is the part before
the first comma. Each ledger row is rounded to a millionth of a dollar, so figures within a
millionth per call are counted as matching.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx2
from django.db.models import Sum

from project.providers.client import ClientOptions, ProviderAuthError, ProviderError, provider_call
from project.providers.models import ProviderConnection, ProviderKind
from project.spend.models import SpendDaily
from project.teams.models import Team

MILLIONTH = Decimal("0.000001")
PAGE_LIMITS = {"/organization/costs": 180, "/organization/usage/completions": 31}
# Pages read at most per endpoint: a year of daily buckets is three pages of costs.
MAX_PAGES = 20
_OPTIONS = ClientOptions(timeout=30.0, max_retries=1)


@dataclass
class Figures:
    cost: Decimal | None = None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ReconcileRow:
    day: date
    model: str
    ledger: Figures
    provider: Figures

    @property
    def difference(self) -> Decimal:
        """The provider's cost less the ledger's: positive when the ledger is missing spend."""
        return (self.provider.cost or Decimal(0)) - (self.ledger.cost or Decimal(0))

    @property
    def matches(self) -> bool:
        calls = max(self.ledger.calls, self.provider.calls, 1)
        return abs(self.difference) <= MILLIONTH * calls


@dataclass
class Reconciliation:
    rows: list[ReconcileRow] = field(default_factory=list)
    error: str = ""  # the provider's failure, in words; the ledger's side is still shown

    @property
    def ledger_total(self) -> Decimal:
        return sum((r.ledger.cost or Decimal(0) for r in self.rows), Decimal(0))

    @property
    def provider_total(self) -> Decimal:
        return sum((r.provider.cost or Decimal(0) for r in self.rows), Decimal(0))

    @property
    def mismatches(self) -> int:
        return sum(1 for r in self.rows if not r.matches)


def reconcilable_connections(*, team: Team) -> list[ProviderConnection]:
    return [c for c in ProviderConnection.objects.filter(team=team, kind__in=[ProviderKind.OPENAI, ProviderKind.SANDBOX])
            .order_by("name") if c.can_reconcile]


def _ledger(*, team: Team, connection: ProviderConnection, start: date, end: date) -> dict[tuple[date, str], Figures]:
    rows = (SpendDaily.objects.filter(team=team, connection_id=connection.pk, day__gte=start, day__lte=end)
            .values("day", "model").annotate(cost=Sum("cost_usd"), calls=Sum("calls"), input=Sum("input_tokens"),
                                             output=Sum("output_tokens")).order_by())
    return {(r["day"], r["model"]): Figures(r["cost"] or Decimal(0), int(r["calls"] or 0), int(r["input"] or 0),
                                            int(r["output"] or 0)) for r in rows}


def _buckets(connection: ProviderConnection, path: str, start: date, end: date, group_by: str) -> Iterator[dict[str, Any]]:
    """Every bucket of an organization endpoint over [start, end], page by page."""
    params: dict[str, Any] = {
        "start_time": int(datetime.combine(start, time.min, tzinfo=UTC).timestamp()),
        "end_time": int(datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC).timestamp()),
        "bucket_width": "1d", "group_by": group_by, "limit": PAGE_LIMITS[path]}
    admin_key = connection.get_admin_key() or None
    for _ in range(MAX_PAGES):
        query = dict(params)
        response = provider_call(
            connection, lambda client: client.get(path, cast_to=httpx2.Response, options={"params": query}),  # noqa: B023
            _OPTIONS, api_key=admin_key)
        try:
            page = response.json()
        except ValueError:
            page = None
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise ProviderError("The provider's answer was not a page of usage buckets.")
        yield from (bucket for bucket in page["data"] if isinstance(bucket, dict))
        if not page.get("has_more") or not page.get("next_page"):
            return
        params["page"] = str(page["next_page"])
    raise ProviderError("The provider sent more pages than expected; choose a shorter range.")


def _bucket_day(bucket: dict[str, Any]) -> date:
    return datetime.fromtimestamp(int(bucket.get("start_time") or 0), tz=UTC).date()


def provider_figures(*, connection: ProviderConnection, start: date, end: date) -> dict[tuple[date, str], Figures]:
    figures: dict[tuple[date, str], Figures] = {}
    for bucket in _buckets(connection, "/organization/costs", start, end, "line_item"):
        day = _bucket_day(bucket)
        for result in bucket.get("results") or []:
            line_item = str(result.get("line_item") or "")
            model = line_item.split(",", 1)[0].strip() if "," in line_item else line_item or "(unattributed)"
            try:
                amount = Decimal(str((result.get("amount") or {}).get("value") or 0))
            except InvalidOperation:
                raise ProviderError("The provider sent a cost that is not a number.") from None
            entry = figures.setdefault((day, model), Figures())
            entry.cost = (entry.cost or Decimal(0)) + amount
    for bucket in _buckets(connection, "/organization/usage/completions", start, end, "model"):
        day = _bucket_day(bucket)
        for result in bucket.get("results") or []:
            entry = figures.setdefault((day, str(result.get("model") or "(unattributed)")), Figures())
            entry.calls += int(result.get("num_model_requests") or 0)
            entry.input_tokens += int(result.get("input_tokens") or 0)
            entry.output_tokens += int(result.get("output_tokens") or 0)
    for entry in figures.values():
        if entry.cost is not None:
            entry.cost = entry.cost.quantize(MILLIONTH)
    return figures


def reconcile(*, team: Team, connection: ProviderConnection, start: date, end: date) -> Reconciliation:
    """Per day and model, the ledger beside the provider. `connection` must be the team's."""
    ledger = _ledger(team=team, connection=connection, start=start, end=end)
    result = Reconciliation()
    try:
        provider = provider_figures(connection=connection, start=start, end=end)
    except ProviderAuthError as error:
        provider = {}
        result.error = f"{error.message} Check the connection's admin key (an organization admin key, sk-admin-…)."
    except ProviderError as error:
        provider = {}
        result.error = error.message
    for day, model in sorted(ledger.keys() | provider.keys()):
        result.rows.append(ReconcileRow(day, model, ledger.get((day, model), Figures()),
                                        provider.get((day, model), Figures())))
    return result

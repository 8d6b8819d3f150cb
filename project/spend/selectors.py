"""Reads for the Usage page, all from the daily rollups (at most a month of daily rows per
figure), and the filtered ledger for its CSV export. Every read takes the team."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Max, QuerySet, Sum

from project.spend.charts import BarChart, RankRow, ranked, stacked_bars
from project.spend.models import Feature, SpendDaily, SpendEntry
from project.teams.models import Team

TOP_ROWS = 10
MAX_DAYS = 366


@dataclass(frozen=True)
class UsageFilter:
    start: date
    end: date  # inclusive
    connection_id: int | None = None
    person_id: int | None = None
    assistant_id: int | None = None
    model: str = ""
    feature: str = ""
    stack_by: str = "feature"  # or "model"

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def only_person(self, person_id: int) -> UsageFilter:
        return replace(self, person_id=person_id)


def _scoped(rows: QuerySet[Any], f: UsageFilter) -> QuerySet[Any]:
    if f.connection_id is not None:
        rows = rows.filter(connection_id=f.connection_id)
    if f.person_id is not None:
        rows = rows.filter(person_id=f.person_id)
    if f.assistant_id is not None:
        rows = rows.filter(assistant_id=f.assistant_id)
    if f.model:
        rows = rows.filter(model=f.model)
    if f.feature:
        rows = rows.filter(feature=f.feature)
    return rows


def team_daily(*, team: Team, f: UsageFilter) -> QuerySet[SpendDaily]:
    return _scoped(SpendDaily.objects.filter(team=team, day__gte=f.start, day__lte=f.end), f)


@dataclass(frozen=True)
class UsageReport:
    totals: dict[str, Any]
    cost_chart: BarChart
    tokens_chart: BarChart
    cost_table: list[dict[str, Any]]  # per day
    by_feature: list[RankRow]
    top_assistants: list[RankRow]
    top_people: list[RankRow]
    top_models: list[RankRow]


_SUMS = {"cost": Sum("cost_usd"), "calls": Sum("calls"), "input": Sum("input_tokens"),
         "cached": Sum("cached_tokens"), "output": Sum("output_tokens"), "reasoning": Sum("reasoning_tokens"),
         "estimated": Sum("estimated_calls"), "unpriced": Sum("unpriced_calls")}


def _top(rows: QuerySet[SpendDaily], key: str, label: str, empty: str) -> list[RankRow]:
    grouped = (rows.values(key).annotate(name=Max(label), cost=Sum("cost_usd"), n=Sum("calls"),
                                         tokens=Sum("input_tokens") + Sum("output_tokens"))
               .order_by("-cost", key)[:TOP_ROWS])
    return ranked([(g["name"] or empty, g["cost"] or Decimal(0), int(g["n"] or 0), int(g["tokens"] or 0))
                   for g in grouped])


def usage_report(*, team: Team, f: UsageFilter) -> UsageReport:
    rows = team_daily(team=team, f=f)
    totals = {k: v or 0 for k, v in rows.aggregate(**_SUMS).items()}
    stack_field = "model" if f.stack_by == "model" else "feature"
    features = dict(Feature.choices)
    cost_series: dict[str, dict[date, Decimal]] = {}
    for row in rows.values("day", stack_field).annotate(cost=Sum("cost_usd")):
        name = row[stack_field] if stack_field == "model" else features.get(row["feature"], row["feature"])
        cost_series.setdefault(name, {})[row["day"]] = row["cost"] or Decimal(0)
    per_day: dict[date, dict[str, Any]] = {r["day"]: dict(r) for r in rows.values("day").annotate(**_SUMS)}
    tokens_series = {"input": {d: int(r["input"] or 0) for d, r in per_day.items()},
                     "output": {d: int(r["output"] or 0) for d, r in per_day.items()}}
    cost_table = [{"day": d, "cost": per_day[d]["cost"], "calls": per_day[d]["calls"], "input": per_day[d]["input"],
                   "output": per_day[d]["output"]} for d in sorted(per_day)]
    by_feature = ranked([(features.get(g["feature"], g["feature"]), g["cost"] or Decimal(0), int(g["n"] or 0),
                          int(g["tokens"] or 0))
                         for g in rows.values("feature").annotate(cost=Sum("cost_usd"), n=Sum("calls"),
                                                                  tokens=Sum("input_tokens") + Sum("output_tokens"))
                         .order_by("-cost")])
    return UsageReport(
        totals=totals,
        cost_chart=stacked_bars(f"Cost per day by {stack_field}", f.days, cost_series, money=True),
        tokens_chart=stacked_bars("Tokens per day", f.days, tokens_series, money=False),
        cost_table=cost_table, by_feature=by_feature,
        top_assistants=_top(rows.exclude(assistant_id=None), "assistant_id", "assistant_name", "(deleted)"),
        top_people=_top(rows, "person_id", "person_name", "(no one)"),
        top_models=_top(rows, "model", "model", ""),
    )


def usage_choices(*, team: Team, f: UsageFilter) -> dict[str, list[tuple[str, str]]]:
    """What the filters offer: whatever spent in the range (so a deleted assistant or
    connection can still be chosen), by its latest name."""
    rows = SpendDaily.objects.filter(team=team, day__gte=f.start, day__lte=f.end)
    if f.person_id is not None:
        rows = rows.filter(person_id=f.person_id)

    def pairs(key: str, label: str) -> list[tuple[str, str]]:
        found = rows.exclude(**{key: None}).values(key).annotate(name=Max(label)).order_by("name")
        return [(str(r[key]), r["name"] or str(r[key])) for r in found]

    return {"connections": pairs("connection_id", "connection_name"), "people": pairs("person_id", "person_name"),
            "assistants": pairs("assistant_id", "assistant_name"),
            "models": [(m, m) for m in rows.values_list("model", flat=True).distinct().order_by("model")],
            "features": list(Feature.choices)}


def ledger_rows(*, team: Team, f: UsageFilter) -> Iterator[SpendEntry]:
    """The ledger's rows the filter selects, oldest first, for the CSV export (streamed)."""
    start = datetime.combine(f.start, time.min, tzinfo=UTC)
    end = datetime.combine(f.end + timedelta(days=1), time.min, tzinfo=UTC)
    rows = SpendEntry.objects.filter(team=team, occurred_at__gte=start, occurred_at__lt=end)
    return _scoped(rows, f).order_by("occurred_at", "pk").iterator(chunk_size=2000)


def source_cost(*, team: Team, source_kind: str, source_id: int) -> Decimal | None:
    """What the ledger holds for one run, batch or job (its own page shows it)."""
    total: Decimal | None = SpendEntry.objects.filter(team=team, source_kind=source_kind, source_id=source_id).aggregate(
        total=Sum("cost_usd"))["total"]
    return total

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
    groups: list[dict[str, Any]]  # the range summed by feature, model, person, assistant and connection


_SUMS = {"cost": Sum("cost_usd"), "calls": Sum("calls"), "input": Sum("input_tokens"),
         "cached": Sum("cached_tokens"), "output": Sum("output_tokens"), "reasoning": Sum("reasoning_tokens"),
         "estimated": Sum("estimated_calls"), "unpriced": Sum("unpriced_calls")}
# Every figure but the per-day ones comes from one grouping of the range by these, summed
# again in Python: a month holds a few thousand such groups, far fewer than daily rows.
# Numbers first: PostgreSQL sorts the month's rows by these to group them, and comparing
# numbers is cheaper than comparing text under a collation.
_DIMS = ("person_id", "assistant_id", "connection_id", "feature", "model")
_NAMES = {"person_name": Max("person_name"), "assistant_name": Max("assistant_name"),
          "connection_name": Max("connection_name")}


def _by_dims(rows: QuerySet[SpendDaily]) -> list[dict[str, Any]]:
    return list(rows.values(*_DIMS).annotate(**_SUMS, **_NAMES).order_by())


def _ranked(groups: list[dict[str, Any]], ranks: dict[str, tuple[str, str, dict[str, str]]]
            ) -> dict[str, list[RankRow]]:
    """The groups summed again per key, in one pass: {key: rows, largest first}. `ranks`
    names each key's label column, its word for an empty label and words for labels."""
    totals: dict[str, dict[Any, list[Any]]] = {key: {} for key in ranks}
    for group in groups:
        cost, calls = group["cost"] or Decimal(0), int(group["calls"] or 0)
        tokens = int(group["input"] or 0) + int(group["output"] or 0)
        for key, (label, _, _) in ranks.items():
            value = group[key]
            if value is None and key == "assistant_id":
                continue  # work of no assistant (batches, training) is not an assistant's
            entry = totals[key].get(value)
            if entry is None:
                totals[key][value] = [group[label], cost, calls, tokens]
            else:
                entry[1] += cost
                entry[2] += calls
                entry[3] += tokens
    result = {}
    for key, (_, empty, names) in ranks.items():
        ordered = sorted(totals[key].values(), key=lambda entry: (-entry[1], str(entry[0])))
        result[key] = ranked([(names.get(name, name) or empty, cost, calls, tokens)
                              for name, cost, calls, tokens in ordered])
    return result


def usage_report(*, team: Team, f: UsageFilter) -> UsageReport:
    rows = team_daily(team=team, f=f)
    groups = _by_dims(rows)
    totals = {key: sum((g[key] or 0 for g in groups), Decimal(0) if key == "cost" else 0) for key in _SUMS}
    stack_field = "model" if f.stack_by == "model" else "feature"
    features = dict(Feature.choices)
    cost_series: dict[str, dict[date, Decimal]] = {}
    per_day: dict[date, dict[str, Any]] = {}
    for row in rows.values("day", stack_field).annotate(cost=Sum("cost_usd"), calls=Sum("calls"),
                                                        input=Sum("input_tokens"), output=Sum("output_tokens")
                                                        ).order_by():
        name = row[stack_field] if stack_field == "model" else features.get(row["feature"], row["feature"])
        cost_series.setdefault(name, {})[row["day"]] = row["cost"] or Decimal(0)
        day = per_day.setdefault(row["day"], {"day": row["day"], "cost": Decimal(0), "calls": 0, "input": 0,
                                              "output": 0})
        for key in ("cost", "calls", "input", "output"):
            day[key] += row[key] or 0
    ranks = _ranked(groups, {"feature": ("feature", "", features), "assistant_id": ("assistant_name", "(deleted)", {}),
                             "person_id": ("person_name", "(no one)", {}), "model": ("model", "", {})})
    tokens_series = {"input": {d: int(r["input"]) for d, r in per_day.items()},
                     "output": {d: int(r["output"]) for d, r in per_day.items()}}
    return UsageReport(
        totals=totals,
        cost_chart=stacked_bars(f"Cost per day by {stack_field}", f.days, cost_series, money=True),
        tokens_chart=stacked_bars("Tokens per day", f.days, tokens_series, money=False),
        cost_table=[per_day[d] for d in sorted(per_day)],
        by_feature=ranks["feature"],
        top_assistants=ranks["assistant_id"][:TOP_ROWS],
        top_people=ranks["person_id"][:TOP_ROWS],
        top_models=ranks["model"][:TOP_ROWS],
        groups=groups,
    )


def usage_choices(*, team: Team, f: UsageFilter, report: UsageReport | None = None) -> dict[str, list[tuple[str, str]]]:
    """What the filters offer: whatever spent in the range (so a deleted assistant or
    connection can still be chosen), by its latest name. Read from the report's groups
    when it was filtered by no more than the range and the person."""
    if report is not None and f == UsageFilter(start=f.start, end=f.end, person_id=f.person_id, stack_by=f.stack_by):
        groups = report.groups
    else:
        rows = SpendDaily.objects.filter(team=team, day__gte=f.start, day__lte=f.end)
        if f.person_id is not None:
            rows = rows.filter(person_id=f.person_id)
        groups = [dict(g) for g in rows.values("connection_id", "person_id", "assistant_id", "model")
                  .annotate(**_NAMES).order_by()]

    def pairs(key: str, label: str) -> list[tuple[str, str]]:
        found = {g[key]: g[label] or str(g[key]) for g in groups if g[key] is not None}
        return sorted(((str(k), name) for k, name in found.items()), key=lambda pair: pair[1].casefold())

    return {"connections": pairs("connection_id", "connection_name"), "people": pairs("person_id", "person_name"),
            "assistants": pairs("assistant_id", "assistant_name"),
            "models": [(m, m) for m in sorted({g["model"] for g in groups})],
            "features": list(Feature.choices)}


def ledger_rows(*, team: Team, f: UsageFilter) -> Iterator[SpendEntry]:
    """The ledger's rows the filter selects, oldest first, for the CSV export (streamed)."""
    start = datetime.combine(f.start, time.min, tzinfo=UTC)
    end = datetime.combine(f.end + timedelta(days=1), time.min, tzinfo=UTC)
    rows = SpendEntry.objects.filter(team=team, occurred_at__gte=start, occurred_at__lt=end)
    return _scoped(rows, f).order_by("occurred_at", "pk").iterator(chunk_size=2000)


def source_cost(*, team: Team, source_kind: str, source_id: int) -> Decimal | None:
    """What the ledger holds for one run, batch or job (its own page shows it)."""
    return sources_cost(team_id=team.pk, source_kind=source_kind, source_ids=[source_id]).get(source_id)


def sources_cost(*, team_id: int, source_kind: str, source_ids: list[int]) -> dict[int, Decimal | None]:
    """What the ledger holds for each of a page's runs (or batches, jobs), in one query:
    ids with no row are absent; a source whose rows have no price is None."""
    if not source_ids:
        return {}
    rows = (SpendEntry.objects.filter(team_id=team_id, source_kind=source_kind, source_id__in=source_ids)
            .values("source_id").annotate(total=Sum("cost_usd")).order_by())
    return {row["source_id"]: row["total"] for row in rows if row["source_id"] is not None}

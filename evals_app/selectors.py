"""Reads, always scoped to a team (another team's id is a 404): sets, versions, runs, and
what a run page shows (per-target figures, the side-by-side case table)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.urls import reverse

from evals_app.models import EvalResult, EvalRun, EvalTarget, ResultStatus, RunStatus, TestCase, TestSet, TestSetVersion
from project.teams.models import Team
from project.version_results import VersionResult


def team_test_sets(*, team: Team) -> QuerySet[TestSet]:
    return TestSet.objects.filter(team=team).select_related("current_version", "assistant")


def team_test_set_get(*, team: Team, set_id: int) -> TestSet:
    return get_object_or_404(TestSet.objects.select_related("current_version", "assistant"), team=team, pk=set_id)


def team_set_version_get(*, team: Team, version_id: int) -> TestSetVersion:
    return get_object_or_404(TestSetVersion.objects.select_related("test_set"), test_set__team=team, pk=version_id)


def team_runs(*, team: Team) -> QuerySet[EvalRun]:
    return EvalRun.objects.filter(team=team).select_related("set_version__test_set", "created_by")


def team_run_get(*, team: Team, run_id: int) -> EvalRun:
    return get_object_or_404(EvalRun.objects.select_related("set_version__test_set", "connection", "migration_assistant",
                                                            "rerun_of"), team=team, pk=run_id)


def team_target_get(*, team: Team, target_id: int) -> EvalTarget:
    return get_object_or_404(EvalTarget.objects.select_related("run", "version__assistant"), run__team=team, pk=target_id)


def set_runs(*, test_set: TestSet) -> QuerySet[EvalRun]:
    return EvalRun.objects.filter(set_version__test_set=test_set).select_related("set_version").order_by("-id")


def version_cases(*, version: TestSetVersion) -> QuerySet[TestCase]:
    return version.cases.order_by("position")


# -- a run's figures --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetFigures:
    target: EvalTarget
    total: int
    finished: int
    passed: int
    errors: int
    mean_score: float | None
    cost: Decimal | None
    input_tokens: int
    output_tokens: int
    judge_tokens: int
    p50_ms: int | None
    p95_ms: int | None

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.finished if self.finished else None


def _percentile(values: list[int], share: float) -> int | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return int(statistics.quantiles(values, n=100, method="inclusive")[int(share * 100) - 1])


def run_figures(*, run: EvalRun) -> list[TargetFigures]:
    targets = list(run.targets.select_related("version__assistant", "switched_version"))
    totals = {row["target"]: row for row in run.results.values("target").annotate(
        total=Count("id"), finished=Count("id", filter=~Q(status=ResultStatus.PENDING)),
        passed=Count("id", filter=Q(passed=True)), errors=Count("id", filter=Q(status=ResultStatus.ERROR)),
        cost=Sum("cost_usd"), input=Sum("input_tokens"), output=Sum("output_tokens"), judge=Sum("judge_tokens"),
        costless=Count("id", filter=Q(status=ResultStatus.DONE, cost_usd__isnull=True)))}
    latencies: dict[int, list[int]] = {t.pk: [] for t in targets}
    scores: dict[int, list[float]] = {t.pk: [] for t in targets}
    for target_id, latency, score in run.results.exclude(status=ResultStatus.PENDING).values_list(
            "target", "latency_ms", "score"):
        if latency is not None:
            latencies[target_id].append(latency)
        if score is not None:
            scores[target_id].append(score)
    figures = []
    for target in targets:
        row: dict[str, Any] = dict(totals.get(target.pk) or {})
        lat = sorted(latencies[target.pk])
        figures.append(TargetFigures(
            target=target, total=row.get("total", 0), finished=row.get("finished", 0), passed=row.get("passed", 0),
            errors=row.get("errors", 0), mean_score=statistics.fmean(scores[target.pk]) if scores[target.pk] else None,
            cost=None if row.get("costless") else (row.get("cost") or Decimal(0)),
            input_tokens=row.get("input") or 0, output_tokens=row.get("output") or 0, judge_tokens=row.get("judge") or 0,
            p50_ms=_percentile(lat, 0.5), p95_ms=_percentile(lat, 0.95)))
    return figures


@dataclass(frozen=True)
class CaseRow:
    case: TestCase
    results: list[EvalResult | None]  # in target order

    @property
    def failed_anywhere(self) -> bool:
        return any(r.passed is not True for r in self.results if r is not None and r.status != ResultStatus.PENDING)

    @property
    def differs(self) -> bool:
        done = [r for r in self.results if r is not None and r.status != ResultStatus.PENDING]
        return len({r.passed for r in done}) > 1 or len({r.output_text.strip() for r in done}) > 1


CASE_FILTERS = {"all": "All cases", "failed": "Failed anywhere", "differs": "Differs between targets"}


def run_case_rows(*, run: EvalRun, show: str = "all", limit: int | None = None) -> list[CaseRow]:
    """The per-case table: one row per case, the targets' results side by side."""
    target_ids = list(run.targets.values_list("pk", flat=True))
    by_case: dict[int, dict[int, EvalResult]] = {}
    cases: dict[int, TestCase] = {}
    for result in run.results.select_related("case").order_by("case__position", "target__position"):
        by_case.setdefault(result.case_id, {})[result.target_id] = result
        cases[result.case_id] = result.case
    rows = [CaseRow(cases[case_id], [found.get(t) for t in target_ids]) for case_id, found in by_case.items()]
    if show == "failed":
        rows = [row for row in rows if row.failed_anywhere]
    elif show == "differs":
        rows = [row for row in rows if row.differs]
    return rows[:limit] if limit is not None else rows


def run_progress(*, run: EvalRun) -> tuple[int, int]:
    counts = run.results.aggregate(total=Count("id"), finished=Count("id", filter=~Q(status=ResultStatus.PENDING)))
    return counts["finished"], counts["total"]


def latest_runs_for_assistant(*, team: Team, assistant_id: int) -> QuerySet[EvalRun]:
    return (EvalRun.objects.filter(team=team, targets__version__assistant_id=assistant_id).distinct()
            .select_related("set_version__test_set").order_by("-id"))


def version_eval_results(team: Team, version_ids: Sequence[int]) -> dict[int, list[VersionResult]]:
    """Each version's latest finished result per test set, with its own model (registered in
    EvalsConfig.ready for chat's version list)."""
    targets = (EvalTarget.objects.filter(run__team=team, run__status=RunStatus.SUCCEEDED, version_id__in=version_ids,
                                         model=F("version__model"))
               .select_related("run__set_version__test_set")
               .annotate(passed=Count("results", filter=Q(results__passed=True)), total=Count("results"))
               .order_by("-run_id"))
    found: dict[int, list[VersionResult]] = {}
    seen: set[tuple[int, int]] = set()
    for target in targets:
        test_set = target.run.set_version.test_set
        if (target.version_id, test_set.pk) in seen:
            continue
        seen.add((target.version_id, test_set.pk))
        found.setdefault(target.version_id, []).append(VersionResult(
            label=str(target.run.set_version), passed=target.passed, total=target.total,
            url=reverse("eval_run_detail", args=[target.run_id])))
    return found


def migration_runs(*, team: Team, assistant_id: int) -> QuerySet[EvalRun]:
    return EvalRun.objects.filter(team=team, migration_assistant_id=assistant_id).order_by("-id")



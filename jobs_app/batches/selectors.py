"""Reads for batches, always scoped to a team."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from jobs_app.batches.build import request_line
from jobs_app.batches.models import (
    ACTIVE_STATUSES,
    Batch,
    BatchBuild,
    BatchGroup,
    BatchRequest,
    BatchStatus,
    BuildState,
    RequestStatus,
    ResultsState,
)
from project.teams.models import Team


def team_batch_groups(*, team: Team) -> QuerySet[BatchGroup]:
    return (BatchGroup.objects.filter(team=team).select_related("connection")
            .prefetch_related(Prefetch("parts", queryset=Batch.objects.order_by("part"))))


def team_batch_group_get(*, team: Team, group_id: int) -> BatchGroup:
    return get_object_or_404(BatchGroup.objects.select_related("connection", "team", "retry_of"), team=team,
                             pk=group_id)


def team_open_builds(*, team: Team) -> QuerySet[BatchBuild]:
    """Big inputs still being checked, so they can be found again from the list."""
    return BatchBuild.objects.filter(team=team, state__in=[BuildState.QUEUED, BuildState.RUNNING])


def team_batch_build_get(*, team: Team, build_id: int) -> BatchBuild:
    return get_object_or_404(BatchBuild, team=team, pk=build_id)


@dataclass(frozen=True)
class GroupProgress:
    status: str
    label: str
    total: int
    completed: int
    failed: int
    percent: int
    live: bool


def group_progress(group: BatchGroup) -> GroupProgress:
    """One status for the group, from its parts: the least advanced part leads."""
    parts = list(group.parts.all())
    total = sum(p.total or p.request_count for p in parts)
    completed = sum(p.completed for p in parts)
    failed = sum(p.failed for p in parts)
    statuses = {p.status for p in parts}
    order = [BatchStatus.SUBMITTING, BatchStatus.SUBMIT_FAILED, BatchStatus.DRAFT, BatchStatus.VALIDATING,
             BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING, BatchStatus.FINALIZING, BatchStatus.FAILED,
             BatchStatus.EXPIRED, BatchStatus.CANCELLED, BatchStatus.COMPLETED]
    status = next((s for s in order if s in statuses), BatchStatus.DRAFT)
    collecting = any(p.is_terminal and p.results_state in (ResultsState.NONE, ResultsState.QUEUED) for p in parts)
    live = bool(statuses & (ACTIVE_STATUSES | {BatchStatus.SUBMITTING})) or collecting
    percent = 100 if statuses == {BatchStatus.COMPLETED} else (min(100, (completed + failed) * 100 // total) if total else 0)
    label = BatchStatus(status).label
    if not live and collecting is False and any(p.results_state == ResultsState.ERROR for p in parts):
        label += " (results could not be fetched)"
    return GroupProgress(status, label, total, completed, failed, percent, live)


def group_requests(*, group: BatchGroup, status: str = "", query: str = "") -> QuerySet[BatchRequest]:
    rows = BatchRequest.objects.filter(batch__group=group).order_by("batch__part", "line_no")
    if status == "failed":
        rows = rows.filter(status__in=[RequestStatus.FAILED, RequestStatus.EXPIRED])
    elif status in RequestStatus.values:
        rows = rows.filter(status=status)
    if query:
        rows = rows.filter(Q(custom_id__icontains=query) | Q(input_text__icontains=query)
                           | Q(output_text__icontains=query) | Q(error_message__icontains=query))
    return rows


def group_submit_stuck(group: BatchGroup, *, older_than_seconds: float) -> bool:
    """Whether a part has been "submitting" without a provider id for longer than a submit takes."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return group.parts.filter(status=BatchStatus.SUBMITTING, remote_id="", submitting_since__lt=cutoff).exists()


def group_status_counts(group: BatchGroup) -> dict[str, int]:
    counts = {row["status"]: row["n"] for row in
              BatchRequest.objects.filter(batch__group=group).values("status").annotate(n=Count("id"))}
    return counts


def group_preview_lines(group: BatchGroup, limit: int = 5) -> list[str]:
    rows = BatchRequest.objects.filter(batch__group=group).order_by("batch__part", "line_no")[:limit]
    return [request_line(r.custom_id, group.endpoint, r.body).decode().rstrip() for r in rows]


def group_export_rows(group: BatchGroup, *, status: str = "", query: str = "") -> Iterator[BatchRequest]:
    return group_requests(group=group, status=status, query=query).only(
        "custom_id", "input_text", "status", "status_code", "output_text", "output_json", "error_code",
        "error_message", "input_tokens", "output_tokens", "body", "line_no", "batch_id").iterator(chunk_size=2000)

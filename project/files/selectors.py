from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from project.files.models import File, FilePurpose, FileState, UploadRequest, UploadRequestStatus
from project.teams.models import Team

# Sort keys a page may ask for -> ORDER BY; anything else falls back to newest first.
SORTS: dict[str, list[str]] = {
    "name": ["name", "-pk"],
    "-name": ["-name", "-pk"],
    "size": ["bytes", "-pk"],
    "-size": ["-bytes", "-pk"],
    "created": ["created_at", "pk"],
    "-created": ["-created_at", "-pk"],
    "expires": ["expires_at", "-pk"],
    "-expires": ["-expires_at", "-pk"],
    "purpose": ["purpose", "-pk"],
}
DEFAULT_SORT = "-created"


def team_files(*, team: Team, purpose: str = "", connection_id: int | None = None, sort: str = DEFAULT_SORT,
               state: str = "") -> QuerySet[File]:
    """The team's files (deleted ones left out), optionally filtered and sorted."""
    files = File.objects.filter(team=team).exclude(state=FileState.DELETED).select_related("connection")
    if purpose:
        files = files.filter(purpose=purpose)
    if connection_id:
        files = files.filter(connection_id=connection_id)
    if state:
        files = files.filter(state=state)
    return files.order_by(*SORTS.get(sort, SORTS[DEFAULT_SORT]))


def team_file_get(*, team: Team, file_id: int) -> File:
    return get_object_or_404(File.objects.select_related("connection", "team"), team=team, pk=file_id)


@dataclass(frozen=True)
class PurposeStorage:
    purpose: str
    label: str
    count: int
    bytes: int


@dataclass(frozen=True)
class TeamStorage:
    count: int
    bytes: int
    by_purpose: list[PurposeStorage]


def team_storage(*, team: Team) -> TeamStorage:
    """Bytes and count of the team's files on its providers, in total and by purpose."""
    labels = dict(FilePurpose.choices)
    rows = (File.objects.filter(team=team).exclude(state=FileState.DELETED).values("purpose")
            .annotate(count=Count("pk"), total=Sum("bytes")).order_by("-total"))
    by_purpose = [PurposeStorage(r["purpose"], labels.get(r["purpose"], r["purpose"]), r["count"], r["total"] or 0) for r in rows]
    return TeamStorage(count=sum(p.count for p in by_purpose), bytes=sum(p.bytes for p in by_purpose), by_purpose=by_purpose)


def team_upload_request_get(*, team: Team, request_id: int) -> UploadRequest:
    return get_object_or_404(UploadRequest, team=team, pk=request_id)


def team_upload_requests_recent(*, team: Team, within: timedelta = timedelta(minutes=30)) -> QuerySet[UploadRequest]:
    """Big uploads still on their way to the provider, and those that ended lately (to say how)."""
    recent = Q(updated_at__gte=timezone.now() - within)
    unfinished = Q(status__in=[UploadRequestStatus.QUEUED, UploadRequestStatus.SENDING])
    return UploadRequest.objects.filter(Q(team=team) & (unfinished | recent)).select_related("file").order_by("-created_at")

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from project.files.models import File, FileState
from project.teams.models import Team


def team_files(*, team: Team) -> QuerySet[File]:
    return File.objects.filter(team=team).exclude(state=FileState.DELETED).select_related("connection")


def team_file_get(*, team: Team, file_id: int) -> File:
    return get_object_or_404(File.objects.select_related("connection"), team=team, pk=file_id)


def team_file_by_remote_id(*, team: Team, connection_id: int, remote_id: str) -> File | None:
    return File.objects.filter(team=team, connection_id=connection_id, remote_id=remote_id).first()

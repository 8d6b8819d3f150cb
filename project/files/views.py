from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from project.teams.access import TeamRequest, team_view


@team_view()
def file_list(request: TeamRequest) -> HttpResponse:
    return render(request, "files/file_list.html")

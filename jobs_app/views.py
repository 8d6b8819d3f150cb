from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from project.teams.access import TeamRequest, team_view


@team_view()
def batch_list(request: TeamRequest) -> HttpResponse:
    return render(request, "jobs_app/batch_list.html")

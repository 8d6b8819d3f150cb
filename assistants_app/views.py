from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from project.teams.access import TeamRequest, team_view


@team_view()
def assistant_list(request: TeamRequest) -> HttpResponse:
    return render(request, "assistants_app/assistant_list.html")


@team_view()
def thread_list(request: TeamRequest) -> HttpResponse:
    return render(request, "assistants_app/thread_list.html")


@team_view()
def usage(request: TeamRequest) -> HttpResponse:
    return render(request, "assistants_app/usage.html")

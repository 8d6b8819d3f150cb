from __future__ import annotations

from decimal import Decimal

from django.http import HttpResponse
from django.shortcuts import render

from project.spend.registry import team_spend_sections
from project.teams.access import TeamRequest, team_view

USAGE_DAYS = 30


@team_view()
def usage(request: TeamRequest) -> HttpResponse:
    sections = team_spend_sections(team=request.team, days=USAGE_DAYS)
    context = {"sections": sections, "days": USAGE_DAYS,
               "total_cost": sum((section.cost for section in sections), Decimal(0)),
               "unknown_cost": sum(section.unknown_cost for section in sections)}
    return render(request, "spend/usage.html", context)

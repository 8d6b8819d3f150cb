from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from project.notifications.selectors import team_notifications
from project.notifications.services import notifications_mark_read
from project.teams.access import TeamRequest, team_view


@team_view()
def notification_list(request: TeamRequest) -> HttpResponse:
    if request.method == "POST":
        notifications_mark_read(team=request.team, user=request.user)
        return redirect(reverse("notification_list"))
    return render(request, "notifications/notification_list.html",
                  {"notifications": team_notifications(team=request.team, user=request.user)[:100]})

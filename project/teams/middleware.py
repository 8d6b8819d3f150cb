from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from project.teams.audit_context import request_address
from project.teams.selectors import membership_for, memberships_for_user

SESSION_TEAM_KEY = "team_id"


class CurrentTeamMiddleware:
    """Puts the user's current team and membership on the request.

    The current team is remembered in the session; if the user has left that team
    (or never chose one), the first team they belong to is used.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The audit trail records which address each change came from.
        token = request_address.set(request.META.get("REMOTE_ADDR") or None)
        try:
            return self._with_team(request)
        finally:
            request_address.reset(token)

    def _with_team(self, request: HttpRequest) -> HttpResponse:
        request.team = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        if request.user.is_authenticated:
            membership = None
            team_id = request.session.get(SESSION_TEAM_KEY)
            if team_id is not None:
                membership = membership_for(user=request.user, team_id=int(team_id))
            if membership is None:
                membership = memberships_for_user(user=request.user).first()
                if membership is not None:
                    request.session[SESSION_TEAM_KEY] = membership.team_id
            if membership is not None:
                request.team = membership.team  # type: ignore[attr-defined]
                request.membership = membership  # type: ignore[attr-defined]
        return self.get_response(request)

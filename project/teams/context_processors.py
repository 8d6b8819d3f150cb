from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from project.teams.selectors import memberships_for_user


def current_team(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    # Error pages for requests refused before AuthenticationMiddleware ran (a bad Host
    # header is a 400) have no user.
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_team": getattr(request, "team", None),
        "current_membership": getattr(request, "membership", None),
        # Lazy: only pages that render the team switcher run this query.
        "my_memberships": lambda: list(memberships_for_user(user=user)),
    }

"""Who may see and change what.

Every team page is wrapped in `team_view`: it requires a logged-in member of the
current team, and a role at least `minimum` for the view. Whatever the view's
minimum, a request that changes something (any method but GET/HEAD/OPTIONS)
needs at least the member role, so viewers can read and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from project.teams.models import Membership, Role, Team

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class TeamRequest(HttpRequest):
    """An HttpRequest after CurrentTeamMiddleware has run for a team member."""

    team: Team
    membership: Membership
    user: User
    htmx: HtmxDetails


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ViewFunc = TypeVar("ViewFunc", bound=Callable[..., HttpResponse])


def team_view(minimum: str = Role.VIEWER) -> Callable[[ViewFunc], ViewFunc]:
    def decorator(view: ViewFunc) -> ViewFunc:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership: Membership | None = getattr(request, "membership", None)
            if membership is None:
                return redirect("no_team")
            needed = minimum
            # The message is shown on the 403 page (templates/403.html).
            if request.method not in SAFE_METHODS and not membership.has_role(Role.MEMBER):
                raise PermissionDenied("Viewers can read but not change anything: this needs the member role or higher.")
            if not membership.has_role(needed):
                raise PermissionDenied(f"This needs the {needed} role or higher.")
            return view(request, *args, **kwargs)

        return cast(ViewFunc, wrapped)

    return decorator

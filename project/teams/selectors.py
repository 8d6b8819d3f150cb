"""Reads of team data. Every function takes the team (or the user) it is scoped to."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from project.joined_rows import JoinedModel, joined_fetch
from project.teams.models import AuditEvent, Invitation, Membership, Team
from project.user_input import MAX_ID


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("team__name")


_MEMBERSHIP_WITH = (JoinedModel(Membership, "m"), JoinedModel(Team, "t"))


@cache
def _membership_sql() -> str:
    membership, team = _MEMBERSHIP_WITH
    # Only the models' own table and column names are formatted in; the ids are parameters.
    return (f"SELECT {membership.columns}, {team.columns} FROM {Membership._meta.db_table} m "  # noqa: S608
            f"JOIN {Team._meta.db_table} t ON t.id = m.team_id WHERE m.user_id = %s AND m.team_id = %s")


def membership_for(*, user: User, team_id: int) -> Membership | None:
    """The user's membership of the team, with the team; None when not a member. Read on
    every request (CurrentTeamMiddleware): one prepared statement (project.joined_rows), where
    the ORM compiled the query and PostgreSQL planned it each time (5 times the CPU)."""
    built = joined_fetch(_membership_sql(), (user.pk, team_id), _MEMBERSHIP_WITH) if 0 < team_id <= MAX_ID else None
    if built is None:
        return None
    membership, team = built
    assert isinstance(membership, Membership) and isinstance(team, Team)
    membership.team = team
    return membership


def team_members(*, team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def team_membership_get(*, team: Team, membership_id: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user"), team=team, pk=membership_id)


def team_pending_invitations(*, team: Team) -> QuerySet[Invitation]:
    return Invitation.objects.filter(team=team, accepted_at__isnull=True).order_by("-created_at")


def team_invitation_get(*, team: Team, invitation_id: int) -> Invitation:
    return get_object_or_404(Invitation, team=team, pk=invitation_id)


def invitation_by_token(*, token: str) -> Invitation | None:
    return Invitation.objects.select_related("team").filter(token_hash=Invitation.hash_token(token)).first()


def team_audit_events(*, team: Team, limit: int = 50) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(team=team).select_related("actor")[:limit]


AUDIT_PAGE = 100


def team_audit_search(*, team: Team, actor_id: int | None = None, action: str = "", start: date | None = None,
                      end: date | None = None) -> QuerySet[AuditEvent]:
    """The team's audit events, newest first, by who, what (an action or its family: "budget")
    and the days (UTC, inclusive)."""
    events = AuditEvent.objects.filter(team=team).select_related("actor")
    if actor_id is not None:
        events = events.filter(actor_id=actor_id)
    if action:
        events = events.filter(Q(action=action) | Q(action__startswith=action.rstrip(".") + "."))
    if start is not None:
        events = events.filter(created_at__gte=datetime.combine(start, time.min, tzinfo=UTC))
    if end is not None:
        events = events.filter(created_at__lt=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC))
    return events.order_by("-created_at", "-pk")


def team_audit_actions(*, team: Team) -> list[str]:
    return list(AuditEvent.objects.filter(team=team).values_list("action", flat=True).distinct().order_by("action"))

"""Reads, scoped to a team and a person."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.models import User
from django.db.models import Case, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from project.notifications.models import Notification, NotificationsSeen
from project.teams.models import Team

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _unread(team: Team, user: User) -> Q:
    """Notifications made after this person last marked them read (all, if never)."""
    seen = Subquery(NotificationsSeen.objects.filter(team=team, user=user).values("until")[:1])
    return Q(created_at__gt=Coalesce(seen, Value(EPOCH)))


def team_notifications(*, team: Team, user: User) -> QuerySet[Notification]:
    """The team's notifications, newest first, each with `unread` for this person."""
    return Notification.objects.filter(team=team).annotate(
        unread=Case(When(_unread(team, user), then=Value(True)), default=Value(False)))


def team_unread_notification_count(*, team: Team, user: User) -> int:
    """How many of the team's notifications this person has not read (one query)."""
    return Notification.objects.filter(_unread(team, user), team=team).count()

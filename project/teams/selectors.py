"""Reads of team data. Every function takes the team (or the user) it is scoped to."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from project.teams.models import AuditEvent, Invitation, Membership, Team


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("team__name")


def membership_for(*, user: User, team_id: int) -> Membership | None:
    return Membership.objects.filter(user=user, team_id=team_id).select_related("team").first()


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

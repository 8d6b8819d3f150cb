from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from project.providers.models import ProviderConnection
from project.teams.models import Team


def team_connections(*, team: Team) -> QuerySet[ProviderConnection]:
    return ProviderConnection.objects.filter(team=team).order_by("-is_default", "name")


def team_connection_get(*, team: Team, connection_id: int) -> ProviderConnection:
    return get_object_or_404(ProviderConnection, team=team, pk=connection_id)


def team_default_connection(*, team: Team) -> ProviderConnection | None:
    return team_connections(team=team).first()


def connection_by_public_id(*, public_id: UUID) -> ProviderConnection | None:
    """For webhook deliveries, which carry no session: the signature is the proof."""
    return ProviderConnection.objects.filter(public_id=public_id).select_related("team").first()

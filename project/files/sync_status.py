"""A team's file sync, as the Files page shows it: started, finished with counts, or
failed with the reason. Kept in the cache for an hour; the page polls while it runs."""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone

from project.queue import task_send_on_commit
from project.teams.models import Team

SYNC_STATUS_SECONDS = 60 * 60


def _key(team_id: int) -> str:
    return f"files:sync:{team_id}"


def sync_status(team_id: int) -> dict[str, object] | None:
    value = cache.get(_key(team_id))
    return value if isinstance(value, dict) else None


def sync_status_set(team_id: int, status: dict[str, object]) -> None:
    cache.set(_key(team_id), status, SYNC_STATUS_SECONDS)


def files_sync_enqueue(*, team: Team) -> None:
    """Mark the sync as running (the page polls while it is) and enqueue it after commit."""
    sync_status_set(team.pk, {"running": True, "started": timezone.now().isoformat()})
    task_send_on_commit("project.files.tasks.files_sync_task", team.pk)

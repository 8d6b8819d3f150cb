"""Thin tasks: load by id, call a service. File sync waits on the provider, so it runs on "io"."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from project.files.services import files_sync_team
from project.files.uploads import uploads_reap_stale
from project.teams.models import Team

SYNC_STATUS_SECONDS = 60 * 60


def sync_status_key(team_id: int) -> str:
    return f"files:sync:{team_id}"


def sync_status(team_id: int) -> dict[str, object] | None:
    value = cache.get(sync_status_key(team_id))
    return value if isinstance(value, dict) else None


def files_sync_enqueue(*, team: Team) -> None:
    """Mark the sync as running (the page polls while it is) and enqueue it after commit."""
    cache.set(sync_status_key(team.pk), {"running": True, "started": timezone.now().isoformat()}, SYNC_STATUS_SECONDS)
    transaction.on_commit(lambda: files_sync_task.delay(team.pk))


# Idempotent (a second run finds nothing new), so a redelivery after a crash is harmless.
@shared_task(workload="io", acks_late=True)
def files_sync_task(team_id: int) -> None:
    team = Team.objects.get(pk=team_id)
    try:
        results = files_sync_team(team=team)
    except Exception as error:
        cache.set(sync_status_key(team_id), {"running": False, "error": str(error)}, SYNC_STATUS_SECONDS)
        raise
    cache.set(sync_status_key(team_id), {"running": False, "results": results, "finished": timezone.now().isoformat()},
              SYNC_STATUS_SECONDS)


@shared_task(workload="io")
def files_sync_all_task() -> None:
    """Periodic: one sync per team that has a connection, each its own task."""
    for team_id in Team.objects.filter(connections__isnull=False).distinct().values_list("pk", flat=True):
        files_sync_task.delay(team_id)


@shared_task(workload="io")
def files_reap_uploads_task() -> int:
    """Periodic: cancel multi-part uploads abandoned by a crashed process, fail their staged requests."""
    from project.files.staging import upload_requests_reap_stale

    return uploads_reap_stale() + upload_requests_reap_stale()


# Not acks_late: a request claimed by a worker that then died is failed by the reaper, not re-run half-way.
@shared_task(workload="io")
def upload_request_task(request_id: int) -> None:
    from project.files.staging import upload_request_run

    upload_request_run(request_id=request_id)

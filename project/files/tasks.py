"""Thin tasks: load by id, call a service. File sync waits on the provider, so it runs on "io"."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from project.files.services import files_sync_team
from project.files.staging import upload_request_run, upload_requests_reap_stale
from project.files.sync_status import sync_status_set
from project.files.uploads import uploads_reap_stale
from project.teams.models import Team
from project.workloads import IoTask


# Idempotent (a second run finds nothing new), so a redelivery after a crash is harmless.
@shared_task(base=IoTask, acks_late=True, name="project.files.tasks.files_sync_task")
def files_sync_task(team_id: int) -> None:
    team = Team.objects.get(pk=team_id)
    try:
        results = files_sync_team(team=team)
    except Exception as error:
        sync_status_set(team_id, {"running": False, "error": str(error)})
        raise
    sync_status_set(team_id, {"running": False, "results": results, "finished": timezone.now().isoformat()})


@shared_task(base=IoTask, name="project.files.tasks.files_sync_all_task")
def files_sync_all_task() -> None:
    """Periodic: one sync per team that has a connection, each its own task."""
    for team_id in Team.objects.filter(connections__isnull=False).distinct().values_list("pk", flat=True):
        files_sync_task.delay(team_id)


@shared_task(base=IoTask, name="project.files.tasks.files_reap_uploads_task")
def files_reap_uploads_task() -> int:
    """Periodic: cancel multi-part uploads abandoned by a crashed process, fail their staged requests."""
    return uploads_reap_stale() + upload_requests_reap_stale()


# Not acks_late: a request claimed by a worker that then died is failed by the reaper, not re-run half-way.
@shared_task(base=IoTask, name="project.files.tasks.upload_request_task")
def upload_request_task(request_id: int) -> None:
    upload_request_run(request_id=request_id)

"""The Celery app. Settings come from Django's CELERY_* settings (JSON only, time
limits there); the beat schedule lives here in code so it is reviewed like code.

acks_late is set per task, only on tasks that are safe to run twice.
"""

from __future__ import annotations

import os

from celery import Celery

from project.workloads import queue_for

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")



def route_by_workload(name: str, args: object, kwargs: object, options: object, task: object = None,
                      **extra: object) -> dict[str, str] | None:
    """Send a task to the queue its base class names (project.workloads), so the
    per-task `queue` attribute, deprecated in Celery 6, is not needed."""
    queue = queue_for(task)
    return {"queue": queue} if queue else None

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work is added by the apps that need it (job and batch sync).
app.conf.beat_schedule = {
    # A chat run whose worker died is re-queued or failed within about a minute and a half.
    "chat-recover-stale-runs": {"task": "assistants_app.runs_recover_stale", "schedule": 30.0},
    # One list call per connection with active fine-tune jobs; backoff is per connection.
    "finetune-sync": {"task": "jobs_app.finetune.tasks.finetune_sync_tick_task", "schedule": 30.0},
    # Files made or deleted elsewhere show up (imported / missing) within the hour.
    "files-sync-all": {"task": "project.files.tasks.files_sync_all_task", "schedule": 60 * 60},
    "files-reap-uploads": {"task": "project.files.tasks.files_reap_uploads_task", "schedule": 30 * 60},
    # One list call per connection with active batches; finished batches are not polled.
    "batches-sync": {"task": "jobs_app.batches.tasks.batches_sync_tick", "schedule": 15.0},
}

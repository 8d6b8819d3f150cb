"""The Celery app. Settings come from Django's CELERY_* settings (JSON only, time
limits there); the beat schedule lives here in code so it is reviewed like code.

acks_late is set per task, only on tasks that are safe to run twice.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work is added by the apps that need it (job and batch sync).
app.conf.beat_schedule = {
    # A chat run whose worker died is re-queued or failed within about a minute and a half.
    "chat-recover-stale-runs": {"task": "assistants_app.runs_recover_stale", "schedule": 30.0},
}

"""The stale-run sweep: runs nobody is working on are sent again or failed, so a
reply is never stuck "writing…" because a worker died or a task was lost. Runs awaiting
the provider are beat's to poll (responses_poll), not the sweep's."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from assistants_app import streams
from assistants_app.models import Run, RunStatus
from assistants_app.services import run_dispatch
from project.outages import REDIS, REDIS_ERRORS
from project.queue import task_send_on_commit

log = logging.getLogger(__name__)


def _tell_pages(run_id: int, *entries: tuple[str, str]) -> None:
    """Show the runs' open pages what the sweep did. Redis being down must not stop the
    sweep: the pages notice a run's end from the database, and a requeued run's new
    attempt begins its display with a reset of its own."""
    try:
        for kind, data in entries:
            if kind == "done":
                streams.publish_end(run_id)
            else:
                streams.publish(run_id, kind, data)
    except REDIS_ERRORS as error:
        log.warning("run %s: the sweep could not tell its pages (%s unreachable: %s)", run_id, REDIS, error)


def runs_recover_stale(*, stale_after_seconds: float, max_attempts: int = 2,
                       give_up_queued_after_seconds: float = 600.0) -> tuple[int, int]:
    """Runs nobody is working on. A running run whose worker stopped sending heartbeats
    is queued again (a fresh attempt from the saved history) or, after max_attempts,
    failed. A queued run no worker has taken for stale_after_seconds (its task was lost:
    the broker was down when it was sent, or a worker died holding it) is sent again,
    and failed once it has waited give_up_queued_after_seconds. Returns (sent again,
    failed)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_after_seconds)
    requeued = failed = 0
    # A run awaiting the provider (poll_at set) has no worker to die: beat polls its
    # background response (responses_poll), so its old heartbeat says nothing.
    stale = Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff, poll_at__isnull=True)
    for run in stale.only("pk", "attempts", "response_id"):
        if run.attempts < max_attempts:
            with transaction.atomic():
                if stale.filter(pk=run.pk).update(status=RunStatus.QUEUED, heartbeat_at=now):
                    if run.response_id:
                        # A background response goes on at the provider: the next worker resumes it.
                        transaction.on_commit(partial(_tell_pages, run.pk, (
                            "note", "The worker stopped; another picks the reply up where it was.")))
                    else:
                        transaction.on_commit(partial(_tell_pages, run.pk, ("reset", ""), (
                            "note", "The worker stopped; the reply is being written again.")))
                    task_send_on_commit("assistants_app.run_execute", run.pk)
                    requeued += 1
        elif stale.filter(pk=run.pk).update(
                status=RunStatus.FAILED, finished_at=timezone.now(),
                error="The worker running this reply stopped and it could not be finished. Send the message again."):
            _tell_pages(run.pk, ("done", ""))
            failed += 1
    # Queued since: when it was queued again (heartbeat_at), else when it was made.
    waiting = Run.objects.filter(status=RunStatus.QUEUED).annotate(queued_at=Coalesce("heartbeat_at", "created_at"))
    give_up = now - timedelta(seconds=give_up_queued_after_seconds)
    for run in waiting.filter(queued_at__lt=give_up).only("pk"):
        if Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
                status=RunStatus.FAILED, finished_at=now,
                error=f"No worker took this reply within {give_up_queued_after_seconds / 60:.0f} minutes, so it was "
                      "stopped. Check that the Celery io worker is running, then send the message again."):
            _tell_pages(run.pk, ("done", ""))
            failed += 1
    for run in waiting.filter(queued_at__lt=cutoff, queued_at__gte=give_up).only("pk", "thread_id"):
        # A duplicate of a task still in the queue is harmless: only one claim succeeds.
        # Not cleared: a worker may have claimed the run and begun writing since the query.
        if run_dispatch(run.pk, run.thread_id, again=True):
            requeued += 1
    return requeued, failed

"""The periodic fine-tune sync: per connection, one list call covers every active job.

The jobs list is newest first; we page only until every active job has been
seen, so a tick costs ceil(span of active jobs / 100) list calls however many
jobs are active, plus at most EVENT_FETCHES_PER_TICK event fetches (jobs whose
status changed first, then the running job whose events are oldest). Finished
jobs are not polled. A failing connection backs off exponentially (honouring
retry-after), recorded on its FineTuneSyncState row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from jobs_app.finetune.models import TERMINAL_STATUSES, FineTuneJob, FineTuneSyncState
from jobs_app.finetune.services import (
    finetune_job_apply,
    finetune_job_end_missing,
    finetune_job_retrieve,
    finetune_job_sync_events,
    finetune_jobs_apply,
)
from project.providers.client import ProviderError, ProviderNotFound, poll_backoff_seconds, provider_call
from project.providers.models import ProviderConnection

logger = logging.getLogger(__name__)

LIST_PAGE = 100
EVENT_FETCHES_PER_TICK = 3
# Active jobs the list did not show are asked about one by one, this many per tick.
MISSING_CHECKS_PER_TICK = 3
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 30 * 60
LOCK_SECONDS = 120


@dataclass
class TickResult:
    list_calls: int = 0
    event_calls: int = 0
    missing_checks: int = 0
    updated: int = 0
    skipped: str = ""
    error: str = ""
    changed_ids: list[int] = field(default_factory=list)

    @property
    def api_calls(self) -> int:
        return self.list_calls + self.event_calls + self.missing_checks


def active_jobs(connection: ProviderConnection) -> dict[str, FineTuneJob]:
    jobs = FineTuneJob.objects.filter(connection=connection).exclude(status__in=TERMINAL_STATUSES)
    return {job.remote_id: job for job in jobs.select_related("connection", "team", "created_by")}


def _backoff(state: FineTuneSyncState, error: ProviderError) -> None:
    state.consecutive_failures += 1
    delay = poll_backoff_seconds(state.consecutive_failures, error, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_MAX_SECONDS)
    state.next_sync_at = timezone.now() + timedelta(seconds=delay)
    state.last_error = error.message[:1000]
    state.save()


def sync_connection(connection: ProviderConnection, *, force: bool = False) -> TickResult:
    result = TickResult()
    state, _ = FineTuneSyncState.objects.get_or_create(connection=connection)
    if not force and state.next_sync_at and state.next_sync_at > timezone.now():
        result.skipped = "backing off"
        return result
    lock = f"finetune:sync:{connection.pk}"
    if not cache.add(lock, 1, LOCK_SECONDS):
        result.skipped = "another sync is running"
        return result
    try:
        _sync(connection, result)
    except ProviderError as error:
        result.error = error.message
        _backoff(state, error)
        logger.info("fine-tune sync of connection %s failed: %s", connection.pk, error.message)
    else:
        state.consecutive_failures = 0
        state.next_sync_at = None
        state.last_error = ""
        state.last_synced_at = timezone.now()
        state.save()
    finally:
        cache.delete(lock)
    return result


def _sync(connection: ProviderConnection, result: TickResult) -> None:
    active = active_jobs(connection)
    if not active:
        result.skipped = "no active jobs"
        return
    created = [job.remote_created_at for job in active.values()]
    oldest = None if None in created else int(min(c.timestamp() for c in created if c is not None))
    unseen = set(active)
    pairs: list[tuple[FineTuneJob, Any]] = []
    after: str | None = None
    while unseen:
        cursor = after

        def list_page(client: Any, cursor: str | None = cursor) -> Any:
            return client.fine_tuning.jobs.list(limit=LIST_PAGE, **({"after": cursor} if cursor else {}))

        page = provider_call(connection, list_page)
        result.list_calls += 1
        for remote in page.data:
            job = active.get(remote.id)
            if job is None:
                continue
            unseen.discard(remote.id)
            pairs.append((job, remote))
        if not page.has_more or not page.data:
            break
        if oldest is not None and page.data[-1].created_at < oldest:
            break  # the list is newest first: the rest is older than every active job (a missing one must not cost a full walk)
        after = page.data[-1].id
    changed = finetune_jobs_apply(pairs=pairs)
    changed += _check_unlisted(connection, [active[remote_id] for remote_id in sorted(unseen)], result)
    # Unchanged jobs were not written one by one; one update records that they were seen.
    FineTuneJob.objects.filter(pk__in=[active[rid].pk for rid in set(active) - unseen]).update(synced_at=timezone.now())
    result.updated = len(changed)
    result.changed_ids = [job.pk for job in changed]
    # Events: the changed jobs first, then whichever running job has waited longest. Finished
    # jobs fetched theirs when they were finalized.
    running = sorted((job for job in active.values() if job not in changed and not job.is_terminal),
                     key=lambda job: (job.events_synced_at is not None, job.events_synced_at))
    for job in [*(j for j in changed if not j.is_terminal), *running][:EVENT_FETCHES_PER_TICK]:
        try:
            result.event_calls += finetune_job_sync_events(job=job)
        except ProviderError as error:
            if error.transient:
                raise  # the connection is in trouble: back off
            # One job's refusal (say, deleted on the provider) must not stall the others.
            result.event_calls += 1
            logger.info("events of fine-tune job %s: %s", job.remote_id, error.message)


def _check_unlisted(connection: ProviderConnection, jobs: list[FineTuneJob], result: TickResult) -> list[FineTuneJob]:
    """Active jobs the provider's list no longer shows: fetch each (a few per tick). One
    the provider does not know any more (deleted there) is ended here with the reason,
    or it would stay "running" and be polled for ever."""
    changed: list[FineTuneJob] = []
    for job in jobs[:MISSING_CHECKS_PER_TICK]:
        result.missing_checks += 1
        try:
            remote = finetune_job_retrieve(job)
        except ProviderNotFound as error:
            if finetune_job_end_missing(job=job, reason=f"The job no longer exists on {connection.name}: {error.message}"):
                changed.append(job)
            continue
        if finetune_job_apply(job=job, remote=remote):
            changed.append(job)
    return changed


def sync_all_connections() -> dict[int, TickResult]:
    """The beat task's body: every connection with an active job, due for a sync."""
    now = timezone.now()
    connection_ids = (FineTuneJob.objects.exclude(status__in=TERMINAL_STATUSES)
                      .values_list("connection_id", flat=True).distinct())
    due = ProviderConnection.objects.filter(pk__in=connection_ids).exclude(
        finetune_sync__next_sync_at__gt=now)
    return {connection.pk: sync_connection(connection) for connection in due}


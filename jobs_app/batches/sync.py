"""Keep submitted batches in step with the provider.

One tick per connection makes one `batches.list` call (newest first), paging only
until every active batch of that connection has been seen; finished batches are
never polled. Errors back off per batch. A signed webhook syncs one batch at once.
Applying a remote state is idempotent and never moves a batch backwards, so
duplicate or late deliveries change nothing twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs_app.batches.models import (
    ACTIVE_STATUSES,
    STATUS_RANK,
    TERMINAL_STATUSES,
    Batch,
    ResultsState,
)
from project.providers.client import ProviderError, poll_backoff_seconds, provider_call
from project.providers.models import ProviderConnection
from project.providers.timestamps import provider_datetime
from project.queue import task_send_on_commit

logger = logging.getLogger(__name__)

LIST_PAGE_SIZE = 100
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)
TIMESTAMPS = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
              "cancelled_at", "expires_at")


def _remote_fields(remote: Any) -> dict[str, Any]:
    counts = remote.request_counts
    usage = getattr(remote, "usage", None)
    errors = getattr(remote, "errors", None)
    fields: dict[str, Any] = {
        "status": remote.status,
        "total": counts.total if counts else 0,
        "completed": counts.completed if counts else 0,
        "failed": counts.failed if counts else 0,
        "remote_output_file_id": remote.output_file_id or "",
        "remote_error_file_id": remote.error_file_id or "",
        "remote_created_at": provider_datetime(remote.created_at),
        "errors": [
            {"code": e.code, "message": e.message, "line": e.line, "param": e.param} for e in (errors.data or [])
        ] if errors is not None and errors.data else [],
    }
    for name in TIMESTAMPS:
        fields[name] = provider_datetime(getattr(remote, name, None))
    if usage is not None:
        fields["input_tokens"] = usage.input_tokens
        fields["output_tokens"] = usage.output_tokens
        fields["cached_tokens"] = usage.input_tokens_details.cached_tokens if usage.input_tokens_details else 0
    return fields


def batch_apply_remote(*, batch: Batch, remote: Any) -> bool:
    """Record what the provider says about a batch. Returns True when anything changed."""
    current_rank = STATUS_RANK.get(batch.status, 0)
    if STATUS_RANK.get(remote.status, 0) < current_rank or (batch.is_terminal and remote.status != batch.status):
        return False  # stale: an older state than we already know
    fields = _remote_fields(remote)
    changed = {name: value for name, value in fields.items() if getattr(batch, name) != value}
    bookkeeping: dict[str, Any] = {"last_synced_at": timezone.now()}
    if batch.sync_failures or batch.sync_error or batch.next_sync_at:
        bookkeeping.update(sync_failures=0, sync_error="", next_sync_at=None)
    with transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(**changed, **bookkeeping)
        for name, value in {**changed, **bookkeeping}.items():
            setattr(batch, name, value)
        if batch.status in TERMINAL_STATUSES:
            _queue_results(batch)
    return bool(changed)


def _queue_results(batch: Batch) -> None:
    # The conditional update is the claim: however many syncs see the end, results are collected once.
    claimed = Batch.objects.filter(pk=batch.pk, results_state=ResultsState.NONE).update(
        results_state=ResultsState.QUEUED)
    if claimed:
        batch.results_state = ResultsState.QUEUED
        task_send_on_commit("jobs_app.batches.tasks.batch_results_collect_task", batch.pk)


def _back_off(batches: list[Batch], error: ProviderError) -> None:
    now = timezone.now()
    for batch in batches:
        failures = batch.sync_failures + 1
        delay = timedelta(seconds=poll_backoff_seconds(failures, error, base=BACKOFF_BASE.total_seconds(),
                                                       cap=BACKOFF_MAX.total_seconds()))
        Batch.objects.filter(pk=batch.pk).update(sync_failures=failures, sync_error=error.message[:1000],
                                                 next_sync_at=now + delay)


def batches_due(connection: ProviderConnection) -> list[Batch]:
    now = timezone.now()
    return list(Batch.objects.filter(connection=connection, status__in=ACTIVE_STATUSES).exclude(remote_id="")
                .filter(Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now)))


def _list_page(connection: ProviderConnection, after: str | None) -> Any:
    params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
    if after:
        params["after"] = after
    return provider_call(connection, lambda client: client.batches.list(**params))


def batches_sync_connection(*, connection: ProviderConnection) -> int:
    """One tick for one connection. Returns the number of provider calls made."""
    due = batches_due(connection)
    if not due:
        return 0
    wanted = {batch.remote_id: batch for batch in due}
    oldest = min(int((b.remote_created_at or b.created_at).timestamp()) for b in due)
    calls = 0
    after: str | None = None
    try:
        while wanted:
            calls += 1
            page = _list_page(connection, after)
            for remote in page.data:
                batch = wanted.pop(remote.id, None)
                if batch is not None:
                    batch_apply_remote(batch=batch, remote=remote)
            if not page.has_more or not page.data or page.data[-1].created_at < oldest:
                break
            after = page.data[-1].id
    except ProviderError as error:
        logger.info("batch sync for connection %s failed: %s", connection.pk, error.message)
        _back_off(list(wanted.values()), error)
        return calls
    # Not in the listing at all (deleted, or the provider pages differently): ask for each directly.
    for batch in wanted.values():
        calls += 1
        batch_sync_one(batch=batch)
    return calls


def batch_sync_one(*, batch: Batch) -> None:
    if not batch.remote_id:
        return
    remote_id = batch.remote_id
    try:
        remote = provider_call(batch.connection, lambda client: client.batches.retrieve(remote_id))
    except ProviderError as error:
        _back_off([batch], error)
        return
    batch_apply_remote(batch=batch, remote=remote)


def connections_with_active_batches() -> list[int]:
    return list(Batch.objects.filter(status__in=ACTIVE_STATUSES).exclude(remote_id="")
                .values_list("connection_id", flat=True).distinct().order_by("connection_id"))


def batch_webhook_received(connection: ProviderConnection, event: Any) -> None:
    """A batch.* webhook: sync that batch now (on a worker). Unknown batches are ignored."""
    remote_id = str(getattr(getattr(event, "data", None), "id", ""))
    batch = Batch.objects.filter(connection=connection, remote_id=remote_id).only("pk").first()
    if batch is None:
        return
    task_send_on_commit("jobs_app.batches.tasks.batch_sync_one_task", batch.pk)

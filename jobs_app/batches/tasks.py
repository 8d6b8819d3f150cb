"""Batch tasks: thin; each loads by id and calls a service."""

from __future__ import annotations

from celery import Task, shared_task
from django.contrib.auth.models import User

from jobs_app.batches import results, services, sync
from jobs_app.batches.models import Batch, BatchBuild, BatchGroup
from jobs_app.batches.uploads import batch_build_run
from project.providers.models import ProviderConnection
from project.workloads import CpuTask, IoTask


@shared_task(base=IoTask, name="jobs_app.batches.tasks.batch_group_submit_task")
def batch_group_submit_task(group_id: int, actor_id: int | None = None) -> None:
    group = BatchGroup.objects.select_related("team", "connection").filter(pk=group_id).first()
    if group is not None:
        actor = User.objects.filter(pk=actor_id).first() if actor_id else None
        services.batch_group_submit(group=group, actor=actor)


# A submit claims its parts, uploads their files and creates the batches: well within this.
SUBMIT_STALE_AFTER_SECONDS = 15 * 60


@shared_task(base=IoTask, name="jobs_app.batches.tasks.batches_sync_tick")
def batches_sync_tick() -> None:
    """Beat: one sync task per connection that has active batches; submits whose worker
    stopped are recovered."""
    for connection_id in sync.connections_with_active_batches():
        batches_sync_connection_task.delay(connection_id)
    services.batches_recover_interrupted_submits(stale_after_seconds=SUBMIT_STALE_AFTER_SECONDS)


# Idempotent: applying the same remote state twice changes nothing.
@shared_task(base=IoTask, acks_late=True, name="jobs_app.batches.tasks.batches_sync_connection_task")
def batches_sync_connection_task(connection_id: int) -> None:
    connection = ProviderConnection.objects.filter(pk=connection_id).first()
    if connection is not None:
        sync.batches_sync_connection(connection=connection)


@shared_task(base=IoTask, acks_late=True, name="jobs_app.batches.tasks.batch_sync_one_task")
def batch_sync_one_task(batch_id: int) -> None:
    batch = Batch.objects.select_related("connection").filter(pk=batch_id).first()
    if batch is not None:
        sync.batch_sync_one(batch=batch)


RESULTS_MAX_RETRIES = 5


# Idempotent (files are fetched once, the join overwrites), so acks_late; a passing provider
# failure is retried with back-off, the last failure is recorded on the batch.
@shared_task(bind=True, base=CpuTask, acks_late=True, max_retries=RESULTS_MAX_RETRIES,
             name="jobs_app.batches.tasks.batch_results_collect_task")
def batch_results_collect_task(self: Task, batch_id: int) -> None:
    batch = Batch.objects.select_related("team", "connection", "group").filter(pk=batch_id).first()
    if batch is None:
        return
    final = self.request.retries >= RESULTS_MAX_RETRIES
    retry_in = results.batch_results_collect(batch=batch, final_attempt=final)
    if retry_in is not None:
        raise self.retry(countdown=retry_in * (2 ** self.request.retries))


@shared_task(base=CpuTask, name="jobs_app.batches.tasks.batch_build_task")
def batch_build_task(build_id: int) -> None:
    build = BatchBuild.objects.select_related("team", "connection", "created_by").filter(pk=build_id).first()
    if build is not None:
        batch_build_run(build=build)

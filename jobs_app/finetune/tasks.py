"""Celery tasks for fine-tuning: thin, by id; the work is in services and sync."""

from __future__ import annotations

import logging

from celery import shared_task

from jobs_app.finetune import submissions
from jobs_app.finetune.models import Dataset, FineTuneJob
from jobs_app.finetune.services import dataset_validate, finetune_job_refresh
from jobs_app.finetune.sync import sync_all_connections, sync_connection
from project.providers.client import ProviderError
from project.providers.models import ProviderConnection
from project.workloads import CpuTask, IoTask

logger = logging.getLogger(__name__)


# Validation starts over from the first line, so running it twice is harmless.
@shared_task(base=CpuTask, acks_late=True, name="jobs_app.finetune.tasks.dataset_validate_task")
def dataset_validate_task(dataset_id: int) -> None:
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is not None:
        dataset_validate(dataset=dataset)


@shared_task(base=IoTask, name="jobs_app.finetune.tasks.finetune_sync_tick_task")
def finetune_sync_tick_task() -> dict[str, int]:
    return {str(pk): result.api_calls for pk, result in sync_all_connections().items()}


@shared_task(base=IoTask, name="jobs_app.finetune.tasks.finetune_sync_connection_task")
def finetune_sync_connection_task(connection_id: int) -> None:
    connection = ProviderConnection.objects.filter(pk=connection_id).first()
    if connection is not None:
        sync_connection(connection, force=True)


@shared_task(base=IoTask, name="jobs_app.finetune.tasks.finetune_job_refresh_task")
def finetune_job_refresh_task(job_id: int) -> None:
    job = FineTuneJob.objects.select_related("connection", "team", "created_by").filter(pk=job_id).first()
    if job is None:
        return
    try:
        finetune_job_refresh(job=job)
    except ProviderError as error:
        logger.info("refreshing fine-tune job %s: %s", job.remote_id, error.message)


# No acks_late: a redelivered submission is claimed by nobody (a conditional update), and
# one whose worker died is found by the sweep below.
@shared_task(base=IoTask, name="jobs_app.finetune.tasks.finetune_submission_run_task")
def finetune_submission_run_task(submission_id: int) -> None:
    submissions.finetune_submission_run(submission_id=submission_id)


# Longer than creating a job takes (uploading a large dataset included).
SUBMISSION_STALE_SECONDS = 15 * 60.0


@shared_task(base=IoTask, name="jobs_app.finetune.tasks.finetune_submissions_recover_task")
def finetune_submissions_recover_task() -> int:
    return submissions.finetune_submissions_recover(stale_after_seconds=SUBMISSION_STALE_SECONDS)

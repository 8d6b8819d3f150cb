"""Celery tasks for fine-tuning: thin, by id; the work is in services and sync."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache

from jobs_app.finetune.services import dataset_validate, finetune_job_refresh
from jobs_app.finetune.sync import sync_all_connections, sync_connection
from jobs_app.models_finetune import Dataset, FineTuneJob
from project.providers.client import ProviderError
from project.providers.models import ProviderConnection

logger = logging.getLogger(__name__)
REFRESH_THROTTLE_SECONDS = 2


# Validation starts over from the first line, so running it twice is harmless.
@shared_task(queue="cpu", acks_late=True)
def dataset_validate_task(dataset_id: int) -> None:
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is not None:
        dataset_validate(dataset=dataset)


@shared_task(queue="io")
def finetune_sync_tick_task() -> dict[str, int]:
    return {str(pk): result.api_calls for pk, result in sync_all_connections().items()}


@shared_task(queue="io")
def finetune_sync_connection_task(connection_id: int) -> None:
    connection = ProviderConnection.objects.filter(pk=connection_id).first()
    if connection is not None:
        sync_connection(connection, force=True)


@shared_task(queue="io")
def finetune_job_refresh_task(job_id: int) -> None:
    job = FineTuneJob.objects.select_related("connection", "team", "created_by").filter(pk=job_id).first()
    if job is None:
        return
    try:
        finetune_job_refresh(job=job)
    except ProviderError as error:
        logger.info("refreshing fine-tune job %s: %s", job.remote_id, error.message)


def enqueue_job_refresh(job_id: int) -> bool:
    """At most one refresh per job every few seconds, however many pages are watching it."""
    if not cache.add(f"finetune:refresh:{job_id}", 1, REFRESH_THROTTLE_SECONDS):
        return False
    finetune_job_refresh_task.delay(job_id)
    return True

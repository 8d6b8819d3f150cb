"""Writes for fine-tuning: datasets, jobs, and keeping jobs in step with the provider."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files import File as DjangoFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from jobs_app.finetune.models import (
    STATUS_RANK,
    TERMINAL_STATUSES,
    Dataset,
    DatasetStatus,
    FineTuneCheckpoint,
    FineTuneEvent,
    FineTuneJob,
    FineTuneMethod,
    JobStatus,
    MetricPoint,
)
from jobs_app.finetune.validation import bounded_lines, estimate_cost, validate_lines
from project.files.models import File, FilePurpose
from project.files.services import FileInUse, FileRejected, file_delete, file_fetch_remote, file_open, file_upload
from project.notifications.models import Notification
from project.notifications.services import notification_send
from project.providers.client import ProviderError, provider_call
from project.providers.models import ProviderConnection
from project.providers.timestamps import provider_datetime
from project.queue import task_send, task_send_on_commit
from project.spend.budgets import budget_reserve, reservation_release, reservation_rename
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature, Pricing
from project.teams.models import Team
from project.teams.services import audit_record

logger = logging.getLogger(__name__)

EVENTS_PAGE = 100
CHECKPOINTS_PAGE = 100
# OpenAI's event for a new checkpoint reads "Checkpoint created at step 10 with Snapshot ID: …".
CHECKPOINT_EVENT = "checkpoint created"
PROGRESS_EVERY_LINES = 2000


class FineTuneInputError(Exception):
    """Input we refuse before calling anyone; `message` is for the page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- datasets ------------------------------------------------------------------------------

def _spool(chunks: Iterable[bytes], name: str) -> tuple[IO[bytes], str, int, bytes]:
    digest = hashlib.sha256()
    size = 0
    head = b""
    limit = settings.FILES_MAX_BYTES
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller.
    for chunk in chunks:
        if len(head) < 64:
            head += chunk[:64]
        digest.update(chunk)
        size += len(chunk)
        if size > limit:
            spool.close()
            raise FineTuneInputError(f"{name} is larger than {limit // (1024 * 1024):,} MB, the most a provider "
                                     "accepts for a fine-tuning file. Split it, or keep fewer examples.")
        spool.write(chunk)
    spool.seek(0)
    return spool, digest.hexdigest(), size, head


def _dataset_save(*, team: Team, name: str, method: str, model_id: str, chunks: Iterable[bytes], actor: User | None,
                  is_validation: bool) -> Dataset:
    spool, sha256, size, head = _spool(chunks, name)
    with spool:
        if size == 0:
            raise FineTuneInputError(f"{name} is empty.")
        if not head.lstrip().startswith((b"{", b"[")):
            raise FineTuneInputError(f"{name} does not look like JSONL: each line must be a JSON object.")
        dataset = Dataset(team=team, name=name[:255], method=method, model_id=model_id, bytes=size, sha256=sha256,
                          is_validation=is_validation, created_by=actor)
        dataset.content.save(name, DjangoFile(spool), save=False)
        dataset.save()
    return dataset


def dataset_upload(*, team: Team, method: str, model_id: str, training_name: str, training_chunks: Iterable[bytes],
                   validation_name: str = "", validation_chunks: Iterable[bytes] | None = None,
                   actor: User | None) -> Dataset:
    """Keep the files here and queue their validation; nothing is sent to a provider yet."""
    if method not in FineTuneMethod.values:
        raise FineTuneInputError(f"Unknown fine-tuning method: {method}.")
    with transaction.atomic():
        dataset = _dataset_save(team=team, name=training_name, method=method, model_id=model_id,
                                chunks=training_chunks, actor=actor, is_validation=False)
        if validation_chunks is not None:
            dataset.validation_dataset = _dataset_save(team=team, name=validation_name, method=method, model_id=model_id,
                                                       chunks=validation_chunks, actor=actor, is_validation=True)
            dataset.save(update_fields=["validation_dataset"])
        audit_record(team=team, actor=actor, action="finetune.dataset_uploaded", target=dataset.name, method=method)
        ids = [dataset.pk] + ([dataset.validation_dataset.pk] if dataset.validation_dataset else [])
        for dataset_id in ids:
            task_send_on_commit("jobs_app.finetune.tasks.dataset_validate_task", dataset_id)
    return dataset


def dataset_validate(*, dataset: Dataset) -> Dataset:
    """Stream the file line by line, saving progress as we go, then the report."""
    Dataset.objects.filter(pk=dataset.pk).update(status=DatasetStatus.VALIDATING, bytes_read=0)

    def progress(lines: int, bytes_read: int) -> None:
        Dataset.objects.filter(pk=dataset.pk).update(bytes_read=bytes_read)

    try:
        with dataset.content.open("rb") as stream:
            report = validate_lines(bounded_lines(stream), method=dataset.method, model_id=dataset.model_id,
                                    is_validation=dataset.is_validation, on_progress=progress,
                                    progress_every=PROGRESS_EVERY_LINES)
    except OSError as error:
        # A verdict either way, so the page stops waiting; the stored file is kept for another try.
        logger.warning("could not read dataset %s: %s", dataset.pk, error)
        report = {"valid": False, "errors": [{"line": 0, "kind": "unreadable", "detail": "The stored file could not be read."}],
                  "error_counts": {"unreadable": 1}, "errors_listed": 1, "errors_total": 1}
    dataset.report = report
    dataset.bytes_read = dataset.bytes
    dataset.status = DatasetStatus.VALID if report["valid"] else DatasetStatus.INVALID
    dataset.save(update_fields=["report", "bytes_read", "status"])
    return dataset


def dataset_estimate(*, dataset: Dataset, model_id: str, n_epochs: int | None) -> Any:
    report = dataset.report or {}
    return estimate_cost(examples=int(report.get("examples", 0)), billable_tokens=int(report.get("billable_tokens", 0)),
                         model_id=model_id, n_epochs=n_epochs)


# -- jobs ----------------------------------------------------------------------------------

def _chunks(dataset: Dataset) -> Iterator[bytes]:
    with dataset.content.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            yield chunk


def finetune_job_create(
    *,
    team: Team,
    connection: ProviderConnection,
    dataset: Dataset,
    validation_dataset: Dataset | None,
    base_model: str,
    method: str,
    hyperparameters: dict[str, Any],
    suffix: str,
    seed: int | None,
    metadata: dict[str, str],
    actor: User | None,
    reservation_key: str = "",
) -> FineTuneJob:
    """Send the validated files, create the job, record it. Raises FineTuneInputError,
    FileRejected or ProviderError; the job row exists only if the provider made the job.
    People's requests reach it through a worker (jobs_app.finetune.submissions), which
    passes the budget reservation made when the request was accepted (`reservation_key`):
    released when the provider refuses, moved onto the job when it is made."""
    try:
        check_job_datasets(team=team, dataset=dataset, validation_dataset=validation_dataset, method=method)
    except FineTuneInputError:
        reservation_release(key=reservation_key)
        raise
    chosen = {k: v for k, v in hyperparameters.items() if v not in (None, "", "auto")}
    started = timezone.now()
    uploaded: list[File] = []
    try:
        training = file_upload(team=team, connection=connection, purpose=FilePurpose.FINE_TUNE, name=dataset.name,
                               chunks=_chunks(dataset), actor=actor)
        uploaded.append(training)
        validation = None
        if validation_dataset is not None:
            validation = file_upload(team=team, connection=connection, purpose=FilePurpose.FINE_TUNE,
                                     name=validation_dataset.name, chunks=_chunks(validation_dataset), actor=actor)
            uploaded.append(validation)
        kwargs: dict[str, Any] = {
            "model": base_model,
            "training_file": training.remote_id,
            "method": {"type": method, method: {"hyperparameters": chosen}},
        }
        if validation is not None:
            kwargs["validation_file"] = validation.remote_id
        if suffix:
            kwargs["suffix"] = suffix
        if seed is not None:
            kwargs["seed"] = seed
        if metadata:
            kwargs["metadata"] = metadata
        remote = provider_call(connection, lambda client: client.fine_tuning.jobs.create(**kwargs))
    except (ProviderError, FileRejected):
        reservation_release(key=reservation_key)
        _discard_fresh_uploads(team=team, files=uploaded, since=started, actor=actor)
        raise
    return finetune_job_record(team=team, connection=connection, remote=remote, dataset=dataset, actor=actor,
                               n_epochs=chosen.get("n_epochs"), reservation_key=reservation_key)


def finetune_budget_reserve(*, team: Team, connection: ProviderConnection, dataset: Dataset, base_model: str,
                            hyperparameters: dict[str, Any], key: str) -> None:
    """Refuse (BudgetExceeded) a job a used-up hard limit forbids, before anything is sent,
    and hold its estimated training cost until the job's ledger row settles it."""
    n_epochs = hyperparameters.get("n_epochs") if hyperparameters.get("n_epochs") not in (None, "", "auto") else None
    estimate = dataset_estimate(dataset=dataset, model_id=base_model, n_epochs=n_epochs)
    budget_reserve(team=team, connection_id=connection.pk, key=key, amount=estimate.cost_usd or Decimal(0),
                   what="this fine-tuning job", hours=FINETUNE_RESERVATION_HOURS)


def check_job_datasets(*, team: Team, dataset: Dataset, validation_dataset: Dataset | None, method: str) -> None:
    if dataset.team_id != team.pk or dataset.status != DatasetStatus.VALID:
        raise FineTuneInputError("The training dataset has not passed validation.")
    if dataset.method != method:
        raise FineTuneInputError(f"The dataset was validated for {dataset.get_method_display()}, not {method}.")
    if validation_dataset is not None and (validation_dataset.status != DatasetStatus.VALID
                                           or validation_dataset.method != method):
        raise FineTuneInputError("The validation dataset has not passed validation for this method.")


def finetune_job_record(*, team: Team, connection: ProviderConnection, remote: Any, dataset: Dataset,
                        actor: User | None, n_epochs: Any = None, adopted: bool = False,
                        reservation_key: str = "") -> FineTuneJob:
    """Start tracking a job the provider made for one of the team's datasets: just now,
    or (adopted) by an attempt whose worker died before it could record it."""
    estimate = dataset_estimate(dataset=dataset, model_id=str(remote.model), n_epochs=n_epochs)
    with transaction.atomic():
        job = FineTuneJob(team=team, connection=connection, remote_id=remote.id, dataset=dataset, created_by=actor,
                          estimated_cost_usd=estimate.cost_usd)
        _copy_remote(job, remote)
        job.save()
        if reservation_key:
            reservation_rename(key=reservation_key, new_key=finetune_reservation_key(job.pk))
        audit_record(team=team, actor=actor, action="finetune.job_adopted" if adopted else "finetune.job_created",
                     target=remote.id, model=job.base_model)
    return job


def _discard_fresh_uploads(*, team: Team, files: list[File], since: datetime, actor: User | None) -> None:
    """The provider refused the job: files sent for it in this attempt are deleted again,
    so nothing half-made is left. Files that were already in the library stay."""
    for record in files:
        if record.created_at < since:
            continue
        try:
            file_delete(team=team, file=record, actor=actor)
        except (ProviderError, FileInUse) as error:
            logger.warning("could not remove %s after a refused job: %s", record.remote_id, error)


def _copy_remote(job: FineTuneJob, remote: Any) -> bool:
    """Copy the provider's view onto the row. An earlier stage never overwrites a later one,
    so a late or replayed report changes nothing. Returns whether anything changed."""
    before = (job.status, job.trained_tokens, job.fine_tuned_model, job.error, job.estimated_finish, job.finished_at)
    status = str(remote.status)
    stale = job.is_terminal or STATUS_RANK.get(status, 0) < STATUS_RANK.get(job.status, 0)
    if job.pk is not None and stale and status != job.status:
        return False  # a stale report: the job is already past it
    job.status = status
    job.base_model = remote.model
    method = getattr(remote, "method", None)
    job.method = getattr(method, "type", None) or job.method or FineTuneMethod.SUPERVISED
    method_hyper = getattr(getattr(method, job.method, None), "hyperparameters", None) if method else None
    hyper = method_hyper or getattr(remote, "hyperparameters", None)
    if hyper is not None:
        job.hyperparameters = hyper.model_dump(exclude_none=True) if hasattr(hyper, "model_dump") else dict(hyper)
    job.suffix = getattr(remote, "user_provided_suffix", None) or job.suffix or ""
    job.seed = remote.seed
    job.metadata = dict(remote.metadata or {})
    job.trained_tokens = remote.trained_tokens
    job.fine_tuned_model = remote.fine_tuned_model or ""
    error = remote.error
    job.error = error.model_dump(exclude_none=True) if error is not None and getattr(error, "message", None) else None
    job.estimated_finish = provider_datetime(remote.estimated_finish)
    job.remote_created_at = provider_datetime(remote.created_at)
    job.finished_at = provider_datetime(remote.finished_at)
    job.training_file_remote_id = remote.training_file or ""
    job.validation_file_remote_id = remote.validation_file or ""
    job.synced_at = timezone.now()
    return before != (job.status, job.trained_tokens, job.fine_tuned_model, job.error, job.estimated_finish,
                      job.finished_at)


# What _copy_remote writes, for bulk updates.
REMOTE_FIELDS = ["status", "base_model", "method", "hyperparameters", "suffix", "seed", "metadata", "trained_tokens",
                 "fine_tuned_model", "error", "estimated_finish", "remote_created_at", "finished_at",
                 "training_file_remote_id", "validation_file_remote_id", "synced_at"]


def finetune_jobs_apply(*, pairs: list[tuple[FineTuneJob, Any]]) -> list[FineTuneJob]:
    """Many jobs at once (a sync tick): one bulk write for the changed ones; the ended ones are finalized."""
    changed = [(job, remote) for job, remote in pairs if _copy_remote(job, remote)]
    FineTuneJob.objects.bulk_update([job for job, _ in changed], REMOTE_FIELDS, batch_size=500)
    for job, remote in changed:
        if job.is_terminal:
            finetune_job_finalize(job=job, remote=remote)
    return [job for job, _ in changed]


def finetune_job_apply(*, job: FineTuneJob, remote: Any) -> bool:
    """Save the provider's view of a job; finish it (once) when it ended. Returns whether it changed."""
    changed = _copy_remote(job, remote)
    if changed:
        job.save()
    if job.is_terminal:
        finetune_job_finalize(job=job, remote=remote)
    return changed


def finetune_job_retrieve(job: FineTuneJob) -> Any:
    """The provider's view of one job (ProviderNotFound when it no longer has it)."""
    return provider_call(job.connection, lambda client: client.fine_tuning.jobs.retrieve(job.remote_id))


def finetune_job_refresh(*, job: FineTuneJob) -> FineTuneJob:
    """Fetch one job, its new events and checkpoints. For webhooks and the job page."""
    remote = finetune_job_retrieve(job)
    finetune_job_apply(job=job, remote=remote)
    finetune_job_sync_events(job=job)
    if job.status in (JobStatus.RUNNING, JobStatus.PAUSED) or job.is_terminal:
        finetune_job_sync_checkpoints(job=job)
    return job


def finetune_job_sync_events(*, job: FineTuneJob) -> int:
    """Fetch events newer than the last one seen (the API lists newest first). Returns calls made."""
    calls = 0
    after: str | None = None
    fresh: list[Any] = []
    while True:
        cursor = after

        def list_page(client: Any, cursor: str | None = cursor) -> Any:
            return client.fine_tuning.jobs.list_events(job.remote_id, limit=EVENTS_PAGE,
                                                       **({"after": cursor} if cursor else {}))

        page = provider_call(job.connection, list_page)
        calls += 1
        reached_seen = False
        for event in page.data:
            if event.id == job.last_event_id:
                reached_seen = True
                break
            fresh.append(event)
        if reached_seen or not page.has_more or not page.data:
            break
        after = page.data[-1].id
    if not fresh:
        FineTuneJob.objects.filter(pk=job.pk).update(events_synced_at=timezone.now())
        return calls
    # Stored oldest first, so rows of the same second keep their order.
    rows = [FineTuneEvent(job=job, remote_id=e.id, created_at=provider_datetime(e.created_at) or timezone.now(), level=e.level,
                          message=e.message, type=getattr(e, "type", None) or "message",
                          data=_event_data(e)) for e in reversed(fresh)]
    metrics = [_metric_from(job, row.data) for row in rows if row.type == "metrics" and isinstance(row.data, dict)]
    with transaction.atomic():
        FineTuneEvent.objects.bulk_create(rows, ignore_conflicts=True)
        if metrics:
            MetricPoint.objects.bulk_create(metrics, ignore_conflicts=True)
        newest = fresh[0]
        update: dict[str, Any] = {"last_event_id": newest.id, "events_synced_at": timezone.now()}
        latest_step = max((m for m in (r.data for r in rows if r.type == "metrics") if isinstance(m, dict)),
                          key=lambda data: int(data.get("step", 0)), default=None)
        if latest_step is not None:
            update["step"] = int(latest_step.get("step", 0))
            update["total_steps"] = int(latest_step.get("total_steps", 0) or job.total_steps)
        FineTuneJob.objects.filter(pk=job.pk).update(**update)
    job.last_event_id = newest.id
    job.step = update.get("step", job.step)
    job.total_steps = update.get("total_steps", job.total_steps)
    if any(CHECKPOINT_EVENT in row.message.lower() for row in rows):
        # The events would list a checkpoint the page's checkpoint card does not have yet.
        finetune_job_sync_checkpoints(job=job)
        calls += 1
    return calls


def _event_data(event: Any) -> Any:
    data = getattr(event, "data", None)
    if data is None:
        return None
    return data if isinstance(data, dict | list) else getattr(data, "__dict__", None)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _metric_from(job: FineTuneJob, data: dict[str, Any]) -> MetricPoint:
    return MetricPoint(job=job, step=int(data.get("step", 0)), train_loss=_float(data.get("train_loss")),
                       train_accuracy=_float(data.get("train_mean_token_accuracy")),
                       valid_loss=_float(data.get("valid_loss")),
                       valid_accuracy=_float(data.get("valid_mean_token_accuracy")))


def finetune_job_sync_checkpoints(*, job: FineTuneJob) -> None:
    page = provider_call(job.connection, lambda client: client.fine_tuning.jobs.checkpoints.list(
        job.remote_id, limit=CHECKPOINTS_PAGE))
    rows = [FineTuneCheckpoint(job=job, remote_id=c.id, step=c.step_number, model_name=c.fine_tuned_model_checkpoint,
                               metrics=c.metrics.model_dump(exclude_none=True) if c.metrics else {},
                               created_at=provider_datetime(c.created_at) or timezone.now()) for c in page.data]
    FineTuneCheckpoint.objects.bulk_create(rows, ignore_conflicts=True)


def _metrics_from_result_file(job: FineTuneJob, remote_file_id: str) -> None:
    record = file_fetch_remote(team=job.team, connection=job.connection, remote_id=remote_file_id)
    FineTuneJob.objects.filter(pk=job.pk).update(result_file=record)
    job.result_file = record
    points = []
    with file_open(file=record) as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            step = _float(row.get("step"))
            if step is None:
                continue
            points.append(MetricPoint(
                job=job, step=int(step), train_loss=_float(row.get("train_loss")),
                train_accuracy=_float(row.get("train_accuracy") or row.get("train_mean_token_accuracy")),
                valid_loss=_float(row.get("valid_loss")),
                valid_accuracy=_float(row.get("valid_mean_token_accuracy") or row.get("valid_accuracy")),
            ))
    # The result file is the full record: it fills the steps the events skipped.
    MetricPoint.objects.bulk_create(points, update_conflicts=True, unique_fields=["job", "step"],
                                    update_fields=["train_loss", "train_accuracy", "valid_loss", "valid_accuracy"])


def finetune_job_finalize(*, job: FineTuneJob, remote: Any) -> bool:
    """Once per job: fetch the last events, checkpoints and result file (idempotent, so a
    concurrent finisher doing it too is harmless), then claim the job's end with a
    conditional update and announce it in the same transaction: exactly once."""
    if FineTuneJob.objects.filter(pk=job.pk, finalized_at__isnull=False).exists():
        return False
    try:
        finetune_job_sync_events(job=job)
        if job.status == JobStatus.SUCCEEDED:
            finetune_job_sync_checkpoints(job=job)
            result_files = list(getattr(remote, "result_files", None) or [])
            if result_files:
                _metrics_from_result_file(job, result_files[0])
    except ProviderError as error:
        # The end is announced regardless; what is missing is fetched when the job page is opened.
        logger.warning("finishing fine-tune job %s: %s", job.remote_id, error.message)
    with transaction.atomic():
        now = timezone.now()
        if not FineTuneJob.objects.filter(pk=job.pk, finalized_at__isnull=True).update(finalized_at=now):
            return False
        job.finalized_at = now
        finetune_spend_record(job=job)
        notification_for_job_end(job=job)
    return True


# A training run may take days; a job that never reports stops holding budget after a week.
FINETUNE_RESERVATION_HOURS = 24.0 * 7


def finetune_reservation_key(job_id: int) -> str:
    return f"finetune_job:{job_id}"


def finetune_spend_record(*, job: FineTuneJob) -> None:
    """Training is billed on the tokens trained (a failed or cancelled job pays for those it
    trained): one ledger row per job, at the base model's training price. Also settles the
    job's budget reservation. The row outlives the job."""
    person = job.created_by
    if not job.trained_tokens:
        reservation_release(key=finetune_reservation_key(job.pk))
        return
    spend_record(SpendLine(
        team_id=job.team_id, feature=Feature.FINE_TUNING, model=job.base_model, source_kind="finetune_job",
        source_id=job.pk, source_label=job.fine_tuned_model or job.remote_id, key=f"finetune_job:{job.pk}",
        connection_id=job.connection_id, connection_name=job.connection.name,
        person_id=person.pk if person else None, person_name=person.get_username() if person else "",
        trained_tokens=job.trained_tokens, pricing=Pricing.TRAINING, occurred_at=job.finished_at,
        settles=finetune_reservation_key(job.pk)))


def finetune_job_end_missing(*, job: FineTuneJob, reason: str) -> bool:
    """The provider no longer knows the job: end it as failed with the reason, once, and
    tell the team. False when it had already ended."""
    now = timezone.now()
    with transaction.atomic():
        ended = FineTuneJob.objects.filter(pk=job.pk, finalized_at__isnull=True).exclude(
            status__in=TERMINAL_STATUSES).update(status=JobStatus.FAILED, finished_at=now, finalized_at=now,
                                                 error={"code": "not_found", "message": reason[:1000]})
        if not ended:
            return False
        job.refresh_from_db()
        notification_for_job_end(job=job)
    return True


def notification_for_job_end(*, job: FineTuneJob) -> Notification:
    words: dict[str, str] = {JobStatus.SUCCEEDED: "succeeded", JobStatus.FAILED: "failed", JobStatus.CANCELLED: "was cancelled"}
    text = f"Fine-tuning job {job.remote_id} ({job.base_model}) {words.get(job.status, job.status)}"
    if job.status == JobStatus.SUCCEEDED and job.fine_tuned_model:
        text += f": {job.fine_tuned_model}"
    elif job.error_message:
        text += f": {job.error_message}"
    return notification_send(team=job.team, text=text, link=reverse("finetune_job_detail", args=[job.pk]),
                             email_to=job.created_by)


def finetune_job_action(*, job: FineTuneJob, action: str, actor: User | None) -> FineTuneJob:
    """cancel, pause or resume on the provider; the reply becomes the job's state."""
    if action not in ("cancel", "pause", "resume"):
        raise FineTuneInputError(f"Unknown action: {action}.")
    if job.is_terminal:
        raise FineTuneInputError(f"The job has already {job.get_status_display().lower()}.")
    remote = provider_call(job.connection, lambda client: getattr(client.fine_tuning.jobs, action)(job.remote_id))
    finetune_job_apply(job=job, remote=remote)
    audit_record(team=job.team, actor=actor, action=f"finetune.job_{action}", target=job.remote_id)
    return job


def finetune_jobs_import(*, team: Team, connection: ProviderConnection, remote_ids: list[str],
                         actor: User | None) -> list[FineTuneJob]:
    """Start tracking jobs made elsewhere. Already tracked ones are left as they are."""
    known = set(FineTuneJob.objects.filter(connection=connection, remote_id__in=remote_ids)
                .values_list("remote_id", flat=True))
    imported = []
    for remote_id in remote_ids:
        if remote_id in known:
            continue
        remote = provider_call(connection, lambda client, rid=remote_id: client.fine_tuning.jobs.retrieve(rid))  # type: ignore[misc]
        job = FineTuneJob(team=team, connection=connection, remote_id=remote.id, created_by=None)
        _copy_remote(job, remote)
        job.save()
        if job.is_terminal:
            # Old news: bring in its history, without announcing an end that happened elsewhere.
            FineTuneJob.objects.filter(pk=job.pk).update(finalized_at=timezone.now())
            job.refresh_from_db()
        imported.append(job)
    if imported:
        audit_record(team=team, actor=actor, action="finetune.jobs_imported", target=connection.name,
                     count=len(imported))
    return imported


REFRESH_THROTTLE_SECONDS = 2


def finetune_job_refresh_enqueue(*, job_id: int) -> bool:
    """At most one refresh per job every few seconds, however many pages are watching it."""
    if not cache.add(f"finetune:refresh:{job_id}", 1, REFRESH_THROTTLE_SECONDS):
        return False
    task_send("jobs_app.finetune.tasks.finetune_job_refresh_task", job_id)
    return True


LIST_SYNC_THROTTLE_SECONDS = 5


def finetune_sync_watched(*, team: Team) -> None:
    """While someone watches the job list, keep its active jobs moving between beat
    ticks: one list call per connection, at most every few seconds."""
    connection_ids = (FineTuneJob.objects.filter(team=team).exclude(status__in=TERMINAL_STATUSES)
                      .values_list("connection_id", flat=True).distinct())
    for connection_id in connection_ids:
        if cache.add(f"finetune:list-sync:{connection_id}", 1, LIST_SYNC_THROTTLE_SECONDS):
            task_send("jobs_app.finetune.tasks.finetune_sync_connection_task", connection_id)

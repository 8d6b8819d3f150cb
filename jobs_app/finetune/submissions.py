"""Creating a fine-tuning job, as a worker does it.

Creating a job uploads the datasets and asks the provider for the job: slow, and a
paid job is made half-way through. In the web request, a process killed after the
provider made the job left it untracked, and the person's retry made a second one.
So the request only records a FineTuneSubmission; a worker does the rest, sending a
marker (the submission's own, random) in the job's metadata. A submission whose worker
died is found by the recovery sweep: a job the provider made with its marker is
adopted (as batches adopt a part made by a submit that died); otherwise the
submission is sent again, or failed with a reason once its attempts are used up.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs_app.finetune.models import FineTuneJob, FineTuneSubmission, SubmissionStatus
from jobs_app.finetune.services import (
    FineTuneInputError,
    check_job_datasets,
    finetune_budget_reserve,
    finetune_job_create,
    finetune_job_record,
)
from project.files.services import FileRejected
from project.providers.client import ProviderError, provider_call
from project.providers.models import ProviderConnection
from project.queue import task_send
from project.spend.budgets import reservation_release
from project.teams.models import Team
from project.teams.services import audit_record
from project.workloads import BROKER_ERRORS

logger = logging.getLogger(__name__)

# The metadata key the marker travels under (the provider allows 16 keys; the form leaves room).
MARKER_KEY = "switchboard_submission"
MAX_ATTEMPTS = 2
INTERRUPTED = "Creating the job was interrupted twice (its worker stopped) and the provider has no job for it. Try again."
TASK = "jobs_app.finetune.tasks.finetune_submission_run_task"


def submission_reservation_key(marker: str) -> str:
    """The budget reservation of a requested job, until the job exists (then its own key)."""
    return f"finetune_submission:{marker}"


def finetune_submission_create(*, team: Team, connection: ProviderConnection, dataset: Any, validation_dataset: Any,
                               base_model: str, method: str, hyperparameters: dict[str, Any], suffix: str,
                               seed: int | None, metadata: dict[str, str], actor: User | None) -> FineTuneSubmission:
    """Record the request and hand it to a worker. Refuses (FineTuneInputError) what the
    worker would refuse, so the person hears it now."""
    check_job_datasets(team=team, dataset=dataset, validation_dataset=validation_dataset, method=method)
    marker = uuid.uuid4().hex
    with transaction.atomic():
        finetune_budget_reserve(team=team, connection=connection, dataset=dataset, base_model=base_model,
                                hyperparameters=hyperparameters, key=submission_reservation_key(marker))
        submission = FineTuneSubmission.objects.create(
            team=team, connection=connection, dataset=dataset, validation_dataset=validation_dataset,
            base_model=base_model, method=method, hyperparameters=hyperparameters, suffix=suffix, seed=seed,
            metadata=metadata, marker=marker, created_by=actor, attempt_at=timezone.now())
        audit_record(team=team, actor=actor, action="finetune.job_requested", target=str(submission.pk),
                     model=base_model)
        transaction.on_commit(lambda: _dispatch(submission.pk))
    return submission


def _dispatch(submission_id: int) -> bool:
    """Send the submission to a worker; False when the broker is down (the sweep sends it later)."""
    try:
        task_send(TASK, submission_id)
    except BROKER_ERRORS as error:
        logger.warning("fine-tune submission %s not sent to a worker yet (%s); the sweep will", submission_id, error)
        return False
    return True


def finetune_submission_run(*, submission_id: int) -> FineTuneSubmission | None:
    """A worker carries the submission out. The claim is a conditional update, so a task
    delivered twice does the work once; an attempt after one that died first looks for
    the job that attempt may have made."""
    claimed = FineTuneSubmission.objects.filter(pk=submission_id, status=SubmissionStatus.QUEUED).update(
        status=SubmissionStatus.CREATING, attempts=F("attempts") + 1, attempt_at=timezone.now())
    if not claimed:
        return None
    submission = FineTuneSubmission.objects.select_related(
        "team", "connection", "dataset", "validation_dataset", "created_by").get(pk=submission_id)
    try:
        if submission.attempts > 1:
            made = _made_remotely(submission.connection, {submission.marker}).get(submission.marker)
            if made is not None:
                _adopt(submission, made)
                return submission
        job = finetune_job_create(
            team=submission.team, connection=submission.connection, dataset=submission.dataset,
            validation_dataset=submission.validation_dataset, base_model=submission.base_model,
            method=submission.method, hyperparameters=submission.hyperparameters, suffix=submission.suffix,
            seed=submission.seed, metadata={**submission.metadata, MARKER_KEY: submission.marker},
            actor=submission.created_by, reservation_key=submission_reservation_key(submission.marker))
    except (FineTuneInputError, FileRejected, ProviderError) as error:
        FineTuneSubmission.objects.filter(pk=submission.pk, status=SubmissionStatus.CREATING).update(
            status=SubmissionStatus.FAILED, error=getattr(error, "message", None) or str(error))
        return submission
    _link(submission, job)
    return submission


def _link(submission: FineTuneSubmission, job: FineTuneJob) -> None:
    # Whatever the sweep decided meanwhile: the job exists, so the submission is it.
    FineTuneSubmission.objects.filter(pk=submission.pk).update(status=SubmissionStatus.CREATED, job=job, error="")


def _adopt(submission: FineTuneSubmission, remote: Any) -> FineTuneJob:
    """Track a job the provider made for this submission (its worker died before saying so)."""
    job = FineTuneJob.objects.filter(connection=submission.connection, remote_id=remote.id).first()
    if job is None:
        try:
            job = finetune_job_record(team=submission.team, connection=submission.connection, remote=remote,
                                      dataset=submission.dataset, actor=submission.created_by,
                                      n_epochs=submission.hyperparameters.get("n_epochs"), adopted=True,
                                      reservation_key=submission_reservation_key(submission.marker))
        except IntegrityError:  # recorded by the attempt that made it, a moment ago
            job = FineTuneJob.objects.get(connection=submission.connection, remote_id=remote.id)
    _link(submission, job)
    return job


def _made_remotely(connection: ProviderConnection, markers: set[str]) -> dict[str, Any]:
    """The provider's recent jobs that carry one of these markers, by marker."""
    page = provider_call(connection, lambda client: client.fine_tuning.jobs.list(limit=100))
    found: dict[str, Any] = {}
    for remote in page.data:
        marker = (remote.metadata or {}).get(MARKER_KEY)
        if marker in markers:
            found[marker] = remote
    return found


def finetune_submissions_recover(*, stale_after_seconds: float) -> int:
    """Submissions nobody is carrying out: queued with no worker taking them (the broker
    was down), or creating for longer than an attempt takes (the worker died). A job the
    provider made with the marker is adopted; otherwise the submission is sent again,
    or failed with a reason after MAX_ATTEMPTS. Returns how many were dealt with."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_seconds)
    stale = list(FineTuneSubmission.objects.filter(
        Q(status=SubmissionStatus.QUEUED) | Q(status=SubmissionStatus.CREATING), attempt_at__lt=cutoff)
        .select_related("team", "connection", "dataset", "created_by"))
    dealt = 0
    for connection_id in {submission.connection_id for submission in stale}:
        mine = [submission for submission in stale if submission.connection_id == connection_id]
        try:
            made = _made_remotely(mine[0].connection, {submission.marker for submission in mine})
        except ProviderError as error:
            # Not knowing what the provider made, sending again could make a second job: next tick.
            logger.info("interrupted fine-tune submissions on connection %s: %s", connection_id, error.message)
            continue
        for submission in mine:
            dealt += _recover_one(submission, made.get(submission.marker), cutoff)
    return dealt


def _recover_one(submission: FineTuneSubmission, remote: Any, cutoff: Any) -> int:
    if remote is not None:
        _adopt(submission, remote)
        return 1
    pending = FineTuneSubmission.objects.filter(pk=submission.pk, status=submission.status, attempt_at__lt=cutoff)
    if submission.status == SubmissionStatus.CREATING and submission.attempts >= MAX_ATTEMPTS:
        reservation_release(key=submission_reservation_key(submission.marker))
        return pending.update(status=SubmissionStatus.FAILED, error=INTERRUPTED)
    if pending.update(status=SubmissionStatus.QUEUED, attempt_at=timezone.now()):
        _dispatch(submission.pk)
        return 1
    return 0

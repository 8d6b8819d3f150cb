"""Job creation through a worker, with a marker in the job's metadata: a worker that
dies after the provider made the job leaves a job the sweep adopts, never a second one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs_app.finetune import services, submissions
from jobs_app.finetune.models import FineTuneJob, FineTuneSubmission, SubmissionStatus
from jobs_app.finetune.submissions import MARKER_KEY, finetune_submission_create, finetune_submission_run
from project.providers.client import provider_call
from tests.factories import make_dataset
from tests.jobs_app.finetune.conftest import sandbox_connection

pytestmark = pytest.mark.django_db


class WorkerDied(BaseException):
    """What a SIGKILL does to the code after it: nothing more runs (not an Exception, so no handler runs)."""


def _submit(team, owner, connection) -> FineTuneSubmission:
    return finetune_submission_create(team=team, connection=connection, dataset=make_dataset(team),
                                      validation_dataset=None, base_model="gpt-4.1-mini", method="supervised",
                                      hyperparameters={}, suffix="", seed=None, metadata={"project": "tests"},
                                      actor=owner)


def _remote_jobs_with(connection, marker: str) -> list[str]:
    page = provider_call(connection, lambda client: client.fine_tuning.jobs.list(limit=100))
    return [job.id for job in page.data if (job.metadata or {}).get(MARKER_KEY) == marker]


def _age(submission: FineTuneSubmission) -> None:
    FineTuneSubmission.objects.filter(pk=submission.pk).update(attempt_at=timezone.now() - timedelta(hours=1))


def test_a_job_made_by_a_worker_that_died_before_recording_it_is_adopted_once(team, owner, sandbox_url,
                                                                            monkeypatch) -> None:
    connection = sandbox_connection(team, sandbox_url)
    submission = _submit(team, owner, connection)

    def died(**kwargs: object) -> None:
        raise WorkerDied()

    with monkeypatch.context() as patched:  # the provider has made the job; the worker dies before recording it
        patched.setattr(services, "finetune_job_record", died)
        with pytest.raises(WorkerDied):
            finetune_submission_run(submission_id=submission.pk)
    assert not FineTuneJob.objects.exists()
    assert len(_remote_jobs_with(connection, submission.marker)) == 1

    _age(submission)
    assert submissions.finetune_submissions_recover(stale_after_seconds=60) == 1
    job = FineTuneJob.objects.get(team=team)
    assert job.remote_id == _remote_jobs_with(connection, submission.marker)[0]
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.CREATED and submission.job == job
    # Nothing left to recover, and the provider still has one job for it.
    assert submissions.finetune_submissions_recover(stale_after_seconds=60) == 0
    assert len(_remote_jobs_with(connection, submission.marker)) == 1 and FineTuneJob.objects.count() == 1


def test_a_submission_whose_worker_died_before_the_provider_made_the_job_is_made_once(team, owner, sandbox_url,
                                                                                     monkeypatch) -> None:
    connection = sandbox_connection(team, sandbox_url)
    submission = _submit(team, owner, connection)
    sent: list[int] = []
    monkeypatch.setattr(submissions, "_dispatch", sent.append)
    # Claimed, then the worker died while uploading.
    FineTuneSubmission.objects.filter(pk=submission.pk).update(status=SubmissionStatus.CREATING, attempts=1)
    _age(submission)
    assert submissions.finetune_submissions_recover(stale_after_seconds=60) == 1
    assert sent == [submission.pk]
    finetune_submission_run(submission_id=submission.pk)
    finetune_submission_run(submission_id=submission.pk)  # a duplicate delivery does nothing
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.CREATED and submission.attempts == 2
    assert len(_remote_jobs_with(connection, submission.marker)) == 1 and FineTuneJob.objects.count() == 1


def test_a_submission_interrupted_on_every_attempt_fails_with_the_reason(team, owner, sandbox_url) -> None:
    connection = sandbox_connection(team, sandbox_url)
    submission = _submit(team, owner, connection)
    FineTuneSubmission.objects.filter(pk=submission.pk).update(status=SubmissionStatus.CREATING, attempts=2)
    _age(submission)
    assert submissions.finetune_submissions_recover(stale_after_seconds=60) == 1
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.FAILED and "interrupted twice" in submission.error


def test_a_provider_refusal_is_shown_on_the_list(team, owner, owner_client, sandbox_url) -> None:
    connection = sandbox_connection(team, sandbox_url)
    submission = finetune_submission_create(team=team, connection=connection, dataset=make_dataset(team),
                                            validation_dataset=None, base_model="no-such-model", method="supervised",
                                            hyperparameters={}, suffix="", seed=None, metadata={}, actor=owner)
    finetune_submission_run(submission_id=submission.pk)
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.FAILED and submission.error
    assert "not created: " in owner_client.get("/fine-tuning/").content.decode()

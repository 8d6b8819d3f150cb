"""Job lifecycle against the sandbox over real HTTP: succeeded, failed validation,
cancelled, paused and resumed; the end is announced once."""

from __future__ import annotations

import time

import openai
import pytest

from jobs_app.finetune.models import FineTuneJob, JobStatus, MetricPoint
from jobs_app.finetune.services import (
    FineTuneInputError,
    _copy_remote,
    finetune_job_action,
    finetune_job_create,
    finetune_job_refresh,
)
from jobs_app.finetune.sync import sync_connection
from project.files.models import File
from project.files.services import FileInUse, file_delete
from project.notifications.models import Notification
from project.providers.client import ProviderError
from tests.factories import chat_example, jsonl, make_dataset
from tests.jobs_app.finetune.conftest import sandbox_connection, wait_until

pytestmark = pytest.mark.django_db


def _create(team, owner, connection, dataset=None, **kwargs) -> FineTuneJob:
    dataset = dataset or make_dataset(team)
    options = {"validation_dataset": dataset.validation_dataset, "base_model": "gpt-4.1-mini", "method": "supervised",
               "hyperparameters": {}, "suffix": "demo", "seed": 7, "metadata": {"project": "tests"}}
    options.update(kwargs)
    return finetune_job_create(team=team, connection=connection, dataset=dataset, actor=owner, **options)


def _sync_until(job: FineTuneJob, done) -> None:
    def check() -> bool:
        sync_connection(job.connection, force=True)
        job.refresh_from_db()
        return bool(done(job))

    wait_until(check)


def test_a_job_succeeds_with_events_metrics_checkpoints_and_one_notification(team, owner, sandbox_url, mailoutbox,
                                                                           django_capture_on_commit_callbacks) -> None:
    connection = sandbox_connection(team, sandbox_url)
    dataset = make_dataset(team, validation=jsonl([chat_example(i) for i in range(3)]))
    job = _create(team, owner, connection, dataset=dataset)
    assert job.remote_id.startswith("ftjob-")
    assert File.objects.filter(team=team, purpose="fine-tune").count() == 2
    assert job.metadata == {"project": "tests"} and job.seed == 7
    assert job.estimated_cost_usd is not None and job.estimated_cost_usd > 0

    with django_capture_on_commit_callbacks(execute=True):  # the email goes out on commit
        _sync_until(job, lambda j: j.is_terminal)

    assert job.status == JobStatus.SUCCEEDED
    assert job.fine_tuned_model.startswith("ft:gpt-4.1-mini:")
    assert job.finalized_at is not None
    assert job.events.filter(message__icontains="successfully completed").exists()
    assert job.checkpoints.count() == job.hyperparameters["n_epochs"]
    # The result file fills every step, beyond the sampled metric events.
    assert job.result_file is not None
    assert MetricPoint.objects.filter(job=job, train_loss__isnull=False).count() == job.total_steps > 0
    assert Notification.objects.filter(team=team).count() == 1
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [owner.email]

    # Later syncs and refreshes (a replayed webhook does a refresh) change nothing twice.
    with django_capture_on_commit_callbacks(execute=True):
        sync_connection(connection, force=True)
        finetune_job_refresh(job=job)
    assert Notification.objects.filter(team=team).count() == 1
    assert len(mailoutbox) == 1


def test_a_job_the_provider_fails_in_validation_records_the_error(team, owner, sandbox_url) -> None:
    # "function" is a role our validator accepts (legacy function calling) but the sandbox refuses:
    # so the provider's own validation fails the job, as a real provider can.
    lines = [chat_example(i) for i in range(11)]
    lines.append({"messages": [{"role": "user", "content": "q"}, {"role": "function", "name": "f", "content": "r"},
                               {"role": "assistant", "content": "a"}]})
    dataset = make_dataset(team, content=jsonl(lines))
    assert dataset.status == "valid"
    job = _create(team, owner, sandbox_connection(team, sandbox_url), dataset=dataset)
    _sync_until(job, lambda j: j.is_terminal)
    assert job.status == JobStatus.FAILED
    assert "Unrecognized role" in job.error_message
    note = Notification.objects.get(team=team)
    assert "failed" in note.text and "Unrecognized role" in note.text


def test_a_job_can_be_cancelled_and_its_file_is_held_until_then(team, owner, slow_sandbox_url) -> None:
    job = _create(team, owner, sandbox_connection(team, slow_sandbox_url))
    training = File.objects.get(team=team, remote_id=job.training_file_remote_id)
    with pytest.raises(FileInUse, match="Fine-tune job"):
        file_delete(team=team, file=training, actor=owner)
    finetune_job_action(job=job, action="cancel", actor=owner)
    assert job.status == JobStatus.CANCELLED
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finalized_at is not None
    with pytest.raises(FineTuneInputError):
        finetune_job_action(job=job, action="resume", actor=owner)
    assert "cancelled" in Notification.objects.get(team=team).text
    file_delete(team=team, file=training, actor=owner)  # a finished job no longer holds it


def test_a_job_can_be_paused_and_resumed_then_finishes(team, owner, slow_sandbox_url) -> None:
    job = _create(team, owner, sandbox_connection(team, slow_sandbox_url), hyperparameters={"n_epochs": 4})
    assert job.hyperparameters["n_epochs"] == 4
    _sync_until(job, lambda j: j.status == JobStatus.RUNNING)
    finetune_job_action(job=job, action="pause", actor=owner)
    assert job.status == JobStatus.PAUSED
    finetune_job_refresh(job=job)
    step_when_paused = job.step
    time.sleep(0.5)  # 50 simulated seconds: a running job would have taken ~16 steps
    finetune_job_refresh(job=job)
    assert job.status == JobStatus.PAUSED and job.step == step_when_paused
    with pytest.raises(ProviderError):
        finetune_job_action(job=job, action="pause", actor=owner)  # the provider refuses: not running
    finetune_job_action(job=job, action="resume", actor=owner)
    assert job.status == JobStatus.RUNNING
    _sync_until(job, lambda j: j.is_terminal)
    assert job.status == JobStatus.SUCCEEDED
    messages = list(job.events.values_list("message", flat=True))
    assert any("paused" in m for m in messages) and any("resumed" in m for m in messages)


def test_a_stale_report_does_not_move_a_job_backwards(team, owner, sandbox_url) -> None:
    job = _create(team, owner, sandbox_connection(team, sandbox_url))
    _sync_until(job, lambda j: j.is_terminal)
    stale = type("Stale", (), {"status": "running"})()
    assert _copy_remote(job, stale) is False
    assert job.status == JobStatus.SUCCEEDED


def test_an_unvalidated_dataset_or_unknown_model_is_refused_and_nothing_is_created(team, owner, sandbox_url) -> None:
    connection = sandbox_connection(team, sandbox_url)
    broken = make_dataset(team, content=b'{"messages": oops}\n')
    with pytest.raises(FineTuneInputError):
        _create(team, owner, connection, dataset=broken)
    with pytest.raises(ProviderError) as refused:
        _create(team, owner, connection, base_model="gpt-5")
    assert "not available for fine-tuning" in refused.value.message
    assert not FineTuneJob.objects.filter(team=team).exists()
    # The training file sent for the refused job was deleted again (the row stays, marked deleted).
    assert set(File.objects.filter(team=team).values_list("state", flat=True)) == {"deleted"}
    remote_files = openai.OpenAI(base_url=connection.base_url, api_key=connection.get_api_key()).files.list()
    assert not {f.id for f in remote_files} & set(File.objects.filter(team=team).values_list("remote_id", flat=True))


def test_a_dpo_job_runs_with_its_beta(team, owner, sandbox_url) -> None:
    pairs = [{
        "input": {"messages": [{"role": "user", "content": f"Greet customer {i}"}]},
        "preferred_output": [{"role": "assistant", "content": f"Hello, customer {i}! How can I help?"}],
        "non_preferred_output": [{"role": "assistant", "content": "What."}],
    } for i in range(12)]
    dataset = make_dataset(team, content=jsonl(pairs), method="dpo")
    assert dataset.status == "valid", dataset.report["errors"]
    job = _create(team, owner, sandbox_connection(team, sandbox_url), dataset=dataset, method="dpo",
                  hyperparameters={"beta": 0.2})
    assert job.method == "dpo" and job.hyperparameters["beta"] == 0.2
    _sync_until(job, lambda j: j.is_terminal)
    assert job.status == JobStatus.SUCCEEDED


def test_a_dataset_validated_for_another_method_is_refused(team, owner, sandbox_url) -> None:
    with pytest.raises(FineTuneInputError, match="validated for Supervised"):
        _create(team, owner, sandbox_connection(team, sandbox_url), method="dpo")
    assert not FineTuneJob.objects.exists()

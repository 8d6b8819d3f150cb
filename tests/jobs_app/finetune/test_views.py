"""The fine-tuning pages through Django's test client (the browser test covers the main path)."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs_app.finetune.models import Dataset, FineTuneJob, JobStatus
from project.notifications.models import Notification
from project.teams.models import Role
from tests.conftest import client_for
from tests.factories import add_member, chat_example, jsonl, make_dataset, make_finetune_job
from tests.jobs_app.finetune.conftest import sandbox_connection

pytestmark = pytest.mark.django_db


def test_the_list_shows_jobs_with_status_progress_and_datasets(owner_client, team) -> None:
    job = make_finetune_job(team, status=JobStatus.RUNNING)
    FineTuneJob.objects.filter(pk=job.pk).update(step=5, total_steps=20)
    make_dataset(team)
    page = owner_client.get(reverse("finetune_list")).content.decode()
    assert job.remote_id in page and "Running" in page and "25%" in page and "train.jsonl" in page
    assert 'hx-trigger="every 3s"' in page  # polls while a job is active


def test_the_list_stops_polling_when_nothing_is_active(owner_client, team) -> None:
    make_finetune_job(team, status=JobStatus.SUCCEEDED)
    response = owner_client.get(reverse("finetune_list") + "?poll=1", HTTP_HX_REQUEST="true")
    assert response.status_code == 286


def test_uploading_a_dataset_keeps_it_here_and_queues_validation(owner_client, team,
                                                                 django_capture_on_commit_callbacks) -> None:
    upload = SimpleUploadedFile("train.jsonl", jsonl([chat_example(i) for i in range(12)]))
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner_client.post(reverse("finetune_dataset_upload"),
                                     {"method": "supervised", "model_id": "gpt-4.1-mini", "training_file": upload})
    dataset = Dataset.objects.get(team=team)
    assert response.status_code == 302 and response["Location"] == reverse("finetune_dataset_detail", args=[dataset.pk])
    assert dataset.status == "pending" and dataset.bytes > 0
    assert len(callbacks) == 1  # the validation task, after commit


def test_a_file_that_is_not_jsonl_is_refused_with_a_message(owner_client, team) -> None:
    upload = SimpleUploadedFile("train.jsonl", b"name,age\nann,3\n")
    response = owner_client.post(reverse("finetune_dataset_upload"),
                                 {"method": "supervised", "model_id": "gpt-4.1-mini", "training_file": upload})
    assert "does not look like JSONL" in response.content.decode()
    assert not Dataset.objects.exists()
    wrong_name = SimpleUploadedFile("train.csv", b"{}\n")
    response = owner_client.post(reverse("finetune_dataset_upload"),
                                 {"method": "supervised", "model_id": "gpt-4.1-mini", "training_file": wrong_name})
    assert "must be a .jsonl file" in response.content.decode()


def test_the_report_lists_errors_by_line_and_the_progress_poll_stops_when_done(owner_client, team) -> None:
    dataset = make_dataset(team, content=jsonl([chat_example(i) for i in range(10)]) + b'{"messages": [}\n')
    page = owner_client.get(reverse("finetune_dataset_detail", args=[dataset.pk])).content.decode()
    assert "Not valid JSON</td>" in page and "<td>11</td>" in page and "nothing was sent to a provider" in page
    assert ">invalid_json<" not in page  # the code is only a tooltip
    fragment = owner_client.get(reverse("finetune_dataset_detail", args=[dataset.pk]), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 286


def test_a_pending_dataset_polls_with_a_progress_bar(owner_client, team) -> None:
    dataset = make_dataset(team, validate=False)
    fragment = owner_client.get(reverse("finetune_dataset_detail", args=[dataset.pk]), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert "<progress" in fragment.content.decode() and 'hx-trigger="every 1s"' in fragment.content.decode()


def test_the_create_form_offers_finetunable_models_the_estimate_and_the_deadlines(owner_client, team, sandbox_url) -> None:
    connection = sandbox_connection(team, sandbox_url)
    dataset = make_dataset(team)
    url = reverse("finetune_job_create") + f"?connection={connection.pk}&dataset={dataset.pk}"
    page = owner_client.get(url).content.decode()
    assert '<option value="gpt-4.1-mini"' in page and '<option value="gpt-5"' not in page
    assert "2027-01-06" in page and "About <strong>$" in page
    fragment = owner_client.get(reverse("finetune_job_create"), {"connection": connection.pk, "dataset": dataset.pk,
                                                                 "base_model": "gpt-4.1-nano", "n_epochs": "2"},
                                HTTP_HX_REQUEST="true").content.decode()
    assert "gpt-4.1-nano shuts down on 2026-10-23" in fragment and "2 epochs (as chosen)" in fragment


@pytest.mark.parametrize("value", ["\u00b2", "99999999999999999999999", "-1"])
def test_a_malformed_connection_or_dataset_id_on_the_create_form_is_ignored(owner_client, team, sandbox_url,
                                                                             value: str) -> None:
    """"\u00b2".isdigit() is true but int() refuses it: these once ended in an error page."""
    sandbox_connection(team, sandbox_url)
    make_dataset(team)
    response = owner_client.get(reverse("finetune_job_create"), {"connection": value, "dataset": value})
    assert response.status_code == 200
    fragment = owner_client.get(reverse("finetune_job_create"), {"connection": value, "dataset": value},
                                HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200


def test_creating_a_job_goes_through_a_worker_and_the_list_shows_it(owner_client, team, sandbox_url) -> None:
    from jobs_app.finetune.models import FineTuneSubmission
    from jobs_app.finetune.submissions import MARKER_KEY, finetune_submission_run

    connection = sandbox_connection(team, sandbox_url)
    dataset = make_dataset(team)
    form = {"connection": connection.pk, "dataset": dataset.pk, "base_model": "gpt-4.1-mini", "method": "supervised",
            "n_epochs": "2", "batch_size": "auto", "learning_rate_multiplier": "auto", "beta": "auto",
            "suffix": "demo", "seed": "3", "metadata": '{"team": "qa"}'}
    response = owner_client.post(reverse("finetune_job_create"), form)
    assert response.status_code == 302 and response["Location"] == reverse("finetune_list")
    assert not FineTuneJob.objects.exists()  # the request only asked; a worker makes the job
    submission = FineTuneSubmission.objects.get(team=team)
    assert "Waiting for a worker" in owner_client.get(reverse("finetune_list")).content.decode()
    finetune_submission_run(submission_id=submission.pk)  # what the worker runs
    job = FineTuneJob.objects.get(team=team)
    assert job.hyperparameters["n_epochs"] == 2 and job.suffix == "demo"
    assert job.metadata == {"team": "qa", MARKER_KEY: submission.marker}
    page = owner_client.get(reverse("finetune_job_detail", args=[job.pk])).content.decode()
    assert job.remote_id in page and "Timeline" in page


@pytest.mark.parametrize(("field", "value", "message"), [
    ("n_epochs", "many", "Enter &quot;auto&quot; or a whole number."),
    ("learning_rate_multiplier", "500", "Must be between"),
    ("metadata", "[1]", "Metadata must be a JSON object"),
    ("suffix", "bad suffix!", "Use letters, digits"),
    ("base_model", "gpt-5", "Select a valid choice"),
])
def test_bad_job_input_is_explained_and_creates_nothing(owner_client, team, sandbox_url, field, value, message) -> None:
    connection = sandbox_connection(team, sandbox_url)
    dataset = make_dataset(team)
    form = {"connection": connection.pk, "dataset": dataset.pk, "base_model": "gpt-4.1-mini", "method": "supervised",
            "n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto", "beta": "auto", field: value}
    response = owner_client.post(reverse("finetune_job_create"), form)
    assert response.status_code == 200 and message in response.content.decode()
    assert not FineTuneJob.objects.exists()


def test_a_suffix_over_64_characters_is_refused_before_anything_is_sent(owner_client, team, sandbox_url) -> None:
    connection = sandbox_connection(team, sandbox_url)
    dataset = make_dataset(team, method="supervised")
    form = {"connection": connection.pk, "dataset": dataset.pk, "base_model": "gpt-4.1-mini", "method": "supervised",
            "n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto", "beta": "auto",
            "suffix": "x" * 65}
    response = owner_client.post(reverse("finetune_job_create"), form)
    assert "at most 64 characters" in response.content.decode()
    assert not FineTuneJob.objects.exists()


def test_an_unreachable_provider_is_explained_on_the_page(owner_client, team) -> None:
    connection = sandbox_connection(team, "http://127.0.0.1:9/v1")
    page = owner_client.get(reverse("finetune_job_create"), {"connection": connection.pk}).content.decode()
    assert f"Could not list the models of {connection.name}" in page and "unreachable" in page
    page = owner_client.get(reverse("finetune_job_import"), {"connection": connection.pk}).content.decode()
    assert "unreachable" in page


def test_a_finished_job_page_draws_charts_and_links_to_a_thread(owner_client, team, owner, sandbox_url) -> None:
    from jobs_app.finetune.services import finetune_job_create
    from jobs_app.finetune.sync import sync_connection
    from tests.jobs_app.finetune.conftest import wait_until

    connection = sandbox_connection(team, sandbox_url)
    job = finetune_job_create(team=team, connection=connection, dataset=make_dataset(team), validation_dataset=None,
                              base_model="gpt-4.1-mini", method="supervised", hyperparameters={}, suffix="", seed=None,
                              metadata={}, actor=owner)

    def finished() -> bool:
        sync_connection(connection, force=True)
        job.refresh_from_db()
        return job.finalized_at is not None

    wait_until(finished)
    page = owner_client.get(reverse("finetune_job_detail", args=[job.pk])).content.decode()
    assert "<polyline" in page and "training loss" in page and "validation loss" in page
    assert "/threads/new/?model=ft%3Agpt-4.1-mini" in page and "Start a thread with it" in page
    assert "ckpt-step-" in page
    live = owner_client.get(reverse("finetune_job_detail", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert live.status_code == 286


def test_importing_lists_remote_jobs_and_tracks_the_chosen_ones(owner_client, team, owner, sandbox_url) -> None:
    from jobs_app.finetune.services import finetune_job_create

    connection = sandbox_connection(team, sandbox_url)
    job = finetune_job_create(team=team, connection=connection, dataset=make_dataset(team), validation_dataset=None,
                              base_model="gpt-4.1-mini", method="supervised", hyperparameters={}, suffix="", seed=None,
                              metadata={}, actor=owner)
    remote_id = job.remote_id
    job.delete()
    page = owner_client.get(reverse("finetune_job_import"), {"connection": connection.pk}).content.decode()
    assert remote_id in page
    # When it was made, as a date, not the provider's Unix timestamp.
    created = job.remote_created_at
    assert created is not None
    assert f">{created.astimezone(UTC):%Y-%m-%d %H:%M}</time>" in page
    assert f">{int(created.timestamp())}<" not in page
    response = owner_client.post(reverse("finetune_job_import"), {"connection": connection.pk, "remote_id": [remote_id]})
    assert response.status_code == 302
    imported = FineTuneJob.objects.get(team=team, remote_id=remote_id)
    assert imported.base_model == "gpt-4.1-mini"
    assert not Notification.objects.exists()  # an old job's end is not news


def test_viewers_cannot_cancel(team) -> None:
    viewer = add_member(team, role=Role.VIEWER).user
    job = make_finetune_job(team)
    response = client_for(viewer).post(reverse("finetune_job_cancel", args=[job.pk]))
    assert response.status_code == 403


def test_the_bell_counts_unread_notifications_and_each_person_marks_their_own_read(owner_client, team) -> None:
    from tests.conftest import client_for
    from tests.factories import add_member, make_user

    colleague = make_user("reader")
    add_member(team, colleague)
    colleague_client = client_for(colleague)
    Notification.objects.create(team=team, text="Fine-tuning job ftjob-1 succeeded", link="/fine-tuning/")
    assert "Notifications, 1 unread" in owner_client.get(reverse("finetune_list")).content.decode()
    listed = owner_client.get(reverse("notification_list")).content.decode()
    assert '<li class="unread">' in listed and "ftjob-1 succeeded" in listed

    owner_client.post(reverse("notification_list"))
    assert "Notifications, 0 unread" in owner_client.get(reverse("finetune_list")).content.decode()
    assert '<li class="unread">' not in owner_client.get(reverse("notification_list")).content.decode()
    # Reading is per person: the colleague has not read it yet.
    assert "Notifications, 1 unread" in colleague_client.get(reverse("finetune_list")).content.decode()
    # News that comes later is unread for the owner again.
    Notification.objects.create(team=team, text="Fine-tuning job ftjob-2 failed", link="/fine-tuning/")
    assert "Notifications, 1 unread" in owner_client.get(reverse("finetune_list")).content.decode()
    assert "Notifications, 2 unread" in colleague_client.get(reverse("finetune_list")).content.decode()


def test_a_dataset_whose_file_is_gone_gets_a_verdict_instead_of_spinning(owner_client, team) -> None:
    from jobs_app.finetune.services import dataset_validate

    dataset = make_dataset(team, validate=False)
    dataset.content.storage.delete(str(dataset.content.name))
    dataset_validate(dataset=dataset)
    assert dataset.status == "invalid"
    response = owner_client.get(reverse("finetune_dataset_detail", args=[dataset.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 286 and "could not be read" in response.content.decode()


def test_a_running_sandbox_job_says_how_to_make_the_sandbox_faster(owner_client, team, sandbox_url) -> None:
    from tests.factories import make_connection

    on_sandbox = make_finetune_job(team, connection=sandbox_connection(team, sandbox_url))
    page = owner_client.get(reverse("finetune_job_detail", args=[on_sandbox.pk])).content.decode()
    assert "<code>SANDBOX_TIME_SCALE=1000 make run</code> finishes a fine-tune in seconds" in page
    on_openai = make_finetune_job(team, connection=make_connection(team))
    page = owner_client.get(reverse("finetune_job_detail", args=[on_openai.pk])).content.decode()
    assert "SANDBOX_TIME_SCALE" not in page

"""Fine-tuning pages: thin views over the selectors and services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from jobs_app.finetune import selectors
from jobs_app.finetune.catalog import (
    OPENAI_FINE_TUNING_DEADLINE,
    BaseModelChoice,
    finetunable_models,
    shows_openai_deadline,
)
from jobs_app.finetune.charts import Chart, line_chart
from jobs_app.finetune.forms import DatasetUploadForm, JobCreateForm
from jobs_app.finetune.models import STATUS_RANK, FineTuneJob, JobStatus, SubmissionStatus
from jobs_app.finetune.services import (
    FineTuneInputError,
    dataset_estimate,
    dataset_upload,
    finetune_job_action,
    finetune_job_refresh_enqueue,
    finetune_jobs_import,
    finetune_sync_watched,
)
from jobs_app.finetune.submissions import finetune_submission_create
from jobs_app.finetune.validation import ERROR_KINDS
from project.providers.capabilities import connection_lacks
from project.providers.client import ProviderError, provider_call
from project.providers.models import ProviderConnection
from project.providers.selectors import team_connection_get, team_connections
from project.providers.timestamps import provider_datetime
from project.spend.budgets import BudgetExceeded
from project.spend.selectors import source_cost
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role
from project.upload_limits import upload_limit
from project.user_input import parse_id

IMPORT_PAGE = 20


def _created(remote_job: Any) -> datetime | None:
    """A provider's Unix timestamp as a date the page can show."""
    return provider_datetime(getattr(remote_job, "created_at", None))


def _chunks(upload: Any) -> Any:
    return upload.chunks()


@team_view()
def finetune_list(request: TeamRequest) -> HttpResponse:
    jobs = list(selectors.team_finetune_jobs(team=request.team)[:200])
    submissions = list(selectors.team_unfinished_submissions(team=request.team)[:50])
    active = any(not job.is_terminal for job in jobs) or any(s.status != SubmissionStatus.FAILED for s in submissions)
    context = {"jobs": jobs, "submissions": submissions, "active": active,
               "datasets": selectors.team_datasets(team=request.team)[:50]}
    if request.htmx and request.GET.get("poll"):
        if not active:
            return HttpResponseStopPolling(render(request, "jobs_app/finetune/list.html#jobs", context).content)
        finetune_sync_watched(team=request.team)
        return render(request, "jobs_app/finetune/list.html#jobs", context)
    return render(request, "jobs_app/finetune/list.html", context)


@team_view(Role.MEMBER)
@upload_limit("FILES_MAX_BYTES", "a provider accepts for a fine-tuning file", files=2)
def dataset_upload_view(request: TeamRequest) -> HttpResponse:
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        training = form.cleaned_data["training_file"]
        validation = form.cleaned_data.get("validation_file")
        try:
            dataset = dataset_upload(
                team=request.team, method=form.cleaned_data["method"], model_id=form.cleaned_data["model_id"],
                training_name=training.name, training_chunks=_chunks(training),
                validation_name=validation.name if validation else "",
                validation_chunks=_chunks(validation) if validation else None, actor=request.user,
            )
        except FineTuneInputError as error:
            form.add_error(None, error.message)
        else:
            return redirect("finetune_dataset_detail", dataset.pk)
    return render(request, "jobs_app/finetune/dataset_upload.html", {"form": form})


@team_view()
def dataset_detail(request: TeamRequest, dataset_id: int) -> HttpResponse:
    dataset = selectors.team_dataset_get(team=request.team, dataset_id=dataset_id)
    parts = [dataset] + ([dataset.validation_dataset] if dataset.validation_dataset else [])
    done = all(part.is_done for part in parts)
    estimate = dataset_estimate(dataset=dataset, model_id=dataset.model_id, n_epochs=None) if dataset.report else None
    context = {"dataset": dataset, "parts": parts, "done": done, "estimate": estimate, "error_kinds": ERROR_KINDS}
    if request.htmx:
        response = render(request, "jobs_app/finetune/dataset_detail.html#report", context)
        return HttpResponseStopPolling(response.content) if done else response
    return render(request, "jobs_app/finetune/dataset_detail.html", context)


def _chosen_connection(request: TeamRequest, data: Any) -> ProviderConnection | None:
    connection_id = parse_id(data.get("connection"))
    if connection_id is not None:
        return team_connection_get(team=request.team, connection_id=connection_id)
    return team_connections(team=request.team).first()


@team_view(Role.MEMBER)
def job_create(request: TeamRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    connection = _chosen_connection(request, data)
    base_models: list[BaseModelChoice] = []
    provider_message = ""
    lacking = connection_lacks(connection, "fine_tuning", probe_unknown=True) if connection is not None else ""
    if connection is None:
        provider_message = "Add a provider connection first (Settings → Connections)."
    elif lacking:
        provider_message = f"{lacking} Choose another connection to fine-tune."
    else:
        try:
            base_models = finetunable_models(connection)
        except ProviderError as error:
            provider_message = f"Could not list the models of {connection.name}: {error.message}"
    datasets = selectors.team_valid_datasets(team=request.team)
    initial: dict[str, Any] = {"connection": connection.pk if connection else None}
    dataset_id = parse_id(request.GET.get("dataset"))
    if dataset_id is not None:
        chosen = datasets.filter(pk=dataset_id).first()
        if chosen is not None:
            initial.update(dataset=chosen.pk, method=chosen.method, base_model=chosen.model_id,
                           validation_dataset=chosen.validation_dataset_id if chosen.validation_dataset else None)
    bound = request.method == "POST" or (request.htmx and "dataset" in request.GET)
    form = JobCreateForm(data if bound else None, initial=initial, connections=team_connections(team=request.team),
                         datasets=datasets,
                         validation_datasets=selectors.team_valid_datasets(team=request.team, is_validation=True),
                         base_models=base_models)
    if request.method == "POST" and connection is not None and not lacking and form.is_valid():
        cleaned = form.cleaned_data
        try:
            finetune_submission_create(
                team=request.team, connection=cleaned["connection"], dataset=cleaned["dataset"],
                validation_dataset=cleaned.get("validation_dataset"), base_model=cleaned["base_model"],
                method=cleaned["method"], hyperparameters=cleaned["hyperparameters"], suffix=cleaned["suffix"],
                seed=cleaned.get("seed"), metadata=cleaned["metadata"], actor=request.user,
            )
        except (FineTuneInputError, BudgetExceeded) as error:
            form.add_error(None, getattr(error, "message", None) or str(error))
        else:
            messages.success(request, "The job is being created: it appears below in a moment.")
            return redirect("finetune_list")
    context = {"form": form, "connection": connection, "provider_message": provider_message,
               "base_models": base_models,
               # No estimate "on gpt-4.1-mini" for a server that cannot fine-tune at all.
               **(_estimate_context(form, connection, base_models) if not lacking else {})}
    if request.htmx and request.method == "GET" and "dataset" in request.GET:
        return render(request, "jobs_app/finetune/job_create.html#estimate", context)
    return render(request, "jobs_app/finetune/job_create.html", context)


def _estimate_context(form: JobCreateForm, connection: ProviderConnection | None,
                      base_models: list[BaseModelChoice]) -> dict[str, Any]:
    data = form.data if form.is_bound else form.initial
    dataset_field = form.fields["dataset"]
    dataset = None
    dataset_id = parse_id(data.get("dataset"))
    if dataset_id is not None:
        dataset = dataset_field.queryset.filter(pk=dataset_id).first()  # type: ignore[attr-defined]
    if dataset is None:
        dataset = dataset_field.queryset.first()  # type: ignore[attr-defined]
    model_id = str(data.get("base_model") or (dataset.model_id if dataset else ""))
    if base_models and model_id not in {m.model_id for m in base_models}:
        model_id = base_models[0].model_id
    epochs_raw = str(data.get("n_epochs") or "auto").strip()
    n_epochs = int(epochs_raw) if epochs_raw.isdigit() and 0 < int(epochs_raw) <= 50 else None
    estimate = dataset_estimate(dataset=dataset, model_id=model_id, n_epochs=n_epochs) if dataset else None
    shutdown = next((m.shutdown_date for m in base_models if m.model_id == model_id), None)
    return {
        "estimate": estimate, "estimate_dataset": dataset, "estimate_model": model_id, "shutdown_date": shutdown,
        "show_openai_deadline": bool(connection and shows_openai_deadline(connection)),
        "openai_deadline": OPENAI_FINE_TUNING_DEADLINE,
    }


@dataclass(frozen=True)
class TimelineStep:
    label: str
    at: datetime | None
    done: bool
    current: bool


def _timeline(job: FineTuneJob, events: list[Any]) -> list[TimelineStep]:
    def first(*words: str) -> datetime | None:
        for event in events:
            if any(word in event.message.lower() for word in words):
                return event.created_at
        return None

    rank = STATUS_RANK.get(job.status, 0)
    reached = {status: job.is_terminal or rank >= STATUS_RANK[status]
               for status in (JobStatus.VALIDATING_FILES, JobStatus.QUEUED, JobStatus.RUNNING)}
    failed_early = job.status == JobStatus.FAILED and not first("started")
    steps = [
        TimelineStep("Created", job.remote_created_at, True, False),
        TimelineStep("Validating files", first("validating"), reached[JobStatus.VALIDATING_FILES],
                     job.status == JobStatus.VALIDATING_FILES),
        TimelineStep("Queued", first("queued"), reached[JobStatus.QUEUED] and not failed_early,
                     job.status == JobStatus.QUEUED),
        TimelineStep("Running", first("started"), bool(first("started")) or job.status == JobStatus.RUNNING,
                     job.status == JobStatus.RUNNING),
    ]
    for event in events:
        lowered = event.message.lower()
        if "paused" in lowered or "resumed" in lowered:
            steps.append(TimelineStep("Paused" if "paused" in lowered else "Resumed", event.created_at, True,
                                      job.status == JobStatus.PAUSED and "paused" in lowered))
    end_label = job.get_status_display() if job.is_terminal else "Finished"
    steps.append(TimelineStep(end_label, job.finished_at, job.is_terminal, False))
    return steps


def _charts(job: FineTuneJob) -> list[Chart]:
    points = list(selectors.job_metric_points(job=job))
    steps = [p.step for p in points]
    return [
        line_chart("Loss", steps, [("training loss", "train", [p.train_loss for p in points]),
                                   ("validation loss", "valid", [p.valid_loss for p in points])]),
        line_chart("Token accuracy", steps, [("training accuracy", "train", [p.train_accuracy for p in points]),
                                             ("validation accuracy", "valid", [p.valid_accuracy for p in points])]),
    ]


def thread_link(job: FineTuneJob, model_id: str) -> str:
    """The chat page's confirm step for a thread with model_id beside the job's base model."""
    params = {"model": model_id, "compare": job.base_model, "connection": job.connection_id}
    return reverse("thread_start_with_model") + "?" + urlencode(params)


@team_view()
def job_detail(request: TeamRequest, job_id: int) -> HttpResponse:
    job = selectors.team_finetune_job_get(team=request.team, job_id=job_id)
    if not job.is_terminal or job.finalized_at is None:
        finetune_job_refresh_enqueue(job_id=job.pk)
    events = list(job.events.all())
    checkpoints = [(c, thread_link(job, c.model_name)) for c in job.checkpoints.all()]
    context = {
        "job": job, "events": events[-200:], "events_total": len(events), "timeline": _timeline(job, events),
        "charts": _charts(job), "checkpoints": checkpoints,
        "thread_url": thread_link(job, job.fine_tuned_model) if job.fine_tuned_model else "",
        "can_pause": job.status == JobStatus.RUNNING, "can_resume": job.status == JobStatus.PAUSED,
        "can_cancel": not job.is_terminal,
        "billed_usd": source_cost(team=request.team, source_kind="finetune_job", source_id=job.pk),
    }
    if request.htmx:
        response = render(request, "jobs_app/finetune/job_detail.html#live", context)
        return HttpResponseStopPolling(response.content) if job.is_terminal and job.finalized_at else response
    return render(request, "jobs_app/finetune/job_detail.html", context)


@require_POST
@team_view(Role.MEMBER)
def job_action(request: TeamRequest, job_id: int, action: str) -> HttpResponse:
    job = selectors.team_finetune_job_get(team=request.team, job_id=job_id)
    try:
        finetune_job_action(job=job, action=action, actor=request.user)
    except (FineTuneInputError, ProviderError) as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Job {job.remote_id}: {action} requested; it is now {job.get_status_display().lower()}.")
    return redirect("finetune_job_detail", job.pk)


@team_view(Role.MEMBER)
def job_import(request: TeamRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    connection = _chosen_connection(request, data)
    if request.method == "POST" and connection is not None:
        remote_ids = [rid for rid in request.POST.getlist("remote_id") if rid][:100]
        try:
            imported = finetune_jobs_import(team=request.team, connection=connection, remote_ids=remote_ids,
                                            actor=request.user)
        except ProviderError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Now tracking {len(imported)} job(s).")
            return redirect("finetune_list")
    remote_jobs: list[Any] = []
    has_more = False
    provider_message = ""
    after = request.GET.get("after", "")
    lacking = connection_lacks(connection, "fine_tuning") if connection is not None else ""
    if lacking:
        provider_message = lacking
    elif connection is not None:
        try:
            page = provider_call(connection, lambda client: client.fine_tuning.jobs.list(limit=IMPORT_PAGE, after=after)
                                 if after else client.fine_tuning.jobs.list(limit=IMPORT_PAGE))
            remote_jobs = list(page.data)
            has_more = bool(page.has_more)
        except ProviderError as error:
            provider_message = error.message
    tracked = set(FineTuneJob.objects.filter(connection=connection).values_list("remote_id", flat=True)) \
        if connection else set()
    context = {"connection": connection, "connections": team_connections(team=request.team),
               "remote_jobs": [(job, job.id in tracked, _created(job)) for job in remote_jobs], "has_more": has_more,
               "next_after": remote_jobs[-1].id if remote_jobs else "", "provider_message": provider_message}
    return render(request, "jobs_app/finetune/job_import.html", context)

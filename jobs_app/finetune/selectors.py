"""Reads for fine-tuning, always scoped to a team."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from jobs_app.finetune.models import (
    TERMINAL_STATUSES,
    Dataset,
    DatasetStatus,
    FineTuneJob,
    FineTuneSubmission,
    MetricPoint,
    SubmissionStatus,
)
from project.providers.models import ProviderConnection
from project.providers.team_models import FINE_TUNED_PREFIX, TeamModel
from project.teams.models import Team


def team_unfinished_submissions(*, team: Team) -> QuerySet[FineTuneSubmission]:
    """Job creations still on their way, and those that failed in the last day (with the reason)."""
    since = timezone.now() - timedelta(days=1)
    return (FineTuneSubmission.objects.filter(team=team)
            .filter(Q(status__in=(SubmissionStatus.QUEUED, SubmissionStatus.CREATING))
                    | Q(status=SubmissionStatus.FAILED, created_at__gte=since))
            .select_related("connection", "dataset"))


def team_datasets(*, team: Team) -> QuerySet[Dataset]:
    return Dataset.objects.filter(team=team, is_validation=False).select_related("validation_dataset")


def team_valid_datasets(*, team: Team, is_validation: bool = False) -> QuerySet[Dataset]:
    return Dataset.objects.filter(team=team, status=DatasetStatus.VALID, is_validation=is_validation)


def team_dataset_get(*, team: Team, dataset_id: int) -> Dataset:
    return get_object_or_404(Dataset.objects.select_related("validation_dataset"), team=team, pk=dataset_id)


def team_finetune_jobs(*, team: Team) -> QuerySet[FineTuneJob]:
    return FineTuneJob.objects.filter(team=team).select_related("connection")


def team_finetune_job_get(*, team: Team, job_id: int) -> FineTuneJob:
    return get_object_or_404(FineTuneJob.objects.select_related("connection", "result_file"), team=team, pk=job_id)


def team_job_for_model(*, team: Team, model_id: str, connection: ProviderConnection | None = None) -> FineTuneJob | None:
    """The team's job that made model_id (its fine-tuned model or one of its checkpoints), if any."""
    if not model_id:
        return None
    jobs = FineTuneJob.objects.filter(team=team).select_related("connection")
    if connection is not None:
        jobs = jobs.filter(connection=connection)
    return (jobs.filter(Q(fine_tuned_model=model_id) | Q(checkpoints__model_name=model_id))
            .order_by("-created_at", "-id").first())


def team_has_active_jobs(*, team: Team) -> bool:
    return FineTuneJob.objects.filter(team=team).exclude(status__in=TERMINAL_STATUSES).exists()


def job_metric_points(*, job: FineTuneJob) -> QuerySet[MetricPoint]:
    return job.metric_points.all()


def finetune_team_models(team: Team) -> list[TeamModel]:
    """The fine-tuned models the team's succeeded jobs made (registered with project.providers.team_models)."""
    jobs = (FineTuneJob.objects.filter(team=team, status="succeeded").exclude(fine_tuned_model="")
            .select_related("connection").order_by("-id"))
    return [TeamModel(model=job.fine_tuned_model, connection=job.connection,
                      assistant_name=f"{FINE_TUNED_PREFIX}{job.suffix or job.fine_tuned_model}"[:120],
                      made_by=f"fine-tuning job {job.remote_id}", url=reverse("finetune_job_detail", args=[job.pk]))
            for job in jobs]


def finetune_team_model(team: Team, model_id: str, connection: ProviderConnection | None) -> TeamModel | None:
    """A model one of the team's jobs made (registered with project.providers.team_models)."""
    job = team_job_for_model(team=team, model_id=model_id, connection=connection)
    if job is None:
        return None
    if model_id == job.fine_tuned_model:
        name = f"{FINE_TUNED_PREFIX}{job.suffix or model_id}"
    else:
        checkpoint = job.checkpoints.filter(model_name=model_id).first()
        step = f" at step {checkpoint.step}" if checkpoint is not None else ""
        name = f"{FINE_TUNED_PREFIX}{job.suffix or job.fine_tuned_model or job.base_model}{step}"
    return TeamModel(model=model_id, connection=job.connection, assistant_name=name[:120],
                     made_by=f"fine-tuning job {job.remote_id}", url=reverse("finetune_job_detail", args=[job.pk]))

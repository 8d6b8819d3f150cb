"""Reads for fine-tuning, always scoped to a team."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.models import User
from django.db.models import Case, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from jobs_app.models_finetune import (
    TERMINAL_STATUSES,
    Dataset,
    DatasetStatus,
    FineTuneJob,
    MetricPoint,
    Notification,
    NotificationsSeen,
)
from project.providers.models import ProviderConnection
from project.teams.models import Team

# Before any notification: someone who never opened the list has read none.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


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


def _unread(team: Team, user: User) -> Q:
    """Notifications made after this person last marked them read (all, if never)."""
    seen = Subquery(NotificationsSeen.objects.filter(team=team, user=user).values("until")[:1])
    return Q(created_at__gt=Coalesce(seen, Value(EPOCH)))


def team_notifications(*, team: Team, user: User) -> QuerySet[Notification]:
    """The team's notifications, newest first, each with `unread` for this person."""
    return Notification.objects.filter(team=team).annotate(
        unread=Case(When(_unread(team, user), then=Value(True)), default=Value(False)))


def team_unread_notification_count(*, team: Team, user: User) -> int:
    """How many of the team's notifications this person has not read (one query)."""
    return Notification.objects.filter(_unread(team, user), team=team).count()

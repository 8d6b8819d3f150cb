"""Fine-tuning data: datasets validated here before anything is sent, jobs mirrored
from the provider with their events, checkpoints and metric points, the per-connection
sync state.

The tables keep the names they were made with when fine-tuning was part of one jobs_app
(Meta.db_table): moving the models to their own app moved no data.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from project.files.models import File
from project.providers.models import ProviderConnection
from project.teams.models import Team


class FineTuneMethod(models.TextChoices):
    SUPERVISED = "supervised", "Supervised (chat)"
    DPO = "dpo", "DPO (preference pairs)"


class DatasetStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be validated"
    VALIDATING = "validating", "Validating"
    VALID = "valid", "Valid"
    INVALID = "invalid", "Has errors"


def _dataset_path(instance: Dataset, filename: str) -> str:
    return f"datasets/team-{instance.team_id}/{instance.sha256[:2]}/{instance.sha256}.jsonl"


class Dataset(models.Model):
    """A JSONL file kept here and validated before it is sent to any provider."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="finetune_datasets")
    name = models.CharField(max_length=255)
    method = models.CharField(max_length=20, choices=FineTuneMethod.choices, default=FineTuneMethod.SUPERVISED)
    # Tokens are counted with this model's encoding and checked against its training context.
    model_id = models.CharField(max_length=200)
    content = models.FileField(upload_to=_dataset_path, max_length=300)
    bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    # A validation dataset uploaded together with a training one.
    validation_dataset = models.OneToOneField("self", on_delete=models.SET_NULL, null=True, blank=True,
                                              related_name="training_dataset")
    is_validation = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=DatasetStatus.choices, default=DatasetStatus.PENDING)
    bytes_read = models.BigIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "jobs_app_dataset"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def progress_percent(self) -> int:
        if self.status in (DatasetStatus.VALID, DatasetStatus.INVALID):
            return 100
        return int(100 * self.bytes_read / self.bytes) if self.bytes else 0

    @property
    def is_done(self) -> bool:
        return self.status in (DatasetStatus.VALID, DatasetStatus.INVALID)


class JobStatus(models.TextChoices):
    VALIDATING_FILES = "validating_files", "Validating files"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# The order a job moves through; a report of an earlier stage never overwrites a later one.
STATUS_RANK: dict[str, int] = {
    JobStatus.VALIDATING_FILES: 0, JobStatus.QUEUED: 1, JobStatus.RUNNING: 2, JobStatus.PAUSED: 2,
    JobStatus.SUCCEEDED: 9, JobStatus.FAILED: 9, JobStatus.CANCELLED: 9,
}


class FineTuneJob(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="finetune_jobs")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="finetune_jobs")
    remote_id = models.CharField(max_length=200)
    base_model = models.CharField(max_length=200)
    method = models.CharField(max_length=20, default=FineTuneMethod.SUPERVISED)
    hyperparameters = models.JSONField(default=dict, blank=True)
    suffix = models.CharField(max_length=64, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.VALIDATING_FILES)
    trained_tokens = models.BigIntegerField(null=True, blank=True)
    fine_tuned_model = models.CharField(max_length=300, blank=True)
    error = models.JSONField(null=True, blank=True)
    step = models.IntegerField(default=0)
    total_steps = models.IntegerField(default=0)
    estimated_finish = models.DateTimeField(null=True, blank=True)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    training_file_remote_id = models.CharField(max_length=200, blank=True)
    validation_file_remote_id = models.CharField(max_length=200, blank=True)
    result_file = models.ForeignKey(File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    estimated_cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    # Newest event stored here: later syncs ask only for what came after it.
    last_event_id = models.CharField(max_length=200, blank=True)
    events_synced_at = models.DateTimeField(null=True, blank=True)
    # Set once, by a conditional update, so a job's end is announced exactly once.
    finalized_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "jobs_app_finetunejob"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "remote_id"], name="finetune_job_once_per_connection"),
        ]
        indexes = [models.Index(fields=["connection", "status"], name="finetune_job_active_lookup")]

    def __str__(self) -> str:
        return self.remote_id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def progress_percent(self) -> int:
        if self.status == JobStatus.SUCCEEDED:
            return 100
        return int(100 * self.step / self.total_steps) if self.total_steps else 0

    @property
    def error_message(self) -> str:
        if isinstance(self.error, dict):
            return str(self.error.get("message") or "")
        return ""


class FineTuneEvent(models.Model):
    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="events")
    remote_id = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    level = models.CharField(max_length=20, default="info")
    message = models.TextField()
    type = models.CharField(max_length=20, default="message")
    data: models.JSONField[Any] = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "jobs_app_finetuneevent"
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["job", "remote_id"], name="finetune_event_once")]

    def __str__(self) -> str:
        return self.message[:80]


class FineTuneCheckpoint(models.Model):
    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="checkpoints")
    remote_id = models.CharField(max_length=200)
    step = models.IntegerField()
    model_name = models.CharField(max_length=300)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "jobs_app_finetunecheckpoint"
        ordering = ["-step"]
        constraints = [models.UniqueConstraint(fields=["job", "remote_id"], name="finetune_checkpoint_once")]

    def __str__(self) -> str:
        return self.model_name


class MetricPoint(models.Model):
    """One training step's metrics, from a metrics event or the job's result file."""

    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="metric_points")
    step = models.IntegerField()
    train_loss = models.FloatField(null=True)
    train_accuracy = models.FloatField(null=True)
    valid_loss = models.FloatField(null=True)
    valid_accuracy = models.FloatField(null=True)

    class Meta:
        db_table = "jobs_app_metricpoint"
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="finetune_metric_once_per_step")]

    def __str__(self) -> str:
        return f"{self.job_id}@{self.step}"


class FineTuneSyncState(models.Model):
    """Per connection: when the next poll may run, and how many in a row failed (backoff)."""

    connection = models.OneToOneField(ProviderConnection, on_delete=models.CASCADE, related_name="finetune_sync")
    next_sync_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.IntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "jobs_app_finetunesyncstate"

    def __str__(self) -> str:
        return f"sync {self.connection_id}"


class SubmissionStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    CREATING = "creating", "Creating"
    CREATED = "created", "Created"
    FAILED = "failed", "Failed"


class FineTuneSubmission(models.Model):
    """A person's request to create a fine-tuning job, carried out by a worker. The job
    is made with `marker` in its metadata, so a submission whose worker died after the
    provider made the job finds that job again (and adopts it) instead of making another."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="finetune_submissions")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="finetune_submissions")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    validation_dataset = models.ForeignKey(Dataset, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    base_model = models.CharField(max_length=200)
    method = models.CharField(max_length=20)
    hyperparameters = models.JSONField(default=dict, blank=True)
    suffix = models.CharField(max_length=64, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    marker = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=20, choices=SubmissionStatus.choices, default=SubmissionStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    job = models.ForeignKey(FineTuneJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # When the current attempt began (claimed, or queued again): the recovery sweep's clock.
    attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "attempt_at"], name="finetune_submission_pending")]

    def __str__(self) -> str:
        return f"{self.base_model} ({self.get_status_display()})"

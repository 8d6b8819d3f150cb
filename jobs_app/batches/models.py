"""Batch API jobs.

A BatchGroup is what a person builds and watches: one input (a JSONL, a CSV with a
template, chosen threads, or the failed rows of another group). Input over the
provider's per-batch limits is split into several Batch parts, submitted together.
Every request of the input is a BatchRequest row written at build time, so results
can be joined to their inputs by custom_id and failed rows can be run again.

The tables keep the names they were made with when batches was part of one jobs_app
(Meta.db_table): moving the models to their own app moved no data.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from project.files.models import File
from project.providers.models import ProviderConnection
from project.teams.models import Team


class BatchEndpoint(models.TextChoices):
    CHAT = "/v1/chat/completions", "Chat Completions"
    EMBEDDINGS = "/v1/embeddings", "Embeddings"
    RESPONSES = "/v1/responses", "Responses"


class BatchSource(models.TextChoices):
    JSONL = "jsonl", "JSONL upload"
    CSV = "csv", "CSV + template"
    THREADS = "threads", "Threads"
    RETRY = "retry", "Retry of failed rows"


class BatchStatus(models.TextChoices):
    # Local states before the provider knows the batch.
    DRAFT = "draft", "Draft"
    SUBMITTING = "submitting", "Submitting"
    SUBMIT_FAILED = "submit_failed", "Not submitted"
    # The provider's states.
    VALIDATING = "validating", "Validating"
    FAILED = "failed", "Failed"
    IN_PROGRESS = "in_progress", "In progress"
    FINALIZING = "finalizing", "Finalizing"
    COMPLETED = "completed", "Completed"
    EXPIRED = "expired", "Expired"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = frozenset({BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING,
                             BatchStatus.CANCELLING})
TERMINAL_STATUSES = frozenset({BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED,
                               BatchStatus.CANCELLED})
# Provider states only move forward; a stale reply (an old list page, a late webhook) must not move one back.
STATUS_RANK: dict[str, int] = {
    BatchStatus.VALIDATING: 1, BatchStatus.IN_PROGRESS: 2, BatchStatus.FINALIZING: 3, BatchStatus.CANCELLING: 3,
    BatchStatus.FAILED: 4, BatchStatus.COMPLETED: 4, BatchStatus.EXPIRED: 4, BatchStatus.CANCELLED: 4,
}


class ResultsState(models.TextChoices):
    NONE = "none", "Not yet"
    QUEUED = "queued", "Queued"
    DONE = "done", "Collected"
    ERROR = "error", "Could not collect"


class BatchGroup(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="batch_groups")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="batch_groups")
    name = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=40, choices=BatchEndpoint.choices)
    model = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=BatchSource.choices)
    metadata = models.JSONField(default=dict, blank=True)
    retry_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries")
    request_count = models.PositiveIntegerField(default=0)
    input_bytes = models.BigIntegerField(default=0)
    estimated_input_tokens = models.BigIntegerField(default=0)
    estimated_cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    submit_error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "jobs_app_batchgroup"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "-created_at"], name="batchgroup_team_recent")]

    def __str__(self) -> str:
        return self.name


class BuildState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Checking"
    DONE = "done", "Ready"
    INVALID = "invalid", "Not accepted"


def _build_upload_path(instance: BatchBuild, filename: str) -> str:
    return f"batch-builds/team-{instance.team_id}/{uuid.uuid4().hex}"


class BatchBuild(models.Model):
    """A big input being checked on a worker. The upload is kept only until it has
    become a draft group (or been refused); the problems found stay for the page."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="batch_builds")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=40, choices=BatchEndpoint.choices)
    source = models.CharField(max_length=10, choices=BatchSource.choices)
    options = models.JSONField(default=dict, blank=True)
    upload = models.FileField(upload_to=_build_upload_path, max_length=300, blank=True)
    state = models.CharField(max_length=10, choices=BuildState.choices, default=BuildState.QUEUED)
    problems = models.JSONField(default=list, blank=True)
    more_problems = models.PositiveIntegerField(default=0)
    group = models.ForeignKey(BatchGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "jobs_app_batchbuild"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Batch(models.Model):
    """One provider batch: a part of a group, at most the per-batch limits."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="batches")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="batches")
    group = models.ForeignKey(BatchGroup, on_delete=models.CASCADE, related_name="parts")
    part = models.PositiveIntegerField(default=1)
    remote_id = models.CharField(max_length=200, blank=True)
    endpoint = models.CharField(max_length=40, choices=BatchEndpoint.choices)
    status = models.CharField(max_length=15, choices=BatchStatus.choices, default=BatchStatus.DRAFT)
    input_file = models.ForeignKey(File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    output_file = models.ForeignKey(File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    error_file = models.ForeignKey(File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    remote_output_file_id = models.CharField(max_length=200, blank=True)
    remote_error_file_id = models.CharField(max_length=200, blank=True)
    request_count = models.PositiveIntegerField(default=0)
    input_bytes = models.BigIntegerField(default=0)
    # request_counts as the provider reports them.
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    results_state = models.CharField(max_length=10, choices=ResultsState.choices, default=ResultsState.NONE)
    results_error = models.TextField(blank=True)
    # When a submit task claimed the part: a claim this old with no remote id means the
    # task's worker stopped mid-submit (see services.batches_recover_interrupted_submits).
    submitting_since = models.DateTimeField(null=True, blank=True)
    # Sync bookkeeping: errors back off per batch, so one broken connection is not hammered.
    sync_failures = models.PositiveIntegerField(default=0)
    sync_error = models.TextField(blank=True)
    next_sync_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "jobs_app_batch"
        ordering = ["group_id", "part"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "remote_id"], condition=~models.Q(remote_id=""),
                                    name="batch_unique_remote_id_per_connection"),
            models.UniqueConstraint(fields=["group", "part"], name="batch_unique_part"),
        ]
        indexes = [models.Index(fields=["connection", "status"], name="batch_connection_status")]

    def __str__(self) -> str:
        return self.remote_id or f"{self.group} part {self.part}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def progress_percent(self) -> int:
        if self.status == BatchStatus.COMPLETED:
            return 100
        if not self.total:
            return 0
        return min(100, (self.completed + self.failed) * 100 // self.total)


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    NOT_RUN = "not_run", "Not run"


RETRYABLE_REQUEST_STATUSES = (RequestStatus.FAILED, RequestStatus.EXPIRED)


class BatchRequest(models.Model):
    """One request line: its input from build time, its result once the batch ends."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="requests")
    line_no = models.PositiveIntegerField()
    custom_id = models.CharField(max_length=512)
    body = models.JSONField()
    input_text = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    output_text = models.TextField(blank=True)
    output_json = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    # Of the above, as the output file counts them (usage's *_tokens_details): the ledger keeps both.
    cached_tokens = models.PositiveIntegerField(default=0, db_default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0, db_default=0)
    provider_request_id = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "jobs_app_batchrequest"
        ordering = ["batch_id", "line_no"]
        constraints = [models.UniqueConstraint(fields=["batch", "custom_id"], name="batchrequest_unique_custom_id")]
        indexes = [models.Index(fields=["batch", "status"], name="batchrequest_batch_status")]

    def __str__(self) -> str:
        return self.custom_id

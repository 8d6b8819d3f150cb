"""Test sets (versioned, with their cases and graders) and eval runs (a set version against
one or more targets, one result row per case and target).

A test set version never changes once written: adding a case or a grader makes a new
version that copies the rest, so a run names exactly what it graded against.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from project.files.models import File
from project.providers.models import ProviderConnection
from project.teams.models import Team


class ImmutableError(Exception):
    pass


class TestSet(models.Model):
    __test__ = False  # not a pytest class

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # The assistant whose work the set checks (the migration assistant runs it against candidates).
    assistant = models.ForeignKey("assistants_app.Assistant", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    current_version = models.ForeignKey("TestSetVersion", null=True, blank=True, on_delete=models.RESTRICT,
                                        related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class TestSetVersion(models.Model):
    """One saved state of a set: its cases, its graders (with weights) and pass threshold."""

    __test__ = False

    test_set = models.ForeignKey(TestSet, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # [{"kind": "contains", "weight": 1.0, ...the kind's settings}] (graders.parse_graders checks them)
    graders = models.JSONField(default=list, blank=True)
    # A case passes when its weighted score (0..1) is at least this.
    pass_threshold = models.FloatField(default=1.0)
    note = models.CharField(max_length=200, blank=True)
    case_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["test_set", "number"], name="testset_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.test_set.name} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ImmutableError("A test set version cannot be changed; save a new version instead.")
        super().save(*args, **kwargs)


class CaseSource(models.TextChoices):
    HAND = "hand", "By hand"
    THREAD = "thread", "Thread"
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSONL"


class TestCase(models.Model):
    """Input messages (Chat Completions shape), optional tool results to replay when the
    model calls a tool, and what a good answer is."""

    __test__ = False

    set_version = models.ForeignKey(TestSetVersion, on_delete=models.CASCADE, related_name="cases")
    position = models.PositiveIntegerField()
    # A stable id across versions: a copied case keeps it, so runs of two versions can be compared.
    key = models.CharField(max_length=40)
    name = models.CharField(max_length=200, blank=True)
    messages = models.JSONField(default=list)
    # {"tool name": "result text"}: the reply a tool gives when the model calls it.
    tool_results = models.JSONField(default=dict, blank=True)
    expected_text = models.TextField(blank=True)
    expected_json = models.JSONField(null=True, blank=True)
    # {"name": "...", "arguments": {...}}
    expected_tool_call = models.JSONField(null=True, blank=True)
    rubric = models.TextField(blank=True)
    source = models.CharField(max_length=10, choices=CaseSource.choices, default=CaseSource.HAND)
    source_ref = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["set_version", "position"], name="testcase_unique_position")]

    def __str__(self) -> str:
        return self.name or f"case {self.position}"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunMode(models.TextChoices):
    LIVE = "live", "Live (in parallel, now)"
    BATCH = "batch", "Batch API (half price, within 24 hours)"


def eval_reservation_key(run_id: int) -> str:
    """The budget reservation an eval run holds from its start until it finishes."""
    return f"eval_run:{run_id}"


class EvalRun(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    set_version = models.ForeignKey(TestSetVersion, on_delete=models.RESTRICT, related_name="runs")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.RESTRICT, related_name="+")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    mode = models.CharField(max_length=10, choices=RunMode.choices, default=RunMode.LIVE)
    # Batch mode: the input file sent and the provider's batch, followed by the sync until it ends.
    batch_input_file = models.ForeignKey(File, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    remote_batch_id = models.CharField(max_length=100, blank=True)
    batch_status = models.CharField(max_length=20, blank=True)
    # A re-run of another run's failed cases.
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Set by the migration assistant: the assistant looking for a replacement model.
    migration_assistant = models.ForeignKey("assistants_app.Assistant", null=True, blank=True,
                                            on_delete=models.SET_NULL, related_name="+")
    # {"input_tokens", "output_tokens", "judge_tokens", "cost_usd"} as shown before the start.
    estimate = models.JSONField(default=dict, blank=True)
    concurrency = models.PositiveSmallIntegerField(default=16)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"eval run {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)


class EvalTarget(models.Model):
    """What one column of a run answers with: an assistant version, with its model
    swapped for a candidate when `model` differs from the version's."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="targets")
    position = models.PositiveSmallIntegerField()
    version = models.ForeignKey("assistants_app.AssistantVersion", on_delete=models.RESTRICT, related_name="+")
    model = models.CharField(max_length=200)
    label = models.CharField(max_length=200)
    # The version made by "Switch to this model" from this target (the run is its evidence).
    switched_version = models.ForeignKey("assistants_app.AssistantVersion", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return self.label


class ResultStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    ERROR = "error", "provider error"


class EvalResult(models.Model):
    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    target = models.ForeignKey(EvalTarget, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(TestCase, on_delete=models.RESTRICT, related_name="+")
    status = models.CharField(max_length=10, choices=ResultStatus.choices, default=ResultStatus.PENDING)
    output_text = models.TextField(blank=True)
    output_tool_calls = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # [{"kind", "weight", "passed", "score", "reason"}]
    verdicts = models.JSONField(default=list, blank=True)
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    judge_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["case__position", "target__position"]
        indexes = [models.Index(fields=["run", "status"], name="evalresult_run_status")]
        constraints = [models.UniqueConstraint(fields=["target", "case"], name="evalresult_once_per_target")]

    def __str__(self) -> str:
        return f"result {self.pk} ({self.status})"

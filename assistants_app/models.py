"""Assistants, their immutable versions, threads, messages and runs.

The hosted Assistants API is gone, so all of this lives here: a run is the site
calling Chat Completions with the history it keeps in these tables.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models

from project import crypto
from project.providers.models import Engine, ProviderConnection
from project.teams.models import Team


class Assistant(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="assistants")
    connection = models.ForeignKey(ProviderConnection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # The version runs use; rollback points it at an older one.
    current_version = models.ForeignKey("AssistantVersion", null=True, blank=True, on_delete=models.RESTRICT,
                                        related_name="+")
    # Signs the body of every HTTP tool call (HMAC-SHA256), so the team's endpoint can trust it.
    tool_secret_encrypted = models.TextField(blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_tool_secret(self) -> str:
        return crypto.decrypt(self.tool_secret_encrypted) if self.tool_secret_encrypted else ""


class ImmutableError(Exception):
    pass


class AssistantVersion(models.Model):
    """One saved configuration of an assistant. Never changed once written."""

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    model = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    reasoning_effort = models.CharField(max_length=10, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # [{"name", "description", "parameters", "binding": "builtin"|"http"|"human", "builtin", "url", "timeout"}]
    tools = models.JSONField(default=list, blank=True)
    # A strict JSON schema the reply must follow, or {} for free text.
    response_schema = models.JSONField(default=dict, blank=True)
    # Responses engine: the provider runs each reply in the background (store on), and a worker
    # that restarts picks the reply up where it was instead of asking (and paying) again.
    long_running = models.BooleanField(default=False)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["assistant", "number"], name="version_unique_number")]

    def __str__(self) -> str:
        return f"{self.assistant.name} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ImmutableError("An assistant version cannot be changed; save a new version instead.")
        super().save(*args, **kwargs)

    def tool_named(self, name: str) -> dict[str, Any] | None:
        return next((tool for tool in self.tools if tool.get("name") == name), None)


class Thread(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="threads")
    assistant = models.ForeignKey(Assistant, on_delete=models.RESTRICT, related_name="threads")
    title = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["team", "-updated_at", "-id"], name="thread_team_keyset")]

    def __str__(self) -> str:
        return self.title


class ChatImage(models.Model):
    """A picture sent in a chat, stored once per team and content. Kept as a file (with a
    small thumbnail for pages), not inside the message: a thread page with many pictures
    stays small, and the run builds the data URL the provider needs when it sends one."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    sha256 = models.CharField(max_length=64)
    mime = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    image = models.FileField(upload_to="chat-images/%Y/%m/")
    thumbnail = models.FileField(upload_to="chat-images/%Y/%m/thumbs/")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "sha256"], name="chat_image_once_per_team")]

    def __str__(self) -> str:
        return f"{self.mime} {self.width}x{self.height}"


class Role(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class Message(models.Model):
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    # Denormalised so team-wide search does not join threads.
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField(blank=True)
    # Non-text parts: [{"type": "image", "image_id", "name", "mime", "width", "height"} (a ChatImage;
    # messages saved before images were stored apart carry a "data_url" instead),
    # {"type": "file", "file_id", "remote_id", "name"}]
    attachments = models.JSONField(default=list, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=100, blank=True)
    tool_name = models.CharField(max_length=100, blank=True)
    # An ask-a-person tool result still waiting for its answer.
    pending = models.BooleanField(default=False)
    # Responses engine, reasoning models: the summary shown in the "Thinking" block, and the
    # reasoning items (with their encrypted content) that came before this reply or these
    # calls, sent back with it in later requests so a tool round keeps its reasoning.
    reasoning_summary = models.TextField(blank=True)
    reasoning_items = models.JSONField(default=list, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    version = models.ForeignKey(AssistantVersion, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    search = models.GeneratedField(
        expression=SearchVector("text", config="english"), output_field=SearchVectorField(), db_persist=True
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            GinIndex(fields=["search"], name="message_search_gin"),
            models.Index(fields=["thread", "-id"], name="message_thread_keyset"),
            models.Index(fields=["team", "-id"], name="message_team_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting", "waiting for a person"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING)


class Run(models.Model):
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="runs")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    assistant = models.ForeignKey(Assistant, on_delete=models.RESTRICT, related_name="runs")
    version = models.ForeignKey(AssistantVersion, on_delete=models.RESTRICT, related_name="runs")
    # The message that asked for this reply; it is kept whatever happens to the run.
    user_message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    total_ms = models.PositiveIntegerField(null=True, blank=True)
    trimmed_messages = models.PositiveIntegerField(default=0)
    provider_calls = models.PositiveSmallIntegerField(default=0)
    # The token counts (and so the cost) are Switchboard's own tiktoken count, not the
    # provider's: its stream carried no usage (llama.cpp never sends it in streams).
    usage_estimated = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    request_id = models.CharField(max_length=120, blank=True)
    # The API it ran on, recorded when a worker takes it (blank: before engines existed).
    engine = models.CharField(max_length=20, choices=Engine.choices, blank=True)
    # A long-running version's background response of the current round, until the round is saved:
    # a worker that takes the run over resumes it instead of creating another.
    response_id = models.CharField(max_length=120, blank=True)
    # Awaiting the provider: the background response's stream could not be followed, so no
    # worker holds the run; beat fetches the response (GET) at poll_at, backing off with
    # poll_attempts, until it is over (assistants_app.responses_poll). Null: not polled.
    poll_at = models.DateTimeField(null=True, blank=True)
    poll_attempts = models.PositiveSmallIntegerField(default=0)
    # A fetch of the response is under way until then (one fetch at a time; a fetcher that
    # died leaves it to the next once it has passed).
    poll_lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["team", "created_at"], name="run_team_day"),
            # Beat's poll finds the due runs among few.
            models.Index(fields=["poll_at"], name="run_poll_due", condition=models.Q(poll_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def stream_key(self) -> str:
        return stream_key(self.pk)


def stream_key(run_id: int) -> str:
    return f"sb:run:{run_id}:events"


def feed_key(thread_id: int) -> str:
    """A thread's feed: one entry per run started or resumed in it, read by every open page."""
    return f"sb:thread:{thread_id}:feed"


def cancel_key(run_id: int) -> str:
    return f"sb:run:{run_id}:cancel"

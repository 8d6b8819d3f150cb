"""The team's file library: every file sent to or fetched from a provider.

A File row is written only once the provider has the file (or it was fetched
from the provider), and a local copy is kept for previews and downloads.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from project.providers.models import ProviderConnection
from project.teams.models import Team


class FilePurpose(models.TextChoices):
    ASSISTANTS = "assistants", "Assistants"
    BATCH = "batch", "Batch input"
    BATCH_OUTPUT = "batch_output", "Batch output"
    FINE_TUNE = "fine-tune", "Fine-tune"
    FINE_TUNE_RESULTS = "fine-tune-results", "Fine-tune results"
    VISION = "vision", "Vision"
    USER_DATA = "user_data", "User data"


# Purposes a user may upload with; the others are made by the provider.
UPLOAD_PURPOSES = [FilePurpose.ASSISTANTS, FilePurpose.BATCH, FilePurpose.FINE_TUNE, FilePurpose.VISION, FilePurpose.USER_DATA]


class FileState(models.TextChoices):
    ACTIVE = "active", "On the provider"
    MISSING = "missing", "Missing on the provider"
    DELETED = "deleted", "Deleted"


class FileOrigin(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded here"
    PROVIDER = "provider", "Made by the provider"
    IMPORTED = "imported", "Imported (made elsewhere)"


def _local_path(instance: File, filename: str) -> str:
    return f"files/team-{instance.team_id}/{instance.sha256[:2]}/{instance.sha256}"


class File(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="files")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="files")
    remote_id = models.CharField(max_length=200)
    purpose = models.CharField(max_length=30, choices=FilePurpose.choices)
    name = models.CharField(max_length=255)
    bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, blank=True)
    content = models.FileField(upload_to=_local_path, max_length=300, blank=True)
    mime_type = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=10, choices=FileState.choices, default=FileState.ACTIVE)
    origin = models.CharField(max_length=10, choices=FileOrigin.choices, default=FileOrigin.UPLOADED)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    remote_created_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "remote_id"], name="file_unique_remote_id_per_connection"),
        ]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="file_team_recent"),
            models.Index(fields=["connection", "sha256", "purpose"], name="file_reuse_lookup"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.remote_id})"

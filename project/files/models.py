"""The team's file library: every file sent to or fetched from a provider.

A File row is written only once the provider has the file (or it was fetched
from the provider), and a local copy is kept for previews and downloads.
"""

from __future__ import annotations

from typing import Any

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
    # The connection that first saw the file (uploaded, fetched or listed it).
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="files")
    # The provider's address (ProviderConnection.files_address): with remote_id, which file this is.
    # Two connections to one account see the same remote ids, and each is one row.
    provider_address = models.CharField(max_length=600, editable=False)
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
    # Set when a sync no longer finds the file on the provider; cleared if it reappears.
    missing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["team", "provider_address", "remote_id"], name="file_once_per_provider_address"),
        ]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="file_team_recent"),
            models.Index(fields=["connection", "sha256", "purpose"], name="file_reuse_lookup"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.remote_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.provider_address:
            self.provider_address = self.connection.files_address
        super().save(*args, **kwargs)

    @property
    def has_local_copy(self) -> bool:
        return bool(self.content)

    @property
    def is_image(self) -> bool:
        return self.mime_type in IMAGE_MIME_TYPES


# Image types the provider accepts for vision; these (and only these) are served inline.
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class UploadStatus(models.TextChoices):
    PENDING = "pending", "Sending parts"
    COMPLETED = "completed", "Completed"


class FileUpload(models.Model):
    """A multi-part upload (the provider's Uploads API) while it is under way.

    Each part id is recorded as soon as the provider acknowledges it, so a failed
    part is retried alone and the parts already sent are not sent again. The row
    stays after completion as the record of how the file was sent (parts, retries);
    a failed upload is cancelled on the provider and its row removed.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="+")
    upload_id = models.CharField(max_length=200)
    name = models.CharField(max_length=255)
    purpose = models.CharField(max_length=30, choices=FilePurpose.choices)
    bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    part_bytes = models.BigIntegerField()
    part_ids = models.JSONField(default=list)
    # Attempts made across all parts; more than len(part_ids) means some part was retried.
    part_attempts = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=UploadStatus.choices, default=UploadStatus.PENDING)
    file = models.ForeignKey(File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "upload_id"], name="fileupload_unique_per_connection"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.upload_id}, {len(self.part_ids)} parts)"


class UploadRequestStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    SENDING = "sending", "Sending to the provider"
    DONE = "done", "Uploaded"
    FAILED = "failed", "Failed"


def _staging_path(instance: UploadRequest, filename: str) -> str:
    return f"files/staging/team-{instance.team_id}/{filename}"


class UploadRequest(models.Model):
    """A big file the browser has sent here, waiting for a worker to send it to the provider.

    The page's request ends once the bytes are here; the provider upload (in parts, which can
    take minutes) runs on the io queue. The staged copy is removed when the request ends
    either way; `error` says why it failed.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=30, choices=FilePurpose.choices)
    name = models.CharField(max_length=255)
    bytes = models.BigIntegerField()
    staged = models.FileField(upload_to=_staging_path, max_length=300, blank=True)
    status = models.CharField(max_length=10, choices=UploadRequestStatus.choices, default=UploadRequestStatus.QUEUED)
    error = models.TextField(blank=True)
    file = models.ForeignKey(File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (UploadRequestStatus.DONE, UploadRequestStatus.FAILED)

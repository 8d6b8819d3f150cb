"""Big browser uploads: stage the bytes here, send them to the provider from a worker.

The page's request ends once the file is here (the browser's progress bar covers that
part); sending it on in parts can take minutes, so it runs on the io queue and the page
polls the UploadRequest until it is done or failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from project.files.limits import FileRejected
from project.files.models import UploadRequest, UploadRequestStatus
from project.files.services import clean_name, file_upload
from project.providers.client import ProviderError
from project.providers.models import ProviderConnection
from project.queue import task_send_on_commit
from project.teams.models import Team

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


def upload_request_create(*, team: Team, connection: ProviderConnection, purpose: str, uploaded: UploadedFile,
                          actor: User | None) -> UploadRequest:
    """Keep the browser's upload (a rename of Django's temp file, not a copy) and queue the send."""
    if connection.team_id != team.pk:
        raise ValueError("the connection belongs to another team")
    name = clean_name(uploaded.name or "file")
    with transaction.atomic():
        request = UploadRequest(team=team, connection=connection, purpose=purpose, name=name, bytes=uploaded.size or 0,
                                requested_by=actor)
        request.staged.save(name, uploaded, save=False)
        request.save()
        task_send_on_commit("project.files.tasks.upload_request_task", request.pk)
    return request


def _staged_chunks(request: UploadRequest) -> Iterator[bytes]:
    with request.staged.open("rb") as staged:
        while chunk := staged.read(CHUNK):
            yield chunk


def _finish(request: UploadRequest, **fields: object) -> None:
    staged = request.staged
    for name, value in fields.items():
        setattr(request, name, value)
    request.staged = ""
    request.save(update_fields=[*fields, "staged", "updated_at"])
    if staged and staged.name:
        staged.storage.delete(staged.name)


def upload_request_run(*, request_id: int) -> None:
    """Send a staged upload. Claimed with a conditional update, so a second delivery does nothing."""
    claimed = UploadRequest.objects.filter(pk=request_id, status=UploadRequestStatus.QUEUED).update(
        status=UploadRequestStatus.SENDING, updated_at=timezone.now())
    if not claimed:
        return
    request = UploadRequest.objects.select_related("team", "connection", "requested_by").get(pk=request_id)
    try:
        record = file_upload(team=request.team, connection=request.connection, purpose=request.purpose, name=request.name,
                             chunks=_staged_chunks(request), actor=request.requested_by)
    except FileRejected as error:
        _finish(request, status=UploadRequestStatus.FAILED, error=error.message)
    except ProviderError as error:
        _finish(request, status=UploadRequestStatus.FAILED, error=f"The provider did not take {request.name}: {error.message}")
    except Exception:
        log.exception("upload request %s failed", request_id)
        _finish(request, status=UploadRequestStatus.FAILED, error=f"{request.name} could not be uploaded (an internal error).")
        raise
    else:
        _finish(request, status=UploadRequestStatus.DONE, file=record)


def upload_requests_reap_stale(*, older_than: timedelta = timedelta(hours=2)) -> int:
    """Requests whose worker died mid-way: mark them failed and drop their staged copies."""
    stale = UploadRequest.objects.filter(status__in=[UploadRequestStatus.QUEUED, UploadRequestStatus.SENDING],
                                         updated_at__lt=timezone.now() - older_than)
    count = 0
    for request in stale:
        _finish(request, status=UploadRequestStatus.FAILED, error="The upload was interrupted; please upload the file again.")
        count += 1
    return count

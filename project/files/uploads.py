"""Big files through the provider's Uploads API: create, send parts, complete.

Each part id is written to the FileUpload row as soon as the provider has the part,
so a part that fails is retried alone (the SDK's own retries are off here so that
every attempt is counted and the backoff is ours). If a part still fails, or the
upload cannot be completed, the Upload is cancelled on the provider and the row
removed: nothing half-made is left.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial
from typing import IO, Any

from django.conf import settings
from django.utils import timezone
from openai import OpenAI

from project.files.models import FileUpload, UploadStatus
from project.providers.client import ClientOptions, ProviderError, provider_call
from project.providers.models import ProviderConnection
from project.teams.models import Team

# (part index, attempt) -> extra request headers; the sandbox's X-Sandbox-Fault drills use it.
PartHeaders = Callable[[int, int], Mapping[str, str]]
_NO_SDK_RETRIES = ClientOptions(max_retries=0)
_MAX_BACKOFF_SECONDS = 20.0


def use_parts(size: int) -> bool:
    threshold: int = settings.FILES_SINGLE_UPLOAD_MAX_BYTES
    return size > threshold


def _backoff(error: ProviderError, attempt: int) -> float:
    if error.retry_after is not None:
        return min(error.retry_after, _MAX_BACKOFF_SECONDS)
    return min(0.25 * 2**attempt, _MAX_BACKOFF_SECONDS)


class _PartReader(io.RawIOBase):
    """A window [start, start+length) of the spooled file, read lazily: the HTTP client streams
    a part from disk instead of holding it (up to 64 MB) in memory. It has no fileno(), so the
    client measures it by seeking, not by the size of the whole spool file."""

    def __init__(self, spool: IO[bytes], start: int, length: int) -> None:
        super().__init__()
        self._spool, self._start, self._length, self._pos = spool, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._length - self._pos)
        if wanted <= 0:
            return 0
        self._spool.seek(self._start + self._pos)
        data = self._spool.read(wanted)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _send_part(upload: FileUpload, index: int, spool: IO[bytes], start: int, length: int,
               part_headers: PartHeaders | None) -> str:
    attempts: int = settings.FILES_PART_ATTEMPTS
    for attempt in range(attempts):
        headers = dict(part_headers(index, attempt)) if part_headers else None
        FileUpload.objects.filter(pk=upload.pk).update(part_attempts=upload.part_attempts + 1)
        upload.part_attempts += 1
        try:
            part = provider_call(
                upload.connection,
                lambda client, headers=headers: client.uploads.parts.create(  # type: ignore[misc]
                    upload.upload_id, data=(f"part-{index}", _PartReader(spool, start, length)), extra_headers=headers),
                _NO_SDK_RETRIES,
            )
        except ProviderError as error:
            if not error.transient or attempt == attempts - 1:
                raise
            time.sleep(_backoff(error, attempt))
            continue
        return part.id
    raise AssertionError("unreachable: the last attempt returns or raises")


def upload_in_parts(
    *,
    team: Team,
    connection: ProviderConnection,
    purpose: str,
    name: str,
    spool: IO[bytes],
    size: int,
    sha256: str,
    mime_type: str,
    part_headers: PartHeaders | None = None,
) -> tuple[FileUpload, Any]:
    """Send the spooled file in parts; return the FileUpload row and the provider's File object."""
    part_bytes: int = settings.FILES_PART_BYTES
    remote_upload = provider_call(
        connection,
        lambda client: client.uploads.create(bytes=size, filename=name, mime_type=mime_type, purpose=purpose),  # type: ignore[arg-type]
    )
    upload = FileUpload.objects.create(team=team, connection=connection, upload_id=remote_upload.id, name=name,
                                       purpose=purpose, bytes=size, sha256=sha256, part_bytes=part_bytes)
    try:
        md5 = hashlib.md5(usedforsecurity=False)
        spool.seek(0)
        while chunk := spool.read(1024 * 1024):
            md5.update(chunk)
        for index, start in enumerate(range(0, size, part_bytes)):
            part_id = _send_part(upload, index, spool, start, min(part_bytes, size - start), part_headers)
            upload.part_ids.append(part_id)
            upload.save(update_fields=["part_ids", "updated_at"])
        completed = provider_call(
            connection, lambda client: client.uploads.complete(upload.upload_id, part_ids=upload.part_ids, md5=md5.hexdigest())
        )
        if completed.file is None:
            raise ProviderError(f"The provider completed upload {upload.upload_id} without a file.")
    except BaseException:
        with contextlib.suppress(ProviderError):
            provider_call(connection, lambda client: client.uploads.cancel(upload.upload_id))
        upload.delete()
        raise
    upload.status = UploadStatus.COMPLETED
    upload.save(update_fields=["status", "updated_at"])
    return upload, completed.file


def _cancel(client: OpenAI, *, upload_id: str) -> object:
    return client.uploads.cancel(upload_id)


def uploads_reap_stale(*, older_than: timedelta = timedelta(hours=1)) -> int:
    """Cancel multi-part uploads left pending by a process that died mid-way, so neither side
    keeps half a file. A pending row is touched after every part, so only abandoned ones are this old."""
    reaped = 0
    stale = FileUpload.objects.filter(status=UploadStatus.PENDING, updated_at__lt=timezone.now() - older_than)
    for upload in stale.select_related("connection"):
        try:
            provider_call(upload.connection, partial(_cancel, upload_id=upload.upload_id))
        except ProviderError as error:
            if error.transient:
                continue  # try again on the next round
            # Otherwise it is already cancelled, completed or expired there: nothing left to undo.
        upload.delete()
        reaped += 1
    return reaped

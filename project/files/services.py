"""Writes for the file library: the one place files go to and come from a provider.

Other features (fine-tuning, batches, chat attachments) call `file_upload` and
`file_fetch_remote`; they never call the Files API themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO

from django.contrib.auth.models import User
from django.core.files import File as DjangoFile
from django.db import transaction

from project.files.models import File, FileOrigin, FileState
from project.providers.client import ProviderError, client_for, provider_call, provider_errors
from project.providers.models import ProviderConnection
from project.teams.models import Team
from project.teams.services import audit_record

CHUNK = 1024 * 1024


class FileRejected(Exception):
    """The file cannot be sent: wrong type, too big, empty. The message says why."""


def _spool(chunks: Iterable[bytes]) -> tuple[IO[bytes], str, int]:
    """Copy chunks to a temporary file, hashing as we go, so a big file is never in memory at once."""
    digest = hashlib.sha256()
    size = 0
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it.
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        spool.write(chunk)
    spool.seek(0)
    return spool, digest.hexdigest(), size


def _from_timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def file_find_reusable(*, connection: ProviderConnection, sha256: str, purpose: str) -> File | None:
    return File.objects.filter(connection=connection, sha256=sha256, purpose=purpose, state=FileState.ACTIVE).first()


def file_upload(
    *,
    team: Team,
    connection: ProviderConnection,
    purpose: str,
    name: str,
    chunks: Iterable[bytes],
    actor: User | None,
) -> File:
    """Send a file to the provider and record it; the same bytes with the same
    purpose on the same connection are not sent twice. On a provider error
    nothing is left behind here, and ProviderError propagates."""
    spool, sha256, size = _spool(chunks)
    with spool:
        if size == 0:
            raise FileRejected(f"{name} is empty.")
        existing = file_find_reusable(connection=connection, sha256=sha256, purpose=purpose)
        if existing is not None:
            return existing
        remote = provider_call(connection, lambda client: client.files.create(file=(name, spool), purpose=purpose))  # type: ignore[arg-type]
        spool.seek(0)
        try:
            with transaction.atomic():
                record = File(
                    team=team, connection=connection, remote_id=remote.id, purpose=purpose, name=name, bytes=size,
                    sha256=sha256, mime_type=mimetypes.guess_type(name)[0] or "", origin=FileOrigin.UPLOADED,
                    uploaded_by=actor, remote_created_at=_from_timestamp(remote.created_at),
                    expires_at=_from_timestamp(getattr(remote, "expires_at", None)),
                )
                record.content.save(name, DjangoFile(spool), save=False)
                record.save()
                audit_record(team=team, actor=actor, action="file.uploaded", target=name, remote_id=remote.id)
        except Exception:
            # Keep the provider in step: the upload is undone if we could not record it.
            with contextlib.suppress(ProviderError):
                provider_call(connection, lambda client: client.files.delete(remote.id))
            raise
    return record


def file_fetch_remote(
    *, team: Team, connection: ProviderConnection, remote_id: str, origin: str = FileOrigin.PROVIDER
) -> File:
    """Download a provider-made file (batch output, fine-tune results) into the
    library, streaming it to local storage. Returns the existing row if fetched before."""
    existing = File.objects.filter(connection=connection, remote_id=remote_id).first()
    if existing is not None and existing.content:
        return existing
    meta = provider_call(connection, lambda client: client.files.retrieve(remote_id))

    def download() -> tuple[IO[bytes], str, int]:
        # The request is made when the context is entered, so errors are translated around it.
        with provider_errors(), client_for(connection).files.with_streaming_response.content(remote_id) as response:
            return _spool(response.iter_bytes(CHUNK))

    spool, sha256, size = download()
    with spool, transaction.atomic():
        record = existing or File(team=team, connection=connection, remote_id=remote_id)
        record.purpose = meta.purpose
        record.name = meta.filename
        record.bytes = size
        record.sha256 = sha256
        record.mime_type = mimetypes.guess_type(meta.filename)[0] or ""
        record.origin = origin if existing is None else existing.origin
        record.remote_created_at = _from_timestamp(meta.created_at)
        record.content.save(meta.filename, DjangoFile(spool), save=False)
        record.save()
    return record


def file_open(*, file: File) -> IO[bytes]:
    """The local copy, for previews and downloads."""
    return file.content.open("rb")

"""Writes for the file library: the one place files go to and come from a provider.

Other features (fine-tuning, batches, chat attachments) call `file_upload` and
`file_fetch_remote`; they never call the Files API themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import IO

from django.contrib.auth.models import User
from django.core.files import File as DjangoFile
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import QuerySet

from project.files.limits import FileRejected, check_upload, sniff_image_type
from project.files.models import File, FileOrigin, FileState
from project.files.uploads import PartHeaders, upload_in_parts, use_parts
from project.files.usage import FileUsage, file_usages
from project.providers.client import ProviderError, ProviderNotFound, client_for, provider_call, provider_errors
from project.providers.models import ProviderConnection
from project.providers.timestamps import provider_datetime
from project.teams.models import Team
from project.teams.services import audit_record

__all__ = ["FileInUse", "FileRejected", "file_delete", "file_fetch_remote", "file_open", "file_upload"]

CHUNK = 1024 * 1024
log = logging.getLogger(__name__)


class FileInUse(Exception):
    """The file is still needed by an active job or batch."""

    def __init__(self, message: str, usages: list[FileUsage]) -> None:
        super().__init__(message)
        self.message = message
        self.usages = usages


def _spool(chunks: Iterable[bytes]) -> tuple[IO[bytes], str, int]:
    """Copy chunks to a temporary file, hashing as we go, so a big file is never in memory at once."""
    digest = hashlib.sha256()
    size = 0
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it.
    try:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, digest.hexdigest(), size


def clean_name(name: str) -> str:
    """A display and storage name: no directories, no control characters, at most 255 characters."""
    base = PurePosixPath(name.replace("\\", "/")).name.strip()
    base = "".join(ch for ch in base if ch.isprintable()) or "file"
    if len(base) > 255:
        ext = PurePosixPath(base).suffix[:20]
        base = base[: 255 - len(ext)] + ext
    return base


def mime_type_for(name: str, head: bytes = b"") -> str:
    """Images by their bytes (never by name), everything else by extension."""
    sniffed = sniff_image_type(head)
    if sniffed:
        return sniffed
    if name.lower().endswith(".jsonl"):
        return "application/jsonl"
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    # A name must not make us serve something as an image or as HTML later.
    return "application/octet-stream" if guessed.startswith("image/") or "html" in guessed or "svg" in guessed else guessed


@contextlib.contextmanager
def _content_lock(connection: ProviderConnection, sha256: str, purpose: str) -> Iterator[None]:
    """One upload of the same bytes per connection at a time, so two tabs cannot both send it.
    A PostgreSQL session advisory lock: it lasts across the provider call without a transaction."""
    key = int.from_bytes(hashlib.sha256(f"file:{connection.pk}:{sha256}:{purpose}".encode()).digest()[:8], "big", signed=True)
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _known(*, team: Team, connection: ProviderConnection, remote_id: str) -> QuerySet[File]:
    """The row of a remote file, whichever of the team's connections to that provider made it."""
    return File.objects.filter(team=team, provider_address=connection.files_address, remote_id=remote_id)


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
    part_headers: PartHeaders | None = None,
) -> File:
    """Send a file to the provider and record it; the same bytes with the same
    purpose on the same connection are not sent twice (the existing File is returned).

    The provider's limits are checked first (FileRejected says which). Files over
    FILES_SINGLE_UPLOAD_MAX_BYTES go through the Uploads API in parts, each part
    retried alone on a transient failure. On any failure nothing is left behind,
    here or on the provider, and the error (FileRejected or ProviderError) propagates.
    `part_headers(index, attempt)` adds headers to a part request (fault drills).
    """
    if connection.team_id != team.pk:
        raise ValueError("the connection belongs to another team")
    name = clean_name(name)
    spool, sha256, size = _spool(chunks)
    with spool:
        sniffed = check_upload(name=name, purpose=purpose, size=size, stream=spool)
        mime_type = sniffed or mime_type_for(name, spool.read(16))
        spool.seek(0)
        with _content_lock(connection, sha256, purpose):
            existing = file_find_reusable(connection=connection, sha256=sha256, purpose=purpose)
            if existing is not None:
                return existing
            if use_parts(size):
                upload, remote = upload_in_parts(team=team, connection=connection, purpose=purpose, name=name, spool=spool,
                                                 size=size, sha256=sha256, mime_type=mime_type, part_headers=part_headers)
            else:
                upload = None
                remote = provider_call(connection, lambda client: client.files.create(file=(name, spool), purpose=purpose))  # type: ignore[arg-type]
            spool.seek(0)
            try:
                with transaction.atomic():
                    # A sync running meanwhile may already have imported this remote file: adopt that row.
                    record = _known(team=team, connection=connection, remote_id=remote.id).select_for_update().first()
                    record = record or File(team=team, connection=connection, remote_id=remote.id)
                    record.purpose = purpose
                    record.name = name
                    record.bytes = size
                    record.sha256 = sha256
                    record.mime_type = mime_type
                    record.origin = FileOrigin.UPLOADED
                    record.state = FileState.ACTIVE
                    record.uploaded_by = actor
                    record.remote_created_at = provider_datetime(remote.created_at)
                    record.expires_at = provider_datetime(getattr(remote, "expires_at", None))
                    record.content.save(name, DjangoFile(spool), save=False)
                    record.save()
                    if upload is not None:
                        upload.file = record
                        upload.save(update_fields=["file", "updated_at"])
                    audit_record(team=team, actor=actor, action="file.uploaded", target=name, remote_id=remote.id,
                                 bytes=size, parts=len(upload.part_ids) if upload else 0)
            except Exception:
                # Keep the provider in step: the upload is undone if we could not record it.
                with contextlib.suppress(ProviderError):
                    provider_call(connection, lambda client: client.files.delete(remote.id))
                if upload is not None:
                    upload.delete()
                raise
    return record


def file_fetch_remote(
    *, team: Team, connection: ProviderConnection, remote_id: str, origin: str = FileOrigin.PROVIDER
) -> File:
    """Download a provider-made file (batch output, fine-tune results) into the
    library, streaming it to local storage. Returns the existing row if fetched before;
    an imported row without a local copy gets one."""
    if connection.team_id != team.pk:
        raise ValueError("the connection belongs to another team")
    existing = _known(team=team, connection=connection, remote_id=remote_id).first()
    if existing is not None and existing.content:
        return existing
    meta = provider_call(connection, lambda client: client.files.retrieve(remote_id))

    def download() -> tuple[IO[bytes], str, int]:
        # The request is made when the context is entered, so errors are translated around it.
        with provider_errors(), client_for(connection).files.with_streaming_response.content(remote_id) as response:
            return _spool(response.iter_bytes(CHUNK))

    spool, sha256, size = download()
    name = clean_name(meta.filename)
    with spool, transaction.atomic():
        record = existing or File(team=team, connection=connection, remote_id=remote_id)
        record.purpose = meta.purpose
        record.name = name
        record.bytes = size
        record.sha256 = sha256
        record.mime_type = mime_type_for(name, spool.read(16))
        spool.seek(0)
        record.origin = origin if existing is None else existing.origin
        record.state = FileState.ACTIVE
        record.missing_since = None
        record.remote_created_at = provider_datetime(meta.created_at)
        record.expires_at = provider_datetime(getattr(meta, "expires_at", None))
        record.content.save(name, DjangoFile(spool), save=False)
        record.save()
    return record


def file_open(*, file: File) -> IO[bytes]:
    """The local copy, for previews and downloads. An imported or provider-made file
    without one is fetched first (ProviderError if the provider refuses)."""
    if not file.content:
        fetched = file_fetch_remote(team=file.team, connection=file.connection, remote_id=file.remote_id)
        file.content = fetched.content
        file.sha256, file.bytes, file.mime_type = fetched.sha256, fetched.bytes, fetched.mime_type
    return file.content.open("rb")


def file_blockers(*, file: File) -> tuple[list[FileUsage], list[FileUsage]]:
    """(all uses, active uses) of the file, from the usage registry."""
    usages = file_usages(team=file.team, files=[file])[file.pk]
    return usages, [u for u in usages if u.active]


def file_delete(*, team: Team, file: File, actor: User | None) -> None:
    """Delete the file on the provider and here. Refused (FileInUse) while an active job
    or batch uses it. The row is kept, marked deleted, so jobs that used it keep their history."""
    if file.team_id != team.pk:
        raise ValueError("the file belongs to another team")
    _, active = file_blockers(file=file)
    if active:
        names = "; ".join(f"{u.kind} {u.label}" for u in active)
        raise FileInUse(f"{file.name} is still used by {names}. Wait until it finishes, or cancel it, then delete.", active)
    if file.state == FileState.ACTIVE:
        # Already gone there (404): deleting here is what is left to do.
        with contextlib.suppress(ProviderNotFound):
            provider_call(file.connection, lambda client: client.files.delete(file.remote_id))
    content = file.content
    with transaction.atomic():
        file.state = FileState.DELETED
        file.content = ""
        file.save(update_fields=["state", "content"])
        audit_record(team=team, actor=actor, action="file.deleted", target=file.name, remote_id=file.remote_id)
    if content:
        transaction.on_commit(lambda: content.storage.delete(content.name))  # type: ignore[arg-type]


def files_sync_connection(*, connection: ProviderConnection, page_size: int = 1000) -> dict[str, int]:
    """One paged list of the provider's files: files made elsewhere are imported (marked so),
    files gone from the provider are marked missing (never dropped), reappearing ones restored."""
    started = datetime.now(tz=UTC)
    seen: set[str] = set()
    imported = 0
    address = connection.files_address
    with provider_errors():
        # Iterating the page fetches the following pages, so it stays inside provider_errors().
        for remote in client_for(connection).files.list(limit=page_size):
            seen.add(remote.id)
            # A file another connection to the same provider already has is that row, not a copy.
            _, created = File.objects.get_or_create(
                team_id=connection.team_id, provider_address=address, remote_id=remote.id,
                defaults={
                    "connection": connection, "purpose": remote.purpose, "name": clean_name(remote.filename),
                    "bytes": remote.bytes or 0, "mime_type": mime_type_for(remote.filename),
                    "origin": FileOrigin.IMPORTED, "remote_created_at": provider_datetime(remote.created_at),
                    "expires_at": provider_datetime(getattr(remote, "expires_at", None)),
                },
            )
            imported += created
    # Missing is judged only for this connection's rows: another key at the same address may
    # belong to another project, whose files this listing does not show.
    here = File.objects.filter(connection=connection).exclude(state=FileState.DELETED)
    # Only rows older than the listing can be judged missing: one uploaded meanwhile may not be listed yet.
    gone = here.filter(state=FileState.ACTIVE, created_at__lt=started).exclude(remote_id__in=seen)
    missing = gone.update(state=FileState.MISSING, missing_since=started)
    listed = File.objects.filter(team_id=connection.team_id, provider_address=address, remote_id__in=seen)
    restored = listed.filter(state=FileState.MISSING).update(state=FileState.ACTIVE, missing_since=None)
    return {"imported": imported, "missing": missing, "restored": restored, "listed": len(seen)}


def files_sync_team(*, team: Team, actor: User | None = None) -> dict[str, dict[str, int] | str]:
    """Sync every connection of the team; one failing connection does not stop the others."""
    results: dict[str, dict[str, int] | str] = {}
    for connection in ProviderConnection.objects.filter(team=team):
        try:
            results[connection.name] = files_sync_connection(connection=connection)
        except ProviderError as error:
            log.warning("file sync of connection %s failed: %s", connection.pk, error.message)
            results[connection.name] = error.message
    audit_record(team=team, actor=actor, action="file.synced", target="", results=results)
    return results


"""Sync with the provider (imported and missing marks) and the delete rules."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import openai
import pytest
from django.urls import reverse

from project.files.models import File, FileOrigin, FileState
from project.files.services import FileInUse, file_delete, file_upload, files_sync_connection
from project.files.usage import FileUsage, register_file_usage, unregister_file_usage
from project.teams.models import Role
from tests.conftest import client_for
from tests.factories import add_member


def _upload(team, connection, data: bytes = b"hello, library\n", name: str = "notes.txt") -> File:
    return file_upload(team=team, connection=connection, purpose="user_data", name=name, chunks=[data], actor=None)


def test_a_sync_imports_files_made_elsewhere_without_copying_them(team, connection, provider) -> None:
    made_elsewhere = provider.files.create(file=("elsewhere.csv", io.BytesIO(b"q,a\n1,2\n")), purpose="user_data")

    result = files_sync_connection(connection=connection)

    imported = File.objects.get(connection=connection, remote_id=made_elsewhere.id)
    assert imported.origin == FileOrigin.IMPORTED and imported.state == FileState.ACTIVE
    assert imported.name == "elsewhere.csv" and imported.bytes == 8 and not imported.has_local_copy
    assert result["imported"] >= 1
    # A second sync finds nothing new.
    assert files_sync_connection(connection=connection)["imported"] == 0


def test_an_imported_file_is_fetched_on_demand_for_download(team, connection, provider, owner_client) -> None:
    remote = provider.files.create(file=("report.txt", io.BytesIO(b"made on the provider")), purpose="user_data")
    files_sync_connection(connection=connection)
    imported = File.objects.get(remote_id=remote.id)

    response = owner_client.get(reverse("file_download", args=[imported.pk]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"made on the provider"
    imported.refresh_from_db()
    assert imported.has_local_copy and imported.origin == FileOrigin.IMPORTED


def test_files_deleted_on_the_provider_are_marked_missing_not_dropped(team, connection, provider, owner_client) -> None:
    kept = _upload(team, connection, b"kept\n", "kept.txt")
    gone = _upload(team, connection, b"gone\n", "gone.txt")
    provider.files.delete(gone.remote_id)

    result = files_sync_connection(connection=connection)

    gone.refresh_from_db()
    kept.refresh_from_db()
    assert result["missing"] == 1
    assert gone.state == FileState.MISSING and gone.missing_since is not None
    assert kept.state == FileState.ACTIVE
    page = owner_client.get(reverse("file_list")).content.decode()
    assert "gone.txt" in page and "Missing on the provider" in page


def test_it_deletes_a_file_on_the_provider_and_here(team, connection, provider, owner_client,
                                                    django_capture_on_commit_callbacks) -> None:
    record = _upload(team, connection)
    local_path = record.content.path

    confirm = owner_client.get(reverse("file_delete", args=[record.pk]))
    assert "Nothing uses this file" in confirm.content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the local copy goes once the row is committed
        response = owner_client.post(reverse("file_delete", args=[record.pk]))

    assert response.status_code == 302
    record.refresh_from_db()
    assert record.state == FileState.DELETED and not record.has_local_copy
    with pytest.raises(openai.NotFoundError):
        provider.files.retrieve(record.remote_id)
    assert not Path(local_path).exists()
    listing = owner_client.get(reverse("file_list")).content.decode()
    assert "Deleted notes.txt here and on the provider." in listing
    assert f'id="file-{record.pk}"' not in listing


@pytest.fixture
def used_by_a_running_job() -> Iterator[dict[int, bool]]:
    """A usage provider as the fine-tuning app would register one: file pk -> job active?"""
    uses: dict[int, bool] = {}

    def fake_finetune_usages(team, files: Sequence[File]) -> dict[int, list[FileUsage]]:
        return {f.pk: [FileUsage(kind="Fine-tune job", label="ftjob-42", active=uses[f.pk])] for f in files if f.pk in uses}

    register_file_usage(fake_finetune_usages)
    yield uses
    unregister_file_usage(fake_finetune_usages)


def test_a_file_used_by_an_active_job_cannot_be_deleted(team, connection, provider, owner_client, used_by_a_running_job) -> None:
    record = _upload(team, connection)
    used_by_a_running_job[record.pk] = True

    confirm = owner_client.get(reverse("file_delete", args=[record.pk])).content.decode()
    assert "cannot be deleted" in confirm and "Fine-tune job ftjob-42" in confirm
    response = owner_client.post(reverse("file_delete", args=[record.pk]), follow=True)

    assert "still used by Fine-tune job ftjob-42" in response.content.decode()
    record.refresh_from_db()
    assert record.state == FileState.ACTIVE
    assert provider.files.retrieve(record.remote_id).id == record.remote_id
    with pytest.raises(FileInUse):
        file_delete(team=team, file=record, actor=None)
    # The list shows where it is used.
    assert "Fine-tune job ftjob-42" in owner_client.get(reverse("file_list")).content.decode()


def test_a_file_used_by_a_finished_job_can_be_deleted_after_saying_so(team, connection, owner_client,
                                                                     used_by_a_running_job) -> None:
    record = _upload(team, connection)
    used_by_a_running_job[record.pk] = False

    confirm = owner_client.get(reverse("file_delete", args=[record.pk])).content.decode()
    assert "It was used by" in confirm and "Fine-tune job ftjob-42" in confirm
    owner_client.post(reverse("file_delete", args=[record.pk]))

    record.refresh_from_db()
    assert record.state == FileState.DELETED


def test_a_viewer_cannot_delete_or_upload(team, connection) -> None:
    record = _upload(team, connection)
    viewer = client_for(add_member(team, role=Role.VIEWER).user)

    assert viewer.post(reverse("file_delete", args=[record.pk])).status_code == 403
    assert viewer.post(reverse("file_upload"), {"purpose": "user_data"}).status_code == 403
    record.refresh_from_db()
    assert record.state == FileState.ACTIVE


def test_a_file_already_gone_on_the_provider_can_still_be_deleted_here(team, connection, provider) -> None:
    record = _upload(team, connection)
    provider.files.delete(record.remote_id)
    file_delete(team=team, file=record, actor=None)
    record.refresh_from_db()
    assert record.state == FileState.DELETED

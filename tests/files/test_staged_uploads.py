"""Big browser uploads: the request ends once the bytes are here; a real Celery worker (queue io)
sends them to the provider in parts, and the page follows the UploadRequest."""

from __future__ import annotations

import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from project.files.models import File, FileUpload, UploadRequest

pytestmark = pytest.mark.django_db(transaction=True)

LINES = b"".join(json.dumps({"custom_id": str(i), "body": {"n": i}}).encode() + b"\n" for i in range(60))


def _wait_until_finished(client, status_url: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while True:
        status = client.get(status_url, headers={"Accept": "application/json"}).json()
        if status["finished"]:
            return status
        assert time.monotonic() < deadline, f"the upload never finished: {status}"
        time.sleep(0.1)


def test_a_big_upload_is_sent_on_in_parts_by_the_worker(celery_worker_session, team, connection, provider,
                                                         owner_client, small_parts, media_root) -> None:
    upload = SimpleUploadedFile("big.jsonl", LINES)
    reply = owner_client.post(reverse("file_upload"), {"connection": connection.pk, "purpose": "batch", "file": upload},
                              headers={"Accept": "application/json"}).json()
    assert reply["ok"] and reply["pending"]

    status = _wait_until_finished(owner_client, reply["status_url"])

    record = File.objects.get()
    assert status["status"] == "done" and status["url"] == reverse("file_detail", args=[record.pk])
    assert provider.files.content(record.remote_id).read() == LINES
    assert len(FileUpload.objects.get(file=record).part_ids) == -(-len(LINES) // 400)
    assert not list((media_root / "files" / "staging").rglob("*.jsonl")), "the staged copy is removed"
    assert "big.jsonl" in owner_client.get(reverse("file_list")).content.decode()


def test_a_big_upload_the_worker_rejects_says_why_and_leaves_nothing(celery_worker_session, team, connection, provider,
                                                                      owner_client, small_parts, media_root) -> None:
    before = {f.id for f in provider.files.list()}
    upload = SimpleUploadedFile("big.jsonl", LINES + b"{broken\n")
    reply = owner_client.post(reverse("file_upload"), {"connection": connection.pk, "purpose": "batch", "file": upload},
                              headers={"Accept": "application/json"}).json()

    status = _wait_until_finished(owner_client, reply["status_url"])

    assert status["status"] == "failed" and "line 61: not valid JSON" in str(status["error"])
    assert not File.objects.exists() and not FileUpload.objects.exists()
    assert {f.id for f in provider.files.list()} == before
    assert not list((media_root / "files" / "staging").rglob("*.jsonl"))
    assert UploadRequest.objects.get().error in owner_client.get(reverse("file_list")).content.decode()

"""The "Sync with provider" button runs the sync on a real Celery worker (queue io)."""

from __future__ import annotations

import io
import time

import pytest
from django.urls import reverse

from project.files.models import File, FileOrigin

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_sync_button_imports_files_through_the_worker(celery_worker_session, team, connection, provider,
                                                          owner_client) -> None:
    remote = provider.files.create(file=("made-elsewhere.txt", io.BytesIO(b"x")), purpose="user_data")

    response = owner_client.post(reverse("file_sync"), headers={"HX-Request": "true"})
    assert "Syncing with the provider" in response.content.decode()

    deadline = time.monotonic() + 20
    while not File.objects.filter(remote_id=remote.id).exists():
        assert time.monotonic() < deadline, "the worker did not import the file"
        time.sleep(0.1)
    assert File.objects.get(remote_id=remote.id).origin == FileOrigin.IMPORTED
    deadline = time.monotonic() + 10
    while (status := owner_client.get(reverse("file_sync_status"), headers={"HX-Request": "true"})).status_code != 286:
        assert time.monotonic() < deadline, "the sync status never ended"
        time.sleep(0.1)
    assert "1 imported" in status.content.decode()

"""Datasets are read with bounded memory: a line over the limit is reported and skipped
unread, and an upload over the provider's file size is refused before it is kept."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs_app.finetune.models import Dataset, DatasetStatus
from jobs_app.finetune.validation import MAX_LINE_BYTES, LongLine, bounded_lines
from tests.factories import chat_example, jsonl, make_dataset

pytestmark = pytest.mark.django_db


def test_lines_over_the_limit_are_skipped_unread_and_the_others_kept() -> None:
    stream = io.BytesIO(b'{"a": 1}\n' + b"x" * 25 + b"\n" + b"y" * 10 + b"\n" + b"z" * 40)
    assert list(bounded_lines(stream, limit=10)) == [b'{"a": 1}\n', LongLine(26), b"y" * 10 + b"\n", LongLine(40)]


def test_a_dataset_with_a_line_too_long_to_read_is_invalid_with_the_reason(team) -> None:
    good = jsonl([chat_example(i) for i in range(12)])
    huge = b'{"messages": [{"role": "user", "content": "' + b"a" * MAX_LINE_BYTES + b'"}]}\n'
    dataset = make_dataset(team, content=good + huge)
    assert dataset.status == DatasetStatus.INVALID
    [error] = dataset.report["errors"]
    assert error["line"] == 13 and error["kind"] == "line_too_long"
    assert f"the limit is {MAX_LINE_BYTES:,} bytes a line" in error["detail"]
    assert dataset.report["examples"] == 12  # the other lines were read as usual


def test_an_upload_over_the_size_limit_is_refused_with_a_message(owner_client, team, settings) -> None:
    settings.FILES_MAX_BYTES = 2 * 1024 * 1024
    content = jsonl([chat_example(i) for i in range(12)]) * 3000  # about 3 MB
    response = owner_client.post(reverse("finetune_dataset_upload"), {
        "method": "supervised", "model_id": "gpt-4.1-mini",
        "training_file": SimpleUploadedFile("big.jsonl", content, content_type="application/jsonl")}, follow=True)
    assert response.status_code == 200
    assert "big.jsonl is larger than 2.0\xa0MB, the most a provider accepts" in response.content.decode()
    assert not Dataset.objects.exists()

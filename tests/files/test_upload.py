"""Uploading through file_upload against the sandbox over real HTTP."""

from __future__ import annotations

import json

import openai
import pytest

from project.files.limits import FileRejected
from project.files.models import File, FileUpload, UploadStatus
from project.files.services import file_upload
from project.providers.client import ProviderError, ProviderServerError

TRAINING = b"".join(
    json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}).encode() + b"\n"
    for i in range(40)
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _upload(team, connection, data: bytes, *, name: str = "train.jsonl", purpose: str = "fine-tune", **extra) -> File:
    # Chunks of 100 bytes, as a browser upload or a streamed batch input would arrive.
    chunks = (data[i : i + 100] for i in range(0, len(data), 100))
    return file_upload(team=team, connection=connection, purpose=purpose, name=name, chunks=chunks, actor=None, **extra)


def _provider_ids(provider: openai.OpenAI) -> set[str]:
    return {f.id for f in provider.files.list()}


def test_it_uploads_a_file_and_keeps_a_local_copy(team, connection, provider) -> None:
    record = _upload(team, connection, TRAINING)

    assert record.bytes == len(TRAINING) and record.purpose == "fine-tune" and record.state == "active"
    assert provider.files.content(record.remote_id).read() == TRAINING
    with record.content.open("rb") as local:
        assert local.read() == TRAINING
    assert record.mime_type == "application/jsonl"


def test_it_reuses_the_file_when_the_same_content_is_uploaded_again(team, connection, provider) -> None:
    first = _upload(team, connection, TRAINING, name="a.jsonl")
    before = _provider_ids(provider)

    second = _upload(team, connection, TRAINING, name="renamed.jsonl")

    assert second.pk == first.pk
    assert _provider_ids(provider) == before
    assert File.objects.filter(team=team).count() == 1


def test_the_same_content_with_another_purpose_is_a_new_provider_file(team, connection) -> None:
    first = _upload(team, connection, TRAINING, purpose="fine-tune")
    second = _upload(team, connection, TRAINING, purpose="batch")
    assert second.remote_id != first.remote_id


def test_it_sends_a_big_file_in_parts(team, connection, provider, small_parts) -> None:
    data = TRAINING * 2  # > 1000 bytes: parts of 400
    record = _upload(team, connection, data)

    upload = FileUpload.objects.get(file=record)
    assert upload.status == UploadStatus.COMPLETED
    assert len(upload.part_ids) == -(-len(data) // 400)
    assert upload.part_attempts == len(upload.part_ids)
    assert provider.files.content(record.remote_id).read() == data


def test_a_failed_part_is_retried_alone_and_the_upload_completes(team, connection, provider, small_parts) -> None:
    data = TRAINING * 2
    sent: list[tuple[int, int]] = []

    def fault_on_second_part_once(index: int, attempt: int) -> dict[str, str]:
        sent.append((index, attempt))
        return {"X-Sandbox-Fault": "500"} if (index, attempt) == (1, 0) else {}

    record = _upload(team, connection, data, part_headers=fault_on_second_part_once)

    upload = FileUpload.objects.get(file=record)
    parts = len(upload.part_ids)
    # Part 1 was sent twice; every other part exactly once (the parts already sent were not re-sent).
    assert sent == [(0, 0), (1, 0), (1, 1), *[(i, 0) for i in range(2, parts)]]
    assert upload.part_attempts == parts + 1
    assert provider.files.content(record.remote_id).read() == data


def test_a_part_that_keeps_failing_cancels_the_upload_and_leaves_nothing(team, connection, provider, small_parts) -> None:
    before = _provider_ids(provider)
    seen_upload: list[str] = []

    def always_fail_part_two(index: int, attempt: int) -> dict[str, str]:
        seen_upload.append(FileUpload.objects.get().upload_id)
        return {"X-Sandbox-Fault": "500"} if index == 2 else {}

    with pytest.raises(ProviderServerError):
        _upload(team, connection, TRAINING * 2, part_headers=always_fail_part_two)

    assert not File.objects.exists() and not FileUpload.objects.exists()
    assert _provider_ids(provider) == before
    # The Upload was cancelled on the provider: it cannot be completed any more.
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        provider.uploads.complete(seen_upload[0], part_ids=[])


@pytest.mark.parametrize(
    ("name", "purpose", "data", "message"),
    [
        ("empty.jsonl", "fine-tune", b"", "is empty"),
        ("train.csv", "fine-tune", b"a,b\n1,2\n", "must be JSONL"),
        ("train.jsonl", "fine-tune", b'{"messages": []}\n{"messages": [\n', "line 2: not valid JSON"),
        ("batch.jsonl", "batch", b'{"custom_id": "1"}\n[1, 2]\n', "line 2: each line must be a JSON object"),
        ("batch.jsonl", "batch", b"\n\n", "has no JSON lines"),
        ("cat.png", "vision", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "PNG, JPEG, GIF or WebP"),
        ("out.jsonl", "batch_output", b'{"a": 1}\n', "not a purpose files can be uploaded with"),
    ],
)
def test_it_rejects_bad_input_before_sending(team, connection, provider, name, purpose, data, message) -> None:
    before = _provider_ids(provider)
    with pytest.raises(FileRejected, match=message):
        _upload(team, connection, data, name=name, purpose=purpose)
    assert _provider_ids(provider) == before
    assert not File.objects.exists()


def test_it_rejects_a_file_over_the_size_limit(team, connection, settings) -> None:
    settings.FILES_MAX_BYTES = 1000
    with pytest.raises(FileRejected, match="accepts files up to 1000"):
        _upload(team, connection, TRAINING)


@pytest.mark.parametrize(
    ("head", "mime"),
    [(PNG, "image/png"), (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg"), (b"GIF89a" + b"\x00" * 20, "image/gif"),
     (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 20, "image/webp")],
)
def test_it_accepts_vision_images_by_their_bytes(team, connection, head, mime) -> None:
    record = _upload(team, connection, head, name="picture.bin", purpose="vision")
    assert record.mime_type == mime


def test_a_provider_error_leaves_nothing_here(team, files_sandbox) -> None:
    from tests.factories import make_connection

    dead = make_connection(team, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ProviderError):
        _upload(team, dead, TRAINING)
    assert not File.objects.exists()


def test_an_upload_abandoned_by_a_dead_process_is_cancelled_on_the_provider(team, connection, provider) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from project.files.uploads import uploads_reap_stale

    remote = provider.uploads.create(bytes=10, filename="half.jsonl", mime_type="application/jsonl", purpose="batch")
    abandoned = FileUpload.objects.create(team=team, connection=connection, upload_id=remote.id, name="half.jsonl",
                                          purpose="batch", bytes=10, sha256="0" * 64, part_bytes=5, part_ids=[])
    recent_remote = provider.uploads.create(bytes=10, filename="busy.jsonl", mime_type="application/jsonl", purpose="batch")
    FileUpload.objects.create(team=team, connection=connection, upload_id=recent_remote.id, name="busy.jsonl",
                              purpose="batch", bytes=10, sha256="1" * 64, part_bytes=5, part_ids=[])
    FileUpload.objects.filter(pk=abandoned.pk).update(updated_at=timezone.now() - timedelta(hours=2))

    assert uploads_reap_stale() == 1

    assert list(FileUpload.objects.values_list("upload_id", flat=True)) == [recent_remote.id]
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        provider.uploads.complete(remote.id, part_ids=[])

"""An upload over its page's limit is refused before it is kept: the person is sent back
to the form with the reason, no row is made, and no more than the limit of it is written
anywhere (project/upload_limits.py)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse

from jobs_app.finetune.models import Dataset
from project.upload_limits import FORM_OVERHEAD_BYTES, BoundedBodyASGIHandler
from tests.factories import chat_example, jsonl

pytestmark = pytest.mark.django_db

LIMIT = 1024 * 1024
MB = 1024 * 1024


@pytest.fixture
def small_limit(settings: Any) -> None:
    settings.FILES_MAX_BYTES = LIMIT


@pytest.fixture
def kept(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes of uploaded files that reached the handler which writes them to disk."""
    written: list[int] = []
    original = TemporaryFileUploadHandler.receive_data_chunk

    def counting(self: TemporaryFileUploadHandler, raw_data: bytes, start: int) -> bytes | None:
        written.append(len(raw_data))
        return original(self, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", counting)
    return written


def dataset_form(size: int) -> dict[str, Any]:
    content = (jsonl([chat_example(i) for i in range(12)]) * (size // 2000 + 1))[:size]
    return {"method": "supervised", "model_id": "gpt-4.1-mini",
            "training_file": SimpleUploadedFile("big.jsonl", content, content_type="application/jsonl")}


def test_a_dataset_over_the_limit_is_stopped_at_the_limit_and_the_form_says_why(owner_client, small_limit,
                                                                                  kept) -> None:
    response = owner_client.post(reverse("finetune_dataset_upload"), dataset_form(3 * MB), follow=True)
    assert response.redirect_chain == [(reverse("finetune_dataset_upload"), 302)]
    assert "big.jsonl is larger than 1.0\xa0MB, the most a provider accepts for a fine-tuning file." in (
        response.content.decode())
    assert not Dataset.objects.exists()
    assert sum(kept) <= LIMIT  # the rest of the file was read and dropped, never written


def test_a_body_whose_length_is_over_the_limit_is_not_read_at_all(owner_client, small_limit, kept) -> None:
    response = owner_client.post(reverse("finetune_dataset_upload"), dataset_form(2 * LIMIT + FORM_OVERHEAD_BYTES + MB),
                                 follow=True)
    assert "The upload is larger than" in response.content.decode()
    assert "1.0\xa0MB a file is the most a provider accepts for a fine-tuning file." in response.content.decode()
    assert not Dataset.objects.exists()
    assert kept == []


def test_an_upload_under_the_limit_is_taken_as_before(owner_client, settings) -> None:
    settings.FILES_MAX_BYTES = 4 * MB
    response = owner_client.post(reverse("finetune_dataset_upload"), dataset_form(50_000))
    assert response.status_code == 302
    assert Dataset.objects.count() == 1


class CountingSpool(tempfile.SpooledTemporaryFile[bytes]):
    """Django's ASGI handler's copy of the body, counted."""

    written = 0

    def write(self, data: Any) -> int:
        CountingSpool.written += len(data)
        return super().write(data)


def asgi_post(path: str, body: bytes, *, cookies: str, declare_length: bool) -> list[Mapping[str, Any]]:
    """POST `body` to `path` through the ASGI application, in 256 KB messages as a server
    hands them over; with or without a Content-Length (a chunked upload has none)."""
    headers = [(b"host", b"testserver"), (b"content-type", MULTIPART_CONTENT.encode()), (b"cookie", cookies.encode())]
    if declare_length:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    step = 256 * 1024
    pieces = [body[i:i + step] for i in range(0, len(body), step)]
    messages = [{"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1} for i, piece in enumerate(pieces)]
    sent: list[Mapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays until the response is sent
        raise AssertionError

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    # In a thread of its own, as a server runs it (and away from any event loop a test left).
    serving = threading.Thread(target=asyncio.run, args=(BoundedBodyASGIHandler()(scope, receive, send),))
    serving.start()
    serving.join(timeout=60)
    assert not messages, "the whole body is read, so the browser is there for the answer"
    return sent


# Django's ASGI handler runs each request's database work in a thread of its own: that
# thread sees only committed rows.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("declare_length", [True, False])
def test_under_asgi_no_more_than_the_pages_limit_of_the_body_is_kept(owner_client, small_limit, monkeypatch,
                                                                     declare_length: bool) -> None:
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", CountingSpool)  # as django.core.handlers.asgi reads it
    CountingSpool.written = 0
    owner_client.get(reverse("finetune_dataset_upload"))
    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in owner_client.cookies.items())
    size = 2 * LIMIT + FORM_OVERHEAD_BYTES + 4 * MB
    body = encode_multipart(BOUNDARY, dataset_form(size))
    sent = asgi_post(reverse("finetune_dataset_upload"), body, cookies=cookies, declare_length=declare_length)
    start = sent[0]
    assert start["status"] == 302
    assert dict(start["headers"])[b"Location"] == reverse("finetune_dataset_upload").encode()
    assert CountingSpool.written <= 2 * LIMIT + FORM_OVERHEAD_BYTES
    assert not Dataset.objects.exists()
    # The message waits for the form, in the messages cookie.
    cookies_set = [value for name, value in start["headers"] if name.lower() == b"set-cookie"]
    assert any(value.startswith(b"messages=") for value in cookies_set)


@pytest.mark.django_db(transaction=True)
def test_under_asgi_an_address_without_a_limit_of_its_own_refuses_past_the_largest_with_a_sentence(
        small_limit, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", CountingSpool)  # as django.core.handlers.asgi reads it
    CountingSpool.written = 0
    sent = asgi_post("/threads/", b"x" * (LIMIT + FORM_OVERHEAD_BYTES + MB), cookies="", declare_length=True)
    assert sent[0]["status"] == 413
    assert b"The upload is larger than" in sent[1]["body"]
    assert CountingSpool.written == 0


def test_the_limited_pages_still_check_the_csrf_token(owner, team, small_limit) -> None:
    """The limit is checked before CSRF (whose check would parse the upload first); the
    check itself still runs, after it."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    response = browser.post(reverse("finetune_dataset_upload"), dataset_form(50_000))
    assert response.status_code == 403
    assert not Dataset.objects.exists()

"""One API key never sees or touches another key's files, uploads, batches, jobs or models.

And a batch or fine-tuning job whose input file vanishes ends (failed, with the reason)
instead of being retried for ever.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from sandbox_helpers import Spec, wait_for

from sandbox.testing import running_sandbox

KEY_A = "sk-sandbox-team-a"
KEY_B = "sk-sandbox-team-b"


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0)


def _raw(url: str, key: str) -> httpx2.Client:
    return httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _jsonl(lines: list[Any]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(x) + "\n" for x in lines).encode())


def _chat_lines(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"echo: {i}"}]}}
            for i in range(n)]


def _training_lines(n: int) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}]}
            for i in range(n)]


def _assert_not_found(response: httpx2.Response, spec: Spec) -> dict[str, Any]:
    assert response.status_code == 404, response.text
    body: dict[str, Any] = response.json()
    spec.validate("ErrorResponse", body)
    return body["error"]


@pytest.fixture()
def a(sandbox_url: str) -> Iterator[httpx2.Client]:
    with _raw(sandbox_url, KEY_A) as c:
        yield c


@pytest.fixture()
def b(sandbox_url: str) -> Iterator[httpx2.Client]:
    with _raw(sandbox_url, KEY_B) as c:
        yield c


def test_files_of_one_key_are_invisible_and_untouchable_with_another(sandbox_url: str, a: httpx2.Client,
                                                                      b: httpx2.Client, spec: Spec) -> None:
    secret = _client(sandbox_url, KEY_A).files.create(file=("team-a.csv", io.BytesIO(b"name,salary\nann,1\n")),
                                                      purpose="user_data")
    mine = _client(sandbox_url, KEY_B).files.create(file=("team-b.txt", io.BytesIO(b"b")), purpose="user_data")

    listed_by_b = {f["id"] for f in b.get("/files").json()["data"]}
    assert mine.id in listed_by_b and secret.id not in listed_by_b
    assert secret.id in {f["id"] for f in a.get("/files").json()["data"]}
    for response in (b.get(f"/files/{secret.id}"), b.get(f"/files/{secret.id}/content"),
                     b.delete(f"/files/{secret.id}")):
        error = _assert_not_found(response, spec)
        assert error["message"] == f"No such File object: {secret.id}"
    # B's delete did nothing: A still has its bytes.
    assert a.get(f"/files/{secret.id}/content").content == b"name,salary\nann,1\n"


def test_uploads_of_one_key_cannot_be_continued_by_another(a: httpx2.Client, b: httpx2.Client,
                                                           spec: Spec) -> None:
    upload = a.post("/uploads", json={"filename": "big.jsonl", "purpose": "batch", "bytes": 3,
                                      "mime_type": "application/jsonl"}).json()
    _assert_not_found(b.post(f"/uploads/{upload['id']}/parts", files={"data": ("p", b"abc")}), spec)
    _assert_not_found(b.post(f"/uploads/{upload['id']}/complete", json={"part_ids": []}), spec)
    _assert_not_found(b.post(f"/uploads/{upload['id']}/cancel"), spec)
    part = a.post(f"/uploads/{upload['id']}/parts", files={"data": ("p", b"abc")}).json()
    done = a.post(f"/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]}).json()
    assert done["status"] == "completed"
    _assert_not_found(b.get(f"/files/{done['file']['id']}"), spec)


def test_batches_and_their_files_belong_to_the_key_that_made_them(sandbox_url: str, a: httpx2.Client,
                                                                  b: httpx2.Client, spec: Spec) -> None:
    client_a = _client(sandbox_url, KEY_A)
    input_file = client_a.files.create(file=("in.jsonl", _jsonl(_chat_lines(2))), purpose="batch")
    # B cannot run a batch over A's file.
    refused = b.post("/batches", json={"input_file_id": input_file.id, "endpoint": "/v1/chat/completions",
                                       "completion_window": "24h"})
    assert _assert_not_found(refused, spec)["param"] == "input_file_id"
    batch = client_a.batches.create(input_file_id=input_file.id, endpoint="/v1/chat/completions",
                                    completion_window="24h")
    assert batch.id not in {x["id"] for x in b.get("/batches", params={"limit": 100}).json()["data"]}
    assert batch.id in {x["id"] for x in a.get("/batches", params={"limit": 100}).json()["data"]}
    assert _assert_not_found(b.get(f"/batches/{batch.id}"), spec)["message"] == f"No batch found with id '{batch.id}'."
    _assert_not_found(b.post(f"/batches/{batch.id}/cancel"), spec)
    done = wait_for(lambda: client_a.batches.retrieve(batch.id), lambda x: x.status == "completed")
    assert done.output_file_id
    _assert_not_found(b.get(f"/files/{done.output_file_id}/content"), spec)
    assert len(client_a.files.content(done.output_file_id).text.splitlines()) == 2


def test_fine_tuning_jobs_and_their_models_belong_to_the_key_that_made_them(
    sandbox_url: str, a: httpx2.Client, b: httpx2.Client, spec: Spec
) -> None:
    client_a, client_b = _client(sandbox_url, KEY_A), _client(sandbox_url, KEY_B)
    train = client_a.files.create(file=("t.jsonl", _jsonl(_training_lines(10))), purpose="fine-tune")
    refused = b.post("/fine_tuning/jobs", json={"model": "gpt-4.1-mini", "training_file": train.id})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "training_file"
    job = client_a.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=train.id, suffix="private",
                                           hyperparameters={"n_epochs": 1})
    done = wait_for(lambda: client_a.fine_tuning.jobs.retrieve(job.id), lambda j: j.status == "succeeded")
    model = done.fine_tuned_model
    assert model

    assert job.id not in {j["id"] for j in b.get("/fine_tuning/jobs", params={"limit": 100}).json()["data"]}
    for path in ("", "/events", "/checkpoints"):
        error = _assert_not_found(b.get(f"/fine_tuning/jobs/{job.id}{path}"), spec)
        assert error["code"] == "fine_tune_not_found"
    for action in ("cancel", "pause", "resume"):
        _assert_not_found(b.post(f"/fine_tuning/jobs/{job.id}/{action}"), spec)

    b_models = {m.id for m in client_b.models.list()}
    assert model not in b_models and "gpt-4.1-mini" in b_models  # base models are shared
    checkpoint = a.get(f"/fine_tuning/jobs/{job.id}/checkpoints").json()["data"][0]["fine_tuned_model_checkpoint"]
    for name in (model, checkpoint):
        assert _assert_not_found(b.get(f"/models/{name}"), spec)["code"] == "model_not_found"
    chat = b.post("/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert _assert_not_found(chat, spec)["code"] == "model_not_found"
    _assert_not_found(b.delete(f"/models/{model}"), spec)
    # A batch line of B's naming A's model fails as an unknown model would.
    line = {"custom_id": "x", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]}}
    b_file = client_b.files.create(file=("in.jsonl", _jsonl([line])), purpose="batch")
    b_batch = client_b.batches.create(input_file_id=b_file.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
    b_done = wait_for(lambda: client_b.batches.retrieve(b_batch.id), lambda x: x.status == "completed")
    assert b_done.error_file_id and not b_done.output_file_id
    error_line = json.loads(client_b.files.content(b_done.error_file_id).text)
    assert error_line["response"]["body"]["error"]["code"] == "model_not_found"

    refused_response = b.post("/responses", json={"model": model, "input": "hi"})
    assert _assert_not_found(refused_response, spec)["code"] == "model_not_found"

    # A still has all of it.
    assert client_a.models.retrieve(model).id == model
    reply = client_a.chat.completions.create(model=model, messages=[{"role": "user", "content": "echo: mine"}])
    assert reply.choices[0].message.content == "mine"
    assert client_a.responses.create(model=model, input="echo: mine too").output_text == "mine too"


def test_stored_responses_belong_to_the_key_that_made_them(sandbox_url: str, b: httpx2.Client,
                                                           spec: Spec) -> None:
    client_a = _client(sandbox_url, KEY_A)
    stored = client_a.responses.create(model="gpt-4.1-mini", input="echo: private", store=True)
    background = client_a.responses.create(model="gpt-4.1-mini", input="write 200 words", background=True)
    for response in (b.get(f"/responses/{stored.id}"), b.delete(f"/responses/{stored.id}"),
                     b.post(f"/responses/{background.id}/cancel")):
        _assert_not_found(response, spec)
    chained = b.post("/responses", json={"model": "gpt-4.1-mini", "input": "hi", "previous_response_id": stored.id})
    assert chained.status_code in (400, 404) and stored.id in chained.json()["error"]["message"]
    assert client_a.responses.retrieve(stored.id).output_text == "private"


# -- files that vanish under a running batch or job -------------------------------------------

@pytest.fixture()
def slow_sandbox(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Slow enough to act while a batch runs: validating 0.2 s, running 1.2 s, finalizing 0.4 s."""
    with running_sandbox(tmp_path, time_scale=50, tick_seconds=0.05) as url:
        yield url, tmp_path


def _failures_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("how", ["api", "disk"])
def test_a_batch_whose_input_file_vanishes_fails_once_with_the_reason(
    slow_sandbox: tuple[str, Path], how: str, spec: Spec, caplog: pytest.LogCaptureFixture
) -> None:
    url, data_dir = slow_sandbox
    client = _client(url, KEY_A)
    input_file = client.files.create(file=("in.jsonl", _jsonl(_chat_lines(3))), purpose="batch")
    batch = client.batches.create(input_file_id=input_file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    wait_for(lambda: client.batches.retrieve(batch.id), lambda x: x.status == "in_progress")
    caplog.set_level(logging.INFO)
    if how == "api":
        client.files.delete(input_file.id)
    else:  # the bytes disappear from under the sandbox
        (data_dir / "blobs" / input_file.id).unlink()

    failed = wait_for(lambda: client.batches.retrieve(batch.id), lambda x: x.status != "in_progress")
    assert failed.status == "failed"
    assert failed.failed_at and failed.in_progress_at and not failed.completed_at
    assert failed.errors and failed.errors.data
    error = failed.errors.data[0]
    assert (error.code, error.param) == ("file_not_found", "input_file_id")
    assert input_file.id in (error.message or "")
    assert not failed.output_file_id and not failed.error_file_id
    with _raw(url, KEY_A) as raw:
        spec.validate("Batch", raw.get(f"/batches/{batch.id}").json())
    # Long after the batch would have completed it is still failed, and nothing was logged as an error.
    time.sleep(2.0)
    assert client.batches.retrieve(batch.id).status == "failed"
    assert _failures_logged(caplog) == []


def test_a_cancelled_batch_whose_input_vanished_still_ends_cancelled(slow_sandbox: tuple[str, Path]) -> None:
    url, _ = slow_sandbox
    client = _client(url, KEY_A)
    input_file = client.files.create(file=("in.jsonl", _jsonl(_chat_lines(3))), purpose="batch")
    batch = client.batches.create(input_file_id=input_file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    client.batches.cancel(batch.id)
    client.files.delete(input_file.id)
    done = wait_for(lambda: client.batches.retrieve(batch.id), lambda x: x.status != "cancelling")
    assert done.status == "cancelled" and not done.output_file_id


def test_a_job_whose_training_file_vanishes_while_validating_fails(slow_sandbox: tuple[str, Path]) -> None:
    url, _ = slow_sandbox
    client = _client(url, KEY_A)
    train = client.files.create(file=("t.jsonl", _jsonl(_training_lines(10))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=train.id)
    assert job.status == "validating_files"
    client.files.delete(train.id)
    failed = wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id), lambda j: j.status != "validating_files",
                      timeout=5)
    assert failed.status == "failed" and failed.finished_at
    assert failed.error and failed.error.code == "invalid_training_file" and failed.error.param == "training_file"
    assert train.id in (failed.error.message or "")
    events = list(client.fine_tuning.jobs.list_events(job.id))
    assert events[0].level == "error" and train.id in events[0].message


def test_objects_stored_before_owners_existed_go_to_their_users(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, time_scale=1000) as url:
        old = _client(url, "sk-sandbox")
        loose = old.files.create(file=("loose.txt", io.BytesIO(b"x")), purpose="user_data")
        batch_client = _client(url, "sk-batch-owner")
        used = batch_client.files.create(file=("in.jsonl", _jsonl(_chat_lines(1))), purpose="batch")
        batch_client.batches.create(input_file_id=used.id, endpoint="/v1/chat/completions", completion_window="24h")
    for path in (tmp_path / "files").glob("*.json"):  # as an older sandbox wrote them
        doc = json.loads(path.read_text())
        doc.pop("_owner")
        path.write_text(json.dumps(doc))
    with running_sandbox(tmp_path, time_scale=1000) as url:
        assert {f.id for f in _client(url, "sk-sandbox").files.list()} == {loose.id}
        assert used.id in {f.id for f in _client(url, "sk-batch-owner").files.list()}
        assert list(_client(url, "sk-someone-else").files.list()) == []

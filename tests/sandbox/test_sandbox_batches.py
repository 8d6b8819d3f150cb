"""Batch API: validation, progress to completion, output and error files, cancel, expiry, paging."""

from __future__ import annotations

import io
import json
from typing import Any, cast

import httpx2
import openai
import pytest
from sandbox_helpers import Spec, wait_for


def chat_line(custom_id: str, text: str, **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **body}}


def upload_batch_file(client: openai.OpenAI, lines: list[Any]) -> str:
    data = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines).encode() + b"\n"
    return client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch").id


def finished(client: openai.OpenAI, batch_id: str, statuses: tuple[str, ...]) -> Any:
    return wait_for(lambda: client.batches.retrieve(batch_id), lambda b: b.status in statuses)


def test_it_runs_a_batch_to_completion_with_output_and_error_files(client: openai.OpenAI, api: httpx2.Client,
                                                                   spec: Spec) -> None:
    lines = [chat_line(f"req-{i}", f"echo: answer {i}") for i in range(8)]
    lines.append(chat_line("bad-model", "hi", model="gpt-nope"))
    lines.append(chat_line("forced-failure", "hi", sandbox_fail=True))
    created = api.post("/batches", json={"input_file_id": upload_batch_file(client, lines),
                                         "endpoint": "/v1/chat/completions", "completion_window": "24h",
                                         "metadata": {"team": "a"}}).json()
    spec.validate("Batch", created)
    assert created["status"] == "validating"
    batch = finished(client, created["id"], ("completed",))
    spec.validate("Batch", api.get(f"/batches/{batch.id}").json())
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (10, 8, 2)
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.usage is not None and batch.usage.input_tokens > 0 and batch.usage.output_tokens > 0
    assert batch.output_file_id and batch.error_file_id
    outputs = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert len(outputs) == 8
    first = next(o for o in outputs if o["custom_id"] == "req-3")
    assert first["id"].startswith("batch_req_") and first["error"] is None
    assert first["response"]["status_code"] == 200
    spec.validate("CreateChatCompletionResponse", first["response"]["body"])
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "answer 3"
    errors = {e["custom_id"]: e for e in map(json.loads, client.files.content(batch.error_file_id).text.splitlines())}
    assert errors["bad-model"]["response"]["status_code"] == 404
    assert errors["bad-model"]["response"]["body"]["error"]["code"] == "model_not_found"
    assert errors["forced-failure"]["response"]["status_code"] == 500
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"


def test_it_runs_embedding_batches(client: openai.OpenAI) -> None:
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "text-embedding-3-small", "input": f"text {i}", "dimensions": 8}} for i in range(3)]
    batch = client.batches.create(input_file_id=upload_batch_file(client, lines), endpoint="/v1/embeddings",
                                  completion_window="24h")
    batch = finished(client, batch.id, ("completed",))
    assert batch.output_file_id
    out = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert len(out[0]["response"]["body"]["data"][0]["embedding"]) == 8


@pytest.mark.parametrize(
    ("bad_line", "code"),
    [
        ("{not json", "invalid_json_line"),
        ({"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}, "invalid_method"),
        ({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}, "invalid_url"),
        (chat_line("dup", "x"), "duplicate_custom_id"),
    ],
)
def test_it_fails_a_batch_whose_input_is_invalid(client: openai.OpenAI, api: httpx2.Client, spec: Spec,
                                                 bad_line: Any, code: str) -> None:
    batch = client.batches.create(input_file_id=upload_batch_file(client, [chat_line("dup", "x"), bad_line]),
                                  endpoint="/v1/chat/completions", completion_window="24h")
    batch = finished(client, batch.id, ("failed",))
    spec.validate("Batch", api.get(f"/batches/{batch.id}").json())
    assert batch.errors is not None and batch.errors.data
    error = batch.errors.data[0]
    assert error.code == code and error.line == 2
    assert batch.failed_at is not None


def test_it_rejects_a_batch_for_an_unknown_endpoint_or_window(client: openai.OpenAI) -> None:
    file_id = upload_batch_file(client, [chat_line("a", "x")])
    with pytest.raises(openai.BadRequestError) as exc:
        client.batches.create(input_file_id=file_id, endpoint=cast(Any, "/v1/nope"), completion_window="24h")
    assert exc.value.param == "endpoint"
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                              completion_window=cast(Any, "1h"))


def test_it_cancels_a_batch_and_keeps_partial_output(client: openai.OpenAI) -> None:
    lines = [chat_line(f"c{i}", "hello") for i in range(3000)]  # long enough to catch in progress
    batch = client.batches.create(input_file_id=upload_batch_file(client, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: client.batches.retrieve(batch.id),
             lambda b: b.status == "in_progress" and b.request_counts.completed > 0)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    done = finished(client, batch.id, ("cancelled",))
    assert done.cancelled_at and done.request_counts is not None
    assert 0 < done.request_counts.completed < 3000
    assert done.output_file_id
    assert len(client.files.content(done.output_file_id).text.splitlines()) == done.request_counts.completed


def test_it_expires_a_batch_past_its_window(client: openai.OpenAI) -> None:
    lines = [chat_line(f"x{i}", "hello") for i in range(40)]
    batch = client.batches.create(input_file_id=upload_batch_file(client, lines), endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"sandbox_expire": "true"})
    done = finished(client, batch.id, ("expired",))
    assert done.expired_at and done.error_file_id
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert any(e["error"] and e["error"]["code"] == "batch_expired" for e in errors)


def test_it_pages_batches_newest_first(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    file_id = upload_batch_file(client, [chat_line("a", "x")])
    ids = [client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                 completion_window="24h").id for _ in range(3)]
    body = api.get("/batches", params={"limit": 2}).json()
    spec.validate("ListBatchesResponse", body)
    assert [b["id"] for b in body["data"]] == ids[::-1][:2]
    assert body["has_more"] is True and body["first_id"] == ids[2] and body["last_id"] == ids[1]
    after = api.get("/batches", params={"limit": 1, "after": body["last_id"]}).json()
    assert after["data"][0]["id"] == ids[0]


def test_it_runs_responses_batches(client: openai.OpenAI, spec: Spec) -> None:
    lines = [{"custom_id": "r1", "method": "POST", "url": "/v1/responses",
              "body": {"model": "gpt-5-mini", "instructions": "Be brief.", "input": "echo: from responses"}}]
    batch = client.batches.create(input_file_id=upload_batch_file(client, lines), endpoint="/v1/responses",
                                  completion_window="24h")
    batch = finished(client, batch.id, ("completed",))
    assert batch.output_file_id and batch.usage and batch.usage.output_tokens_details.reasoning_tokens > 0
    line = json.loads(client.files.content(batch.output_file_id).text)
    body = line["response"]["body"]
    spec.validate("Response", body)
    # A reasoning model answers with its reasoning item first, then the message.
    assert [item["type"] for item in body["output"]] == ["reasoning", "message"]
    assert body["output"][1]["content"][0]["text"] == "from responses"

"""Files, multi-part Uploads and embeddings."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import struct
from typing import Any, cast

import httpx2
import openai
import pytest
from sandbox_helpers import Spec


def test_it_stores_a_file_and_gives_back_its_bytes(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    data = b'{"a": 1}\n' * 100
    created = client.files.create(file=("notes.jsonl", io.BytesIO(data)), purpose="user_data")
    assert created.bytes == len(data) and created.filename == "notes.jsonl" and created.status == "processed"
    spec.validate("OpenAIFile", api.get(f"/files/{created.id}").json())
    assert client.files.content(created.id).read() == data
    assert client.files.retrieve(created.id).id == created.id
    listed = api.get("/files", params={"purpose": "user_data"}).json()
    spec.validate("ListFilesResponse", listed)
    assert created.id in [f["id"] for f in listed["data"]]
    deleted = client.files.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_it_pages_files_with_after_and_limit(client: openai.OpenAI) -> None:
    ids = [client.files.create(file=(f"p{i}.txt", io.BytesIO(b"x")), purpose="assistants").id for i in range(3)]
    first = client.files.list(purpose="assistants", limit=2, order="asc")
    assert len(first.data) == 2 and first.has_more
    all_ids = [f.id for f in client.files.list(purpose="assistants", order="asc", limit=1)]  # auto-paginates
    assert all_ids[-3:] == ids


def test_it_rejects_an_unknown_purpose(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.create(file=("a.txt", io.BytesIO(b"x")), purpose=cast(Any, "nonsense"))
    assert exc.value.param == "purpose"


def test_it_rejects_a_batch_file_that_is_not_jsonl(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("a.csv", io.BytesIO(b"x")), purpose="batch")


def test_it_rejects_a_file_over_the_size_limit(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.create(file=("big.bin", io.BytesIO(b"x" * (3 * 1024 * 1024))), purpose="user_data")
    assert exc.value.code == "file_too_large"


def test_it_assembles_an_upload_from_parts_in_the_order_given(client: openai.OpenAI, api: httpx2.Client,
                                                              spec: Spec) -> None:
    parts = [b"alpha-" * 1000, b"beta-" * 1000, b"gamma"]
    whole = parts[2] + parts[0] + parts[1]
    upload = client.uploads.create(bytes=len(whole), filename="big.jsonl", mime_type="text/jsonl",
                                   purpose="fine-tune")
    part_ids = [client.uploads.parts.create(upload.id, data=p).id for p in parts]
    raw = client.uploads.with_raw_response.complete(upload.id, part_ids=[part_ids[2], part_ids[0], part_ids[1]],
                                                    md5=hashlib.md5(whole, usedforsecurity=False).hexdigest())
    spec.validate("Upload", raw.http_response.json())
    done = raw.parse()
    assert done.status == "completed" and done.file is not None
    assert client.files.content(done.file.id).read() == whole


def test_it_refuses_to_complete_an_upload_with_the_wrong_byte_count(client: openai.OpenAI) -> None:
    upload = client.uploads.create(bytes=10, filename="x.txt", mime_type="text/plain", purpose="user_data")
    part = client.uploads.parts.create(upload.id, data=b"short")
    with pytest.raises(openai.BadRequestError):
        client.uploads.complete(upload.id, part_ids=[part.id])


def test_it_cancels_an_upload(client: openai.OpenAI) -> None:
    upload = client.uploads.create(bytes=10, filename="x.txt", mime_type="text/plain", purpose="user_data")
    assert client.uploads.cancel(upload.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(upload.id, data=b"more")


def test_it_embeds_inputs_as_deterministic_unit_vectors(client: openai.OpenAI, api: httpx2.Client,
                                                        spec: Spec) -> None:
    body = api.post("/embeddings", json={"model": "text-embedding-3-small", "input": ["cat", "dog"]}).json()
    spec.validate("CreateEmbeddingResponse", body)
    assert len(body["data"][0]["embedding"]) == 1536
    again = client.embeddings.create(model="text-embedding-3-small", input="cat", encoding_format="float")
    assert again.data[0].embedding == body["data"][0]["embedding"]
    assert math.isclose(sum(v * v for v in again.data[0].embedding), 1.0, rel_tol=1e-6)
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]
    assert body["usage"]["prompt_tokens"] == 2


def test_it_honours_dimensions_base64_and_token_arrays(client: openai.OpenAI, api: httpx2.Client) -> None:
    small = client.embeddings.create(model="text-embedding-3-large", input=[[9906, 1917]], dimensions=256)
    assert len(small.data[0].embedding) == 256 and small.usage.prompt_tokens == 2
    raw = api.post("/embeddings", json={"model": "text-embedding-3-large", "input": "hi", "dimensions": 4,
                                        "encoding_format": "base64"}).json()
    floats = struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))
    assert math.isclose(sum(v * v for v in floats), 1.0, rel_tol=1e-5)


def test_it_rejects_bad_embedding_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-small", input="")
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=99999)
    assert exc.value.param == "dimensions"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-9", input="x")


def test_it_sets_expires_at_from_expires_after(client: openai.OpenAI) -> None:
    f = client.files.create(file=("e.txt", io.BytesIO(b"x")), purpose="user_data",
                            expires_after={"anchor": "created_at", "seconds": 7200})
    assert f.expires_at == f.created_at + 7200
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("e.txt", io.BytesIO(b"x")), purpose="user_data",
                            expires_after={"anchor": "created_at", "seconds": 5})

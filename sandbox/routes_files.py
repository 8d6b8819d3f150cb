"""Files API and the multi-part Uploads API. Bytes go to disk, never whole into memory."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from . import files_service
from .errors import ApiError, invalid, missing_param, not_found
from .http import int_query, json_body, json_response, list_body, page
from .ids import random_id
from .owners import fingerprint, owned, owns, stamp
from .state import api_key_of, state_of

UPLOAD_MAX_BYTES = 8 * 1024**3
PART_MAX_BYTES = 64 * 1024**2
UPLOAD_TTL_SECONDS = 3600
COPY_CHUNK = 1024 * 1024


def _too_large(limit: int) -> ApiError:
    shown = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return ApiError(400, f"File is too large. The maximum file size is {shown}.", param="file", code="file_too_large")


def _check_length(request: Request, limit: int) -> None:
    # Refuse before reading a byte when the client announces a body over the limit.
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + 64 * 1024:
        raise _too_large(limit)


def _purpose_error(purpose: Any) -> ApiError:
    allowed = ", ".join(repr(p) for p in files_service.PURPOSES)
    return invalid(f"'{purpose}' is not one of [{allowed}] - 'purpose'", param="purpose")


async def _spool_to_disk(request: Request, upload: UploadFile, limit: int) -> tuple[str, int, str]:
    """Copy a multipart file field into the data dir in chunks; return (path, size, md5)."""
    state = state_of(request)
    tmp = state.store.new_temp_path()
    size = 0
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with tmp.open("wb") as out:
            while chunk := await upload.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                md5.update(chunk)
                out.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return str(tmp), size, md5.hexdigest()


async def create_file(request: Request) -> Response:
    state = state_of(request)
    limit = state.config.max_file_bytes
    _check_length(request, limit)
    async with request.form(max_files=1, max_fields=20) as form:
        upload = form.get("file")
        purpose = form.get("purpose")
        if purpose is None:
            raise missing_param("purpose")
        if purpose not in files_service.PURPOSES:
            raise _purpose_error(purpose)
        if not isinstance(upload, UploadFile):
            raise missing_param("file")
        filename = Path(upload.filename or "file").name
        if purpose in ("batch", "fine-tune") and not filename.endswith(".jsonl"):
            api = "Batch API" if purpose == "batch" else "Fine-Tuning API"
            raise invalid(f"Invalid file format for {api}. Must be .jsonl", param="file")
        expires_after = _expires_after(form.get("expires_after[anchor]"), form.get("expires_after[seconds]"))
        path, _, _ = await _spool_to_disk(request, upload, limit)
    doc = files_service.create_from_path(state.store, Path(path), filename, str(purpose),
                                         owner=fingerprint(api_key_of(request)))
    if expires_after is not None:
        doc["expires_at"] = doc["created_at"] + expires_after
        state.store.files.put(doc)
    return json_response(files_service.public(doc))


def _expires_after(anchor: object, seconds: object) -> int | None:
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise invalid("Invalid value for 'expires_after.anchor': expected 'created_at'.", param="expires_after.anchor")
    value = int(seconds) if isinstance(seconds, str) and seconds.isdigit() else -1
    if not 3600 <= value <= 2_592_000:
        raise invalid(
            "Invalid 'expires_after.seconds': expected a value between 3600 and 2592000.",
            param="expires_after.seconds",
        )
    return value


async def list_files(request: Request) -> Response:
    state = state_of(request)
    purpose = request.query_params.get("purpose")
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid(f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order")
    limit = int_query(request, "limit", 10000, 1, 10000)
    docs = [files_service.public(d) for d in owned(api_key_of(request), state.store.files.values())
            if purpose is None or d["purpose"] == purpose]
    if order == "desc":
        docs.reverse()
    chunk, has_more = page(docs, request.query_params.get("after"), limit)
    return json_response(list_body(chunk, has_more))


async def get_file(request: Request) -> Response:
    doc = files_service.get_or_404(state_of(request).store, request.path_params["file_id"], api_key_of(request))
    return json_response(files_service.public(doc))


async def file_content(request: Request) -> Response:
    state = state_of(request)
    doc = files_service.get_or_404(state.store, request.path_params["file_id"], api_key_of(request))
    return FileResponse(state.store.blob_path(doc["id"]), media_type="application/octet-stream",
                        filename=doc["filename"])


async def delete_file(request: Request) -> Response:
    state = state_of(request)
    doc = files_service.get_or_404(state.store, request.path_params["file_id"], api_key_of(request))
    files_service.delete(state.store, doc["id"])
    return json_response({"id": doc["id"], "object": "file", "deleted": True})


# -- Uploads ----------------------------------------------------------------------------------

def _upload_or_404(request: Request) -> dict[str, Any]:
    upload_id = request.path_params["upload_id"]
    doc = state_of(request).store.uploads.get(upload_id)
    if doc is None or not owns(api_key_of(request), doc):
        raise not_found(f"No such Upload object: {upload_id}", param="upload_id")
    if doc["status"] == "pending" and doc["expires_at"] < time.time():
        doc["status"] = "expired"
    return doc


def _require_pending(doc: dict[str, Any]) -> None:
    if doc["status"] != "pending":
        raise invalid(f"Upload {doc['id']} is already {doc['status']}.", param="upload_id")


def _render_upload(request: Request, doc: dict[str, Any]) -> dict[str, Any]:
    out = files_service.public(doc)
    file_id = doc.get("_file_id")
    file_doc = state_of(request).store.files.get(file_id) if file_id else None
    out["file"] = files_service.public(file_doc) if file_doc else None
    return out


async def create_upload(request: Request) -> Response:
    state = state_of(request)
    body = await json_body(request)
    for name in ("filename", "purpose", "bytes", "mime_type"):
        if body.get(name) is None:
            raise missing_param(name)
    if body["purpose"] not in files_service.PURPOSES:
        raise _purpose_error(body["purpose"])
    size = body["bytes"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise invalid("Invalid 'bytes': expected a non-negative integer.", param="bytes")
    if size > UPLOAD_MAX_BYTES:
        raise invalid("Upload size exceeds the maximum of 8 GB.", param="bytes", code="file_too_large")
    now = int(time.time())
    doc = {
        "id": random_id("upload_", 24),
        "object": "upload",
        "bytes": size,
        "created_at": now,
        "filename": Path(str(body["filename"])).name,
        "purpose": body["purpose"],
        "status": "pending",
        "expires_at": now + UPLOAD_TTL_SECONDS,
        "_parts": [],
        "_file_id": None,
    }
    stamp(doc, api_key_of(request))
    state.store.uploads.put(doc)
    return json_response(_render_upload(request, doc))


async def add_part(request: Request) -> Response:
    state = state_of(request)
    doc = _upload_or_404(request)
    _require_pending(doc)
    _check_length(request, PART_MAX_BYTES)
    async with request.form(max_files=1, max_fields=5) as form:
        data = form.get("data")
        if not isinstance(data, UploadFile):
            raise missing_param("data")
        path, _, _ = await _spool_to_disk(request, data, PART_MAX_BYTES)
    part_id = random_id("part_", 24)
    Path(path).replace(state.store.blob_path(part_id))
    doc["_parts"].append(part_id)
    state.store.uploads.put(doc)
    return json_response({"id": part_id, "object": "upload.part", "created_at": int(time.time()),
                          "upload_id": doc["id"]})


async def complete_upload(request: Request) -> Response:
    state = state_of(request)
    doc = _upload_or_404(request)
    _require_pending(doc)
    body = await json_body(request)
    part_ids = body.get("part_ids")
    if not isinstance(part_ids, list):
        raise missing_param("part_ids")
    unknown = [p for p in part_ids if p not in doc["_parts"]]
    if unknown:
        raise invalid(f"Part {unknown[0]} does not belong to upload {doc['id']}.", param="part_ids")
    tmp = state.store.new_temp_path()
    md5 = hashlib.md5(usedforsecurity=False)
    with tmp.open("wb") as out:
        for part_id in part_ids:
            with state.store.blob_path(part_id).open("rb") as src:
                while chunk := src.read(COPY_CHUNK):
                    md5.update(chunk)
                    out.write(chunk)
    size = tmp.stat().st_size
    if size != doc["bytes"]:
        tmp.unlink(missing_ok=True)
        raise invalid(
            f"The number of bytes uploaded ({size}) does not match the number of bytes specified at creation "
            f"({doc['bytes']}).",
            param="bytes",
        )
    if body.get("md5") and body["md5"] != md5.hexdigest():
        tmp.unlink(missing_ok=True)
        raise invalid("The md5 checksum of the uploaded parts does not match the provided md5.", param="md5")
    file_doc = files_service.create_from_path(state.store, tmp, doc["filename"], doc["purpose"],
                                              owner=fingerprint(api_key_of(request)))
    for part_id in doc["_parts"]:
        state.store.blob_path(part_id).unlink(missing_ok=True)
    doc.update(status="completed", _file_id=file_doc["id"], _parts=[])
    state.store.uploads.put(doc)
    return json_response(_render_upload(request, doc))


async def cancel_upload(request: Request) -> Response:
    state = state_of(request)
    doc = _upload_or_404(request)
    _require_pending(doc)
    for part_id in doc["_parts"]:
        state.store.blob_path(part_id).unlink(missing_ok=True)
    doc.update(status="cancelled", _parts=[])
    state.store.uploads.put(doc)
    return json_response(_render_upload(request, doc))


routes = [
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", get_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/v1/uploads", create_upload, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/parts", add_part, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/complete", complete_upload, methods=["POST"]),
    Route("/v1/uploads/{upload_id}/cancel", cancel_upload, methods=["POST"]),
]



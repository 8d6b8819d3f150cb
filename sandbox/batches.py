"""Batch jobs: the input is validated at creation; progress is derived from the clock.

Results are produced once, when a batch reaches a terminal state, by the same
executor the live endpoints use, and written as real output and error files.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import files_service
from .clock import Clock
from .errors import ApiError, invalid, missing_param
from .ids import random_id, stable_id
from .owners import OWNER_FIELD, fingerprint, owner_of, owns
from .store import Document, Store

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/completions")
SUPPORTED_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses")
MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024
WINDOW_SECONDS = 24 * 3600.0
VALIDATING_SECONDS = 10.0  # simulated
FINALIZING_SECONDS = 20.0
CANCELLING_SECONDS = 20.0
MAX_REPORTED_ERRORS = 100
TERMINAL = ("failed", "completed", "expired", "cancelled")

# (endpoint, body, api_key) -> (status_code, response body)
Executor = Callable[[str, dict[str, Any], str], tuple[int, dict[str, Any]]]
# (model) -> whether the model exists, for the cheap pre-check of failing lines
ModelCheck = Callable[[str], bool]


@dataclass
class Phase:
    status: str
    done: int  # requests processed so far
    failed: int
    times: dict[str, float]  # status -> real timestamp when it was entered


def _error(code: str, message: str, param: str | None, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def validate_input(store: Store, file_id: str, endpoint: str, model_exists: ModelCheck) -> dict[str, Any]:
    path = store.blob_path(file_id)
    size = path.stat().st_size if path.exists() else 0
    errors: list[dict[str, Any]] = []
    if size > MAX_BYTES:
        errors.append(_error("file_too_large", "The input file is larger than the 200 MB limit.", None, None))
        return {"errors": errors}
    seen: set[str] = set()
    fail_lines: list[int] = []
    model = None
    total = 0
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            total += 1
            if total > MAX_LINES:
                errors.append(_error("too_many_tasks", f"The batch input file has more than {MAX_LINES} requests.",
                                     None, None))
                break
            try:
                req = json.loads(raw)
            except ValueError:
                errors.append(_error("invalid_json_line", "This line is not parseable as valid JSON.", None, line_no))
                continue
            if not isinstance(req, dict):
                errors.append(_error("invalid_json_line", "This line is not a JSON object.", None, line_no))
                continue
            cid = req.get("custom_id")
            if not isinstance(cid, str) or not cid:
                errors.append(_error("missing_required_parameter", "Missing required parameter: 'custom_id'.",
                                     "custom_id", line_no))
            elif cid in seen:
                errors.append(_error(
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate of another request. The custom_id parameter "
                    "must be unique for each request in a batch.",
                    "custom_id",
                    line_no,
                ))
            else:
                seen.add(cid)
            if req.get("method") != "POST":
                errors.append(_error("invalid_method", f"The method '{req.get('method')}' is not supported. "
                                     "Only POST is supported.", "method", line_no))
            if req.get("url") != endpoint:
                errors.append(_error("invalid_url", "The URL provided for this request does not match the batch "
                                     f"endpoint '{endpoint}'.", "url", line_no))
            body = req.get("body")
            if not isinstance(body, dict):
                errors.append(_error("missing_required_parameter", "Missing required parameter: 'body'.", "body",
                                     line_no))
                continue
            model = model or body.get("model")
            if body.get("sandbox_fail") or not model_exists(str(body.get("model"))):
                fail_lines.append(total - 1)
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
    if total == 0 and not errors:
        errors.append(_error("empty_file", "The batch input file is empty.", None, None))
    if errors:
        return {"errors": errors}
    return {"total": total, "fail_lines": fail_lines, "model": model}


def create_batch(store: Store, body: dict[str, Any], api_key: str, now: float, model_exists: ModelCheck) -> Document:
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not body.get(name):
            raise missing_param(name)
    endpoint = body["endpoint"]
    if endpoint not in ENDPOINTS:
        raise invalid(
            f"Invalid value: '{endpoint}'. Supported values are: {', '.join(repr(e) for e in ENDPOINTS)}.",
            param="endpoint",
            code="invalid_value",
        )
    if body["completion_window"] != "24h":
        raise invalid(
            f"Invalid value: '{body['completion_window']}'. Supported values are: '24h'.",
            param="completion_window",
            code="invalid_value",
        )
    file_doc = store.files.get(str(body["input_file_id"]))
    if file_doc is None or not owns(api_key, file_doc):
        raise ApiError(404, f"No such File object: {body['input_file_id']}", param="input_file_id")
    if file_doc["purpose"] != "batch":
        raise invalid(
            f"Invalid 'input_file_id': file {file_doc['id']} has purpose '{file_doc['purpose']}', expected 'batch'.",
            param="input_file_id",
        )
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16):
        raise invalid("Invalid 'metadata': expected an object with at most 16 keys.", param="metadata")
    if endpoint not in SUPPORTED_ENDPOINTS:
        verdict: dict[str, Any] = {"errors": [_error(
            "unsupported_endpoint", f"The sandbox does not run {endpoint} batches.", "endpoint", None)]}
    else:
        verdict = validate_input(store, file_doc["id"], endpoint, model_exists)
    return {
        "id": random_id("batch_", 24),
        # Validation above may take a while on a big file; the batch starts when it is stored.
        "created_at": max(now, time.time()),
        "endpoint": endpoint,
        "input_file_id": file_doc["id"],
        "completion_window": "24h",
        "metadata": metadata,
        "verdict": verdict,
        "cancelled_at": None,
        "output_file_id": None,
        "error_file_id": None,
        "final_counts": None,
        "usage": None,
        "settled": False,
        "webhook_sent": [],
        "_api_key": api_key,
        OWNER_FIELD: fingerprint(api_key),
    }


def _run_seconds(batch: Document) -> float:
    return 60.0 + 0.6 * int(batch["verdict"].get("total", 0))


def phase(batch: Document, clock: Clock) -> Phase:
    created = batch["created_at"]
    now = clock.now()
    sim = clock.sim_elapsed(created, now)

    def real(offset: float) -> float:
        return clock.real_at(created, offset)

    times: dict[str, float] = {"validating": created}
    verdict = batch["verdict"]
    failed_at = batch.get("failed_at")
    if failed_at is not None:  # its input file vanished before its requests were run
        if clock.sim_elapsed(created, failed_at) >= VALIDATING_SECONDS:
            times["in_progress"] = real(VALIDATING_SECONDS)
        times["failed"] = failed_at
        return Phase("failed", 0, 0, times)
    if "errors" in verdict:
        if sim >= VALIDATING_SECONDS:
            times["failed"] = real(VALIDATING_SECONDS)
            return Phase("failed", 0, 0, times)
        return Phase("validating", 0, 0, times)
    total: int = verdict["total"]
    run = _run_seconds(batch)
    expire_at = WINDOW_SECONDS
    if str((batch.get("metadata") or {}).get("sandbox_expire", "")).lower() == "true":
        expire_at = VALIDATING_SECONDS + run / 2

    def processed(at_sim: float) -> int:
        frac = (at_sim - VALIDATING_SECONDS) / run
        return max(0, min(total, math.floor(total * frac)))

    def failed_of(done: int) -> int:
        return sum(1 for i in verdict["fail_lines"] if i < done)

    cancelled_at = batch["cancelled_at"]
    cancel_sim = clock.sim_elapsed(created, cancelled_at) if cancelled_at is not None else None
    stop_sim = min(sim, cancel_sim) if cancel_sim is not None else sim
    if stop_sim >= VALIDATING_SECONDS:
        times["in_progress"] = real(VALIDATING_SECONDS)
    if expire_at < VALIDATING_SECONDS + run and stop_sim >= expire_at:
        done = processed(expire_at)
        times["expired"] = real(expire_at)
        return Phase("expired", done, failed_of(done), times)
    if cancel_sim is not None and cancel_sim < VALIDATING_SECONDS + run:
        done = processed(cancel_sim) if cancel_sim >= VALIDATING_SECONDS else 0
        times["cancelling"] = cancelled_at
        if sim >= cancel_sim + CANCELLING_SECONDS:
            times["cancelled"] = real(cancel_sim + CANCELLING_SECONDS)
            return Phase("cancelled", done, failed_of(done), times)
        return Phase("cancelling", done, failed_of(done), times)
    if sim < VALIDATING_SECONDS:
        return Phase("validating", 0, 0, times)
    if sim < VALIDATING_SECONDS + run:
        done = processed(sim)
        return Phase("in_progress", done, failed_of(done), times)
    times["finalizing"] = real(VALIDATING_SECONDS + run)
    if sim < VALIDATING_SECONDS + run + FINALIZING_SECONDS:
        return Phase("finalizing", total, failed_of(total), times)
    times["completed"] = real(VALIDATING_SECONDS + run + FINALIZING_SECONDS)
    return Phase("completed", total, failed_of(total), times)


def _ts(times: dict[str, float], key: str) -> int | None:
    return int(times[key]) if key in times else None


def render(batch: Document, clock: Clock) -> dict[str, Any]:
    """The batch object. The live API sends unset timestamps as null, but the published
    schema types them as plain integers; leaving them out satisfies both the schema and
    the SDK (whose fields are Optional)."""
    body = _render_all(batch, clock)
    return {k: v for k, v in body.items() if v is not None or k == "metadata"}


def visible_phase(batch: Document, clock: Clock) -> Phase:
    """A batch shows "completed" only once its output files exist; until then it is finalizing."""
    p = phase(batch, clock)
    if p.status == "completed" and not batch["settled"]:
        times = {k: v for k, v in p.times.items() if k != "completed"}
        return Phase("finalizing", p.done, p.failed, times)
    return p


def _render_all(batch: Document, clock: Clock) -> dict[str, Any]:
    p = visible_phase(batch, clock)
    verdict = batch["verdict"]
    counts = batch["final_counts"] if batch["settled"] and batch["final_counts"] else {
        "total": verdict.get("total", 0), "completed": p.done - p.failed, "failed": p.failed}
    return {
        "id": batch["id"],
        "object": "batch",
        "endpoint": batch["endpoint"],
        "model": verdict.get("model"),
        "errors": {"object": "list", "data": verdict["errors"]} if "errors" in verdict and p.status == "failed"
        else None,
        "input_file_id": batch["input_file_id"],
        "completion_window": batch["completion_window"],
        "status": p.status,
        "output_file_id": batch["output_file_id"],
        "error_file_id": batch["error_file_id"],
        "created_at": int(batch["created_at"]),
        "in_progress_at": _ts(p.times, "in_progress"),
        "expires_at": int(batch["created_at"] + WINDOW_SECONDS / clock.scale),
        "finalizing_at": _ts(p.times, "finalizing"),
        "completed_at": _ts(p.times, "completed"),
        "failed_at": _ts(p.times, "failed"),
        "expired_at": _ts(p.times, "expired"),
        "cancelling_at": _ts(p.times, "cancelling"),
        "cancelled_at": _ts(p.times, "cancelled"),
        "request_counts": counts,
        "usage": batch["usage"] or {
            "input_tokens": 0, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0},
        "metadata": batch["metadata"],
    }


def settle(store: Store, batch: Document, clock: Clock, execute: Executor) -> str:
    """Once a batch is terminal, run its processed requests and write the result files (once)."""
    p = phase(batch, clock)
    if p.status not in TERMINAL or batch["settled"]:
        return p.status
    if p.status == "failed":
        batch["settled"] = True
        store.batches.put(batch)
        return p.status
    outputs: list[bytes] = []
    errors: list[bytes] = []
    usage: dict[str, int] = {"input_tokens": 0, "cached": 0, "output_tokens": 0, "reasoning": 0}
    index = 0
    try:
        fh = store.blob_path(batch["input_file_id"]).open("rb")
    except OSError:
        return _settle_without_input(store, batch, clock, p.status)
    with fh:
        for raw in fh:
            if not raw.strip():
                continue
            req = json.loads(raw)
            line_id = stable_id("batch_req_", batch["id"], index, length=32)
            request_id = stable_id("", batch["id"], "req", index, length=32)
            if index < p.done:
                body = dict(req["body"])
                if body.pop("sandbox_fail", False):
                    status, result = 500, {"error": {
                        "message": "The server had an error processing your request (sandbox_fail).",
                        "type": "server_error", "param": None, "code": "server_error"}}
                else:
                    status, result = execute(batch["endpoint"], body, batch["_api_key"])
                line = {"id": line_id, "custom_id": req["custom_id"],
                        "response": {"status_code": status, "request_id": request_id, "body": result},
                        "error": None}
                if status == 200:
                    u: dict[str, Any] = result.get("usage") or {}
                    # Chat and embeddings say prompt/completion; Responses says input/output.
                    inp = u.get("prompt_tokens", u.get("input_tokens", 0))
                    out = u.get("completion_tokens", u.get("output_tokens", 0))
                    in_details = u.get("prompt_tokens_details") or u.get("input_tokens_details") or {}
                    out_details = u.get("completion_tokens_details") or u.get("output_tokens_details") or {}
                    usage["input_tokens"] += int(inp)
                    usage["cached"] += int(in_details.get("cached_tokens", 0))
                    usage["output_tokens"] += int(out)
                    usage["reasoning"] += int(out_details.get("reasoning_tokens", 0))
                    outputs.append(json.dumps(line).encode())
                else:
                    errors.append(json.dumps(line).encode())
            elif p.status == "expired":
                errors.append(json.dumps({"id": line_id, "custom_id": req["custom_id"], "response": None,
                                          "error": {"code": "batch_expired", "message":
                                                    "This request could not be executed before the completion "
                                                    "window expired."}}).encode())
            index += 1
    when = int(max(p.times.values()))
    if outputs:
        batch["output_file_id"] = files_service.create_from_bytes(
            store, b"\n".join(outputs) + b"\n", f"{batch['id']}_output.jsonl", "batch_output", when,
            owner=owner_of(batch))["id"]
    if errors:
        batch["error_file_id"] = files_service.create_from_bytes(
            store, b"\n".join(errors) + b"\n", f"{batch['id']}_error.jsonl", "batch_output", when,
            owner=owner_of(batch))["id"]
    failed = len(errors) if p.status != "expired" else len(errors) - (index - p.done)
    batch["final_counts"] = {"total": batch["verdict"]["total"], "completed": len(outputs), "failed": failed}
    batch["usage"] = {
        "input_tokens": usage["input_tokens"],
        "input_tokens_details": {"cached_tokens": usage["cached"]},
        "output_tokens": usage["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": usage["reasoning"]},
        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
    }
    batch["settled"] = True
    store.batches.put(batch)
    return p.status


def input_missing(store: Store, batch: Document) -> bool:
    """Whether a batch still needs its input file (to run its requests) and it is gone."""
    if batch["settled"] or "errors" in batch["verdict"] or batch.get("failed_at") is not None:
        return False
    file_id = batch["input_file_id"]
    doc = store.files.get(file_id)
    return doc is None or owner_of(doc) != owner_of(batch) or not store.blob_path(file_id).exists()


def fail_for_missing_input(store: Store, batch: Document, clock: Clock) -> str:
    """End a batch whose input file vanished: failed now, with the reason in errors, run no lines.

    A batch being cancelled, or already cancelled or expired by the clock, ends so, with no files.
    """
    status = phase(batch, clock).status
    if status == "cancelling":
        return status  # it ends cancelled, when the clock says so
    return _settle_without_input(store, batch, clock, status)


def _settle_without_input(store: Store, batch: Document, clock: Clock, status: str) -> str:
    if status in ("cancelled", "expired"):
        batch["final_counts"] = {"total": batch["verdict"].get("total", 0), "completed": 0, "failed": 0}
    else:
        status = "failed"
        batch["verdict"] = {**batch["verdict"], "errors": [_error(
            "file_not_found",
            f"The input file {batch['input_file_id']} was deleted before the batch finished; none of its "
            "requests were run.",
            "input_file_id",
            None,
        )]}
        batch["failed_at"] = clock.now()
    batch["settled"] = True
    store.batches.put(batch)
    return status


def cancel(batch: Document, clock: Clock) -> None:
    status = phase(batch, clock).status
    if status not in ("validating", "in_progress", "finalizing"):
        raise ApiError(409, f"Cannot cancel a batch with status '{status}'.", param=None, code=None)
    if status == "finalizing":
        return  # too late to stop; it completes
    batch["cancelled_at"] = clock.now()

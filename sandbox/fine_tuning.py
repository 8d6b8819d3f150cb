"""Fine-tuning jobs: validation at creation, then a timeline computed from timestamps.

A job document stores only what happened by hand (created, paused, resumed,
cancelled) and the validation verdict; its status, events, metrics and
checkpoints are derived on every read from the clock, so a restart changes nothing.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import files_service, tokens
from .clock import Clock
from .errors import ApiError, invalid, missing_param
from .ids import random_id, stable_id
from .models_data import BASE_MODELS_BY_ID
from .owners import OWNER_FIELD, fingerprint, owned, owner_of, owns
from .store import Document, Store

VALIDATING_SECONDS = 30.0  # simulated
QUEUED_SECONDS = 60.0
SECONDS_PER_STEP = 3.0
MIN_EXAMPLES = 10
MAX_METRIC_EVENTS = 400
TERMINAL = ("succeeded", "failed", "cancelled")
_ROLES = ("system", "user", "assistant", "tool", "developer")


@dataclass
class Progress:
    status: str
    step: int  # completed training steps
    sim_elapsed: float
    finished_at: float | None
    run_started_sim: float


def _file_error(message: str, param: str = "training_file") -> dict[str, Any]:
    return {
        "code": "invalid_training_file" if param == "training_file" else "invalid_validation_file",
        "message": f"The job failed due to an invalid {param.replace('_', ' ')}. {message}",
        "param": param,
    }


def _example_messages(example: Any, method: str) -> list[Any] | str:
    """The messages of one example, or a description of what is wrong with it."""
    if not isinstance(example, dict):
        return "Each line must be a JSON object."
    if method == "dpo":
        inp = example.get("input")
        if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list):
            return "Missing 'input.messages'."
        for key in ("preferred_output", "non_preferred_output"):
            if not isinstance(example.get(key), list) or not example[key]:
                return f"Missing '{key}'."
        return list(inp["messages"]) + list(example["preferred_output"])
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Missing 'messages' key."
    return messages


def validate_training_file(store: Store, file_id: str, method: str, encoding: str, param: str) -> dict[str, Any]:
    """Read the JSONL once, streaming, and return either counts or the real error object."""
    path = store.blob_path(file_id)
    examples = 0
    total_tokens = 0
    try:
        with path.open("rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    example = json.loads(raw)
                except ValueError:
                    return {"error": _file_error(f"Invalid file format. Line {line_no}: invalid JSON.", param)}
                messages = _example_messages(example, method)
                if isinstance(messages, str):
                    return {"error": _file_error(f"Invalid file format. Example {line_no}: {messages}", param)}
                has_assistant = False
                for m_no, m in enumerate(messages, start=1):
                    role = m.get("role") if isinstance(m, dict) else None
                    if role not in _ROLES:
                        return {
                            "error": _file_error(
                                f"Invalid file format. Example {line_no}, message {m_no} Unrecognized role: {role}",
                                param,
                            )
                        }
                    has_assistant = has_assistant or role == "assistant"
                    content = m.get("content")
                    text = content if isinstance(content, str) else json.dumps(content or "")
                    total_tokens += tokens.TOKENS_PER_MESSAGE + tokens.count(text, encoding)
                if not has_assistant:
                    return {
                        "error": _file_error(
                            f"Invalid file format. Example {line_no} has no assistant message.", param
                        )
                    }
                examples += 1
    except OSError:
        return {"error": _file_error("The file could not be read.", param)}
    if param == "training_file" and examples < MIN_EXAMPLES:
        return {
            "error": _file_error(
                f"Training file has {examples} example(s), but must have at least {MIN_EXAMPLES} examples", param
            )
        }
    return {"examples": examples, "tokens": total_tokens}


def _hyper(value: Any, name: str, auto: Any, lo: float, hi: float, integer: bool) -> Any:
    if value is None or value == "auto":
        return auto
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise invalid(f"Invalid type for 'hyperparameters.{name}'.", param=f"hyperparameters.{name}", code="invalid_type")
    if not lo <= value <= hi:
        raise invalid(
            f"Invalid 'hyperparameters.{name}': expected a value between {lo:g} and {hi:g}, but got {value} instead.",
            param=f"hyperparameters.{name}",
            code="invalid_value",
        )
    return value


def create_job(store: Store, body: dict[str, Any], api_key: str, organization: str, now: float) -> Document:
    model = body.get("model")
    if not model:
        raise missing_param("model")
    base = BASE_MODELS_BY_ID.get(str(model))
    if base is None or not base.fine_tunable:
        raise invalid(
            f"Model {model} is not available for fine-tuning or does not exist.", param="model", code="model_not_available"
        )
    training_file = body.get("training_file")
    if not training_file:
        raise missing_param("training_file")
    for param in ("training_file", "validation_file"):
        fid = body.get(param)
        if fid is None:
            continue
        doc = store.files.get(str(fid))
        if doc is None or not owns(api_key, doc):
            raise invalid(f"Invalid file format for {param}: file {fid} does not exist.", param=param, code="invalid_file")
        if doc["purpose"] != "fine-tune":
            raise invalid(
                f"Invalid file purpose for {param}: {fid} has purpose '{doc['purpose']}', expected 'fine-tune'.",
                param=param,
                code="invalid_file",
            )
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
        raise invalid("suffix must be a string of at most 64 characters.", param="suffix", code="invalid_value")
    method = body.get("method") or {"type": "supervised"}
    kind = method.get("type", "supervised")
    if kind not in ("supervised", "dpo"):
        raise invalid(
            f"Invalid value: '{kind}'. Supported values are: 'supervised' and 'dpo'.",
            param="method.type",
            code="invalid_value",
        )
    given = dict(body.get("hyperparameters") or {})
    given.update((method.get(kind) or {}).get("hyperparameters") or {})
    verdict = validate_training_file(store, str(training_file), kind, base.encoding, "training_file")
    if "error" not in verdict and body.get("validation_file"):
        v = validate_training_file(store, str(body["validation_file"]), kind, base.encoding, "validation_file")
        if "error" in v:
            verdict = v
    examples = int(verdict.get("examples", 0))
    hyper: dict[str, Any] = {
        "batch_size": _hyper(given.get("batch_size"), "batch_size", max(1, min(8, examples // 50)), 1, 256, True),
        "learning_rate_multiplier": _hyper(
            given.get("learning_rate_multiplier"), "learning_rate_multiplier", 1.8, 1e-9, 100, False
        ),
        "n_epochs": _hyper(given.get("n_epochs"), "n_epochs", 3, 1, 50, True),
    }
    if kind == "dpo":
        hyper["beta"] = _hyper(given.get("beta"), "beta", 0.1, 1e-9, 2, False)
    seed = body.get("seed")
    if seed is None:
        seed = random.Random(now).randrange(2**31)
    metadata = body.get("metadata")
    job_id = random_id("ftjob-", 24)
    steps_per_epoch = max(1, math.ceil(examples / hyper["batch_size"])) if examples else 0
    return {
        "id": job_id,
        # Validation above may take a while on a big file; the job starts when it is stored.
        "created_at": max(now, time.time()),
        "model": str(model),
        "training_file": str(training_file),
        "validation_file": body.get("validation_file"),
        "hyperparameters": hyper,
        "method_type": kind,
        "suffix": suffix,
        "seed": int(seed),
        "metadata": metadata,
        "organization_id": organization,
        "verdict": verdict,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": steps_per_epoch * hyper["n_epochs"],
        "paused_total": 0.0,
        "paused_at": None,
        "cancelled_at": None,
        "manual_events": [],
        "result_file_id": None,
        "webhook_sent": [],
        "_api_key": api_key,
        OWNER_FIELD: fingerprint(api_key),
    }


def progress(job: Document, clock: Clock) -> Progress:
    paused = job["paused_total"]
    now = clock.now()
    if job["paused_at"] is not None:
        paused += now - job["paused_at"]
    until = job["cancelled_at"] if job["cancelled_at"] is not None else now
    sim = clock.sim_elapsed(job["created_at"], until, paused)
    run_start = VALIDATING_SECONDS + QUEUED_SECONDS
    if "error" in job["verdict"]:
        if job.get("failed_at") is not None:  # a file it was reading vanished
            return Progress("failed", 0, sim, job["failed_at"], run_start)
        if sim >= VALIDATING_SECONDS:
            return Progress("failed", 0, sim, clock.real_at(job["created_at"], VALIDATING_SECONDS), run_start)
        status = "validating_files"
    else:
        total = job["total_steps"]
        end = run_start + total * SECONDS_PER_STEP
        step = int(min(total, max(0.0, (sim - run_start) / SECONDS_PER_STEP)))
        if sim >= end:
            return Progress("succeeded", total, sim, clock.real_at(job["created_at"], end, job["paused_total"]), run_start)
        status = "running" if sim >= run_start else ("queued" if sim >= VALIDATING_SECONDS else "validating_files")
        if job["cancelled_at"] is not None:
            return Progress("cancelled", step, sim, job["cancelled_at"], run_start)
        if job["paused_at"] is not None:
            return Progress("paused", step, sim, None, run_start)
        return Progress(status, step, sim, None, run_start)
    if job["cancelled_at"] is not None:
        return Progress("cancelled", 0, sim, job["cancelled_at"], run_start)
    return Progress(status, 0, sim, None, run_start)


def fine_tuned_model_name(job: Document) -> str:
    return f"ft:{job['model']}:{job['organization_id']}:{job['suffix'] or ''}:{job['id'][-8:]}"


def metrics_at(job: Document, step: int) -> dict[str, float]:
    """A plausible falling loss curve, the same on every read for a given job and seed."""
    total = max(1, job["total_steps"])
    rng = random.Random(f"{job['id']}:{job['seed']}:{step}")
    start, floor = 2.4, 0.18 + (job["seed"] % 7) * 0.02
    decay = floor + (start - floor) * math.exp(-4.0 * step / total)
    train_loss = max(0.01, decay * (1 + rng.uniform(-0.08, 0.08)))
    valid_loss = max(0.01, decay * 1.07 * (1 + rng.uniform(-0.05, 0.05)))
    return {
        "step": float(step),
        "train_loss": round(train_loss, 4),
        "train_mean_token_accuracy": round(min(0.99, 1 - train_loss / 3.2), 4),
        "valid_loss": round(valid_loss, 4),
        "valid_mean_token_accuracy": round(min(0.99, 1 - valid_loss / 3.2), 4),
        "full_valid_loss": round(valid_loss * 1.01, 4),
        "full_valid_mean_token_accuracy": round(min(0.99, 1 - valid_loss * 1.01 / 3.2), 4),
    }


def render(job: Document, clock: Clock) -> dict[str, Any]:
    p = progress(job, clock)
    hyper = job["hyperparameters"]
    succeeded = p.status == "succeeded"
    estimated = None
    if p.status in ("validating_files", "queued", "running"):
        end = p.run_started_sim + job["total_steps"] * SECONDS_PER_STEP
        estimated = int(clock.real_at(job["created_at"], end, job["paused_total"]))
    method_hyper = dict(hyper)
    return {
        "object": "fine_tuning.job",
        "id": job["id"],
        "model": job["model"],
        "created_at": int(job["created_at"]),
        "finished_at": int(p.finished_at) if p.finished_at is not None else None,
        "fine_tuned_model": fine_tuned_model_name(job) if succeeded else None,
        "organization_id": job["organization_id"],
        "result_files": [job["result_file_id"]] if succeeded and job["result_file_id"] else [],
        "status": p.status,
        "validation_file": job["validation_file"],
        "training_file": job["training_file"],
        "hyperparameters": {k: hyper[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")},
        "trained_tokens": job["verdict"].get("tokens", 0) * hyper["n_epochs"] if succeeded else None,
        "error": job["verdict"]["error"] if p.status == "failed" else None,
        "integrations": [],
        "seed": job["seed"],
        "estimated_finish": estimated,
        "method": {"type": job["method_type"], job["method_type"]: {"hyperparameters": method_hyper}},
        "metadata": job["metadata"],
        "user_provided_suffix": job["suffix"],
        "usage_metrics": None,
        "shared_with_openai": False,
        "eval_id": None,
    }


def _event(job: Document, key: str, at: float, message: str, kind: str = "message", data: Any = None,
           level: str = "info") -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": stable_id("ftevent-", job["id"], key),
        "created_at": int(at),
        "level": level,
        "message": message,
        "data": data if data is not None else {},
        "type": kind,
    }


def events(job: Document, clock: Clock) -> list[dict[str, Any]]:
    """Every event so far, oldest first."""
    p = progress(job, clock)
    created = job["created_at"]
    paused_total = job["paused_total"]

    def at(sim: float) -> float:
        return clock.real_at(created, sim, paused_total)

    out = [
        _event(job, "created", created, f"Created fine-tuning job: {job['id']}"),
        _event(job, "validating", created, f"Validating training file: {job['training_file']}"),
    ]
    if "error" in job["verdict"]:
        if p.status == "failed":
            out.append(_event(job, "failed", p.finished_at or at(VALIDATING_SECONDS),
                              job["verdict"]["error"]["message"], level="error"))
    elif p.sim_elapsed >= VALIDATING_SECONDS:
        out.append(_event(job, "validated", at(VALIDATING_SECONDS), "Files validated, moving job to queued state"))
        if p.sim_elapsed >= p.run_started_sim:
            out.append(_event(job, "started", at(p.run_started_sim), "Fine-tuning job started"))
            total = job["total_steps"]
            stride = max(1, total // MAX_METRIC_EVENTS)
            for step in range(1, p.step + 1):
                when = at(p.run_started_sim + step * SECONDS_PER_STEP)
                if step % stride == 0 or step == total:
                    m = metrics_at(job, step)
                    data = {**m, "step": step, "total_steps": total}
                    out.append(_event(job, f"step{step}", when,
                                      f"Step {step}/{total}: training loss={m['train_loss']:.2f}", "metrics", data))
                if step % job["steps_per_epoch"] == 0:
                    out.append(_event(job, f"ckpt{step}", when, f"Checkpoint created at step {step}"))
            if p.status == "succeeded":
                end = p.finished_at or clock.now()
                out.append(_event(job, "model", end, f"New fine-tuned model created: {fine_tuned_model_name(job)}"))
                out.append(_event(job, "done", end, "The job has successfully completed"))
    for i, manual in enumerate(job["manual_events"]):
        out.append(_event(job, f"manual{i}", manual["at"], manual["message"]))
    out.sort(key=lambda e: e["created_at"])
    return out


def checkpoints(job: Document, clock: Clock) -> list[dict[str, Any]]:
    """Epoch-end checkpoints reached so far, newest first."""
    p = progress(job, clock)
    if "error" in job["verdict"] or job["steps_per_epoch"] == 0:
        return []
    out = []
    name = fine_tuned_model_name(job)
    for epoch in range(1, job["hyperparameters"]["n_epochs"] + 1):
        step = epoch * job["steps_per_epoch"]
        if step > p.step:
            break
        when = clock.real_at(job["created_at"], p.run_started_sim + step * SECONDS_PER_STEP, job["paused_total"])
        out.append({
            "object": "fine_tuning.job.checkpoint",
            "id": stable_id("ftckpt_", job["id"], step),
            "created_at": int(when),
            "fine_tuned_model_checkpoint": f"{name}:ckpt-step-{step}",
            "fine_tuning_job_id": job["id"],
            "metrics": metrics_at(job, step),
            "step_number": step,
        })
    return list(reversed(out))


def results_csv(job: Document) -> bytes:
    lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for step in range(1, job["total_steps"] + 1):
        m = metrics_at(job, step)
        lines.append(
            f"{step},{m['train_loss']},{m['train_mean_token_accuracy']},{m['valid_loss']},"
            f"{m['valid_mean_token_accuracy']}"
        )
    return ("\n".join(lines) + "\n").encode()


def settle(store: Store, job: Document, clock: Clock) -> str:
    """Write what a finished job leaves behind (its result file) once; return the status."""
    status = progress(job, clock).status
    if status == "succeeded" and not job["result_file_id"]:
        finished = progress(job, clock).finished_at or clock.now()
        f = files_service.create_from_bytes(store, results_csv(job), "step_metrics.csv", "fine-tune-results",
                                            created_at=int(finished), owner=owner_of(job))
        job["result_file_id"] = f["id"]
        store.jobs.put(job)
    return status


def pause(job: Document, clock: Clock) -> None:
    status = progress(job, clock).status
    if status != "running":
        raise ApiError(400, f"Cannot pause a job with status '{status}'. Only running jobs can be paused.",
                       param="fine_tuning_job_id", code="invalid_status")
    job["paused_at"] = clock.now()
    job["manual_events"].append({"at": job["paused_at"], "message": "Fine-tuning job paused"})


def resume(job: Document, clock: Clock) -> None:
    if job["paused_at"] is None:
        status = progress(job, clock).status
        raise ApiError(400, f"Cannot resume a job with status '{status}'. Only paused jobs can be resumed.",
                       param="fine_tuning_job_id", code="invalid_status")
    now = clock.now()
    job["paused_total"] += now - job["paused_at"]
    job["paused_at"] = None
    job["manual_events"].append({"at": now, "message": "Fine-tuning job resumed"})


def cancel(job: Document, clock: Clock) -> None:
    status = progress(job, clock).status
    if status in TERMINAL:
        raise ApiError(400, f"Cannot cancel a job that has already {status}.", param="fine_tuning_job_id",
                       code="invalid_status")
    now = clock.now()
    if job["paused_at"] is not None:
        job["paused_total"] += now - job["paused_at"]
        job["paused_at"] = None
    job["cancelled_at"] = now
    job["manual_events"].append({"at": now, "message": "Fine-tuning job cancelled"})


def fail_if_files_missing(job: Document, clock: Clock, exists: Callable[[str], bool]) -> bool:
    """A job reads its files while validating_files: one deleted by then fails it at once.

    Returns whether the job changed (the caller stores it). Later the job trains on its own copy.
    """
    if "error" in job["verdict"] or job.get("failed_at") is not None:
        return False
    if progress(job, clock).status != "validating_files":
        return False
    for param in ("training_file", "validation_file"):
        file_id = job.get(param)
        if file_id and not exists(str(file_id)):
            job["verdict"] = {**job["verdict"], "error": _file_error(f"The file {file_id} no longer exists.", param)}
            job["failed_at"] = clock.now()
            return True
    return False


def fine_tuned_models(store: Store, clock: Clock, api_key: str) -> dict[str, Document]:
    """Models produced by api_key's succeeded jobs (and their checkpoints), minus deleted ones."""
    deleted = set(store.setting("deleted_models").get("ids", []))
    out: dict[str, Document] = {}
    for job in owned(api_key, store.jobs.values()):
        p = progress(job, clock)
        if p.status != "succeeded":
            continue
        name = fine_tuned_model_name(job)
        if name not in deleted:
            out[name] = job
        for ckpt in checkpoints(job, clock):
            out.setdefault(ckpt["fine_tuned_model_checkpoint"], job)
    return out

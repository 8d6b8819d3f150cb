"""Eval runs through the Batch API, at half price: every (case, target) becomes one line of a
batch; the sync follows the batch and, once it ends, joins each output line to its result
by custom_id, grades it (the judge and the embeddings live, as in a live run) and finishes
the run. A batch asks once: a tool call in a reply is the answer (no results are replayed).
A Responses-engine connection's batch asks /v1/responses, as its live runs do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from functools import partial
from typing import Any, Final

from django.utils import timezone

from assistants_app.conversation import chat_request, responses_input, responses_request
from evals_app import graders as g
from evals_app.models import EvalResult, EvalRun, EvalTarget, ResultStatus, RunMode, RunStatus
from evals_app.runner import Answer, Pacer, Spend, finish, grade_answer, process, run_claim, target_plan
from project.files.services import FileRejected, file_fetch_remote, file_open, file_upload
from project.providers.client import ClientOptions, ProviderError, client_for, provider_call
from project.providers.model_facts import model_facts
from project.providers.models import Engine, ProviderConnection

log = logging.getLogger(__name__)

CHAT_ENDPOINT: Final = "/v1/chat/completions"
RESPONSES_ENDPOINT: Final = "/v1/responses"
MAX_LINES = 50_000  # the Batch API's limit per batch
ACTIVE = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
CUSTOM_ID_PREFIX = "result-"
COLLECTING = "collecting"  # our own state: the batch ended and its results are being graded


def _endpoint(connection: ProviderConnection) -> str:
    return RESPONSES_ENDPOINT if connection.run_engine == Engine.RESPONSES else CHAT_ENDPOINT


def _lines(run: EvalRun, endpoint: str) -> Iterator[bytes]:
    plans = {t.pk: target_plan(t) for t in EvalTarget.objects.filter(run=run).select_related("version")}
    pending = EvalResult.objects.filter(run=run, status=ResultStatus.PENDING).select_related("case").order_by("id")
    for result in pending.iterator(2000):
        spec, messages = plans[result.target_id].spec, list(result.case.messages)
        body = (responses_request(spec, responses_input(messages)) if endpoint == RESPONSES_ENDPOINT
                else chat_request(spec, messages, stream=False))
        yield (json.dumps({"custom_id": f"{CUSTOM_ID_PREFIX}{result.pk}", "method": "POST", "url": endpoint, "body": body},
                          separators=(",", ":")) + "\n").encode()


def batch_run_submit(run_id: int) -> None:
    """Upload the run's requests and create the batch (once: a run with a batch is left to the sync)."""
    run = run_claim(run_id)
    if run is None or run.remote_batch_id:
        return
    endpoint = _endpoint(run.connection)
    try:
        upload = file_upload(team=run.team, connection=run.connection, purpose="batch", name=f"eval-run-{run.pk}.jsonl",
                             chunks=_lines(run, endpoint), actor=run.created_by)
        batch = provider_call(run.connection, lambda client: client.batches.create(
            input_file_id=upload.remote_id, endpoint=endpoint, completion_window="24h",  # type: ignore[arg-type]
            metadata={"switchboard_eval_run": str(run.pk)}))
    except (ProviderError, FileRejected) as error:
        finish(run, RunStatus.FAILED, error=f"The batch could not be sent: {getattr(error, 'message', str(error))}")
        return
    EvalRun.objects.filter(pk=run.pk).update(batch_input_file=upload, remote_batch_id=batch.id, batch_status=batch.status,
                                             heartbeat_at=timezone.now())


def batch_runs_to_sync() -> list[int]:
    return list(EvalRun.objects.filter(mode=RunMode.BATCH, status=RunStatus.RUNNING).exclude(remote_batch_id="")
                .values_list("pk", flat=True))


def batch_run_sync(run_id: int) -> None:
    """Follow the run's batch; once it has ended, collect and grade its results and finish the run."""
    run = EvalRun.objects.select_related("connection", "set_version", "team", "created_by").filter(
        pk=run_id, mode=RunMode.BATCH, status=RunStatus.RUNNING).exclude(remote_batch_id="").first()
    if run is None:
        return
    try:
        batch = provider_call(run.connection, lambda client: client.batches.retrieve(run.remote_batch_id))
    except ProviderError as error:
        log.warning("eval run %s: batch %s could not be read: %s", run.pk, run.remote_batch_id, error.message)
        return  # the next tick tries again
    if batch.status in ACTIVE:
        EvalRun.objects.filter(pk=run.pk).update(batch_status=batch.status, heartbeat_at=timezone.now())
        return
    # Claimed by a conditional update: two syncs never collect the same batch twice (a
    # collector that died is released by the stale-run sweep; what it saved is kept).
    if not EvalRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exclude(batch_status=COLLECTING).update(
            batch_status=COLLECTING, heartbeat_at=timezone.now()):
        return
    try:
        _collect(run, batch)
    except ProviderError as error:
        finish(run, RunStatus.FAILED, error=f"The batch's results could not be read: {error.message}")
        return
    reason = "" if batch.status == "completed" else f"The batch ended {batch.status}."
    EvalResult.objects.filter(run=run, status=ResultStatus.PENDING).update(
        status=ResultStatus.ERROR, passed=False, error=reason or "no result in the batch's files")
    EvalRun.objects.filter(pk=run.pk).update(batch_status=batch.status)
    finish(run, RunStatus.SUCCEEDED)


def _file_lines(run: EvalRun, remote_id: str | None) -> Iterator[dict[str, Any]]:
    if not remote_id:
        return
    stored = file_fetch_remote(team=run.team, connection=run.connection, remote_id=remote_id)
    with file_open(file=stored) as handle:
        for raw in handle:
            if raw.strip():
                try:
                    yield json.loads(raw)
                except ValueError:
                    log.warning("eval run %s: a line of %s is not JSON", run.pk, remote_id)


def _answer(result_id: int, line: dict[str, Any], model: str) -> Answer:
    answer = Answer(result_id)
    response = line.get("response") or {}
    body = response.get("body") or {}
    error = line.get("error") or (body.get("error") if response.get("status_code", 200) >= 400 else None)
    if error:
        answer.error = f"The provider refused the request: {error.get('message') or error.get('code') or error}"
        return answer
    usage = body.get("usage") or {}
    if "output" in body:  # a /v1/responses line (the connection's engine when the batch was sent)
        answer.output = _response_output(body["output"] or [])
        answer.spend = Spend(input=usage.get("input_tokens") or 0, output=usage.get("output_tokens") or 0,
                             cached=(usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    else:
        choices = body.get("choices") or []
        message = (choices[0] if choices else {}).get("message") or {}
        answer.output = g.ModelOutput(message.get("content") or "", message.get("tool_calls") or [])
        answer.spend = Spend(input=usage.get("prompt_tokens") or 0, output=usage.get("completion_tokens") or 0,
                             cached=(usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    answer.cost = answer.spend.cost(model_facts(model), batch=True)
    return answer


def _response_output(items: list[dict[str, Any]]) -> g.ModelOutput:
    """A response's output items as the graders read them: its text, and its function calls
    in Chat Completions' shape."""
    text = "".join(part.get("text") or "" for item in items if item.get("type") == "message"
                   for part in item.get("content") or () if part.get("type") == "output_text")
    calls = [{"id": item.get("call_id", ""), "type": "function",
              "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")}}
             for item in items if item.get("type") == "function_call"]
    return g.ModelOutput(text, calls)


def _collect(run: EvalRun, batch: Any) -> None:
    results = {r.pk: r for r in EvalResult.objects.filter(run=run, status=ResultStatus.PENDING)
               .select_related("case", "target")}
    grader_list = g.parse_graders(run.set_version.graders)
    client = client_for(run.connection, ClientOptions(max_retries=0))
    pacer = Pacer()

    def jobs() -> Iterator[Any]:
        for remote_id in (batch.output_file_id, batch.error_file_id):
            for line in _file_lines(run, remote_id):
                custom_id = str(line.get("custom_id", ""))
                result_id = int(custom_id.removeprefix(CUSTOM_ID_PREFIX)) if custom_id.startswith(CUSTOM_ID_PREFIX) \
                    and custom_id.removeprefix(CUSTOM_ID_PREFIX).isdigit() else None
                result = results.pop(result_id, None) if result_id is not None else None
                if result is None:
                    continue  # not this run's, or already joined
                answer = _answer(result.pk, line, result.target.model)
                yield partial(grade_answer, client, result.case, answer, grader_list, pacer)

    process(run, jobs(), grader_list=grader_list, client=client, pacer=pacer)

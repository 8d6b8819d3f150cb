"""When a batch ends: fetch its output and error files into the library and stream-
parse them into its request rows, joined by custom_id.

Rows are parsed a line at a time, streamed into a temporary table with COPY, and
joined to the request rows with one UPDATE ... FROM, so a 50,000-line file never
sits in memory and costs one statement, not 50,000."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Sum

from jobs_app.batches.estimate import actual_cost
from jobs_app.batches.models import (
    Batch,
    BatchEndpoint,
    BatchRequest,
    BatchStatus,
    RequestStatus,
    ResultsState,
)
from project.files.services import file_fetch_remote, file_open
from project.providers.client import ProviderError
from project.spend.ledger import Call, SpendLine, spend_key_recorded, spend_record_calls
from project.spend.models import Feature, Pricing
from project.user_input import loads_user_json

ResultRow = tuple[str, str, int | None, str, str | None, str, str, int, int, int, int, str]
TEMP_TABLE = "batch_results_incoming"
COLUMNS = ("custom_id", "status", "status_code", "output_text", "output_json", "error_code", "error_message",
           "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "provider_request_id")


def _chat_text(body: dict[str, Any]) -> str:
    choices = body.get("choices") or []
    if not choices:
        return ""
    message = choices[0].get("message") or {}
    if message.get("content"):
        return str(message["content"])
    if message.get("tool_calls"):
        return json.dumps(message["tool_calls"], ensure_ascii=False)
    return str(message.get("refusal") or "")


def _responses_text(body: dict[str, Any]) -> str:
    texts = []
    for item in body.get("output") or []:
        for part in item.get("content") or []:
            if part.get("type") == "output_text":
                texts.append(str(part.get("text", "")))
    return "".join(texts)


def _embedding_text(body: dict[str, Any]) -> str:
    data = body.get("data") or []
    if not data:
        return ""
    vector = data[0].get("embedding") or []
    if isinstance(vector, str):
        return f"embedding (base64, {len(vector)} chars)"
    head = ", ".join(f"{v:.4f}" for v in vector[:4])
    return f"[{head}, …] ({len(vector)} dimensions)"


def output_text(endpoint: str, body: dict[str, Any]) -> str:
    if endpoint == BatchEndpoint.EMBEDDINGS:
        return _embedding_text(body)
    if endpoint == BatchEndpoint.RESPONSES:
        return _responses_text(body)
    return _chat_text(body)


def _usage(body: dict[str, Any]) -> tuple[int, int, int, int]:
    """Input, output, cached input and reasoning tokens, in the words of Chat Completions
    (prompt/completion, *_tokens_details) or of Responses (input/output, *_tokens_details)."""
    usage = body.get("usage") or {}
    input_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    return (int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0),
            int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0),
            int(input_details.get("cached_tokens") or 0) if isinstance(input_details, dict) else 0,
            int(output_details.get("reasoning_tokens") or 0) if isinstance(output_details, dict) else 0)


def parse_result_lines(lines: Iterable[bytes], *, endpoint: str, structured: bool) -> Iterator[ResultRow]:
    """One row per line of an output or error file. Unparseable lines are skipped:
    the provider wrote them, and one bad line must not lose the others."""
    for raw in lines:
        if not raw.strip():
            continue
        try:
            line = loads_user_json(raw)
            custom_id = str(line["custom_id"])
        except (ValueError, KeyError, TypeError):  # UserJSONError is a ValueError
            continue
        response = line.get("response") or {}
        error = line.get("error") or {}
        body = response.get("body") or {}
        status_code = response.get("status_code")
        request_id = str(response.get("request_id") or "")
        if status_code == 200 and not error:
            text = output_text(endpoint, body)
            parsed: str | None = None
            if structured and text:
                try:
                    parsed = json.dumps(loads_user_json(text))
                except (ValueError, RecursionError):  # RecursionError: json.dumps of a value too deep to write
                    parsed = None
            tokens_in, tokens_out, tokens_cached, tokens_reasoning = _usage(body)
            yield (custom_id, RequestStatus.SUCCEEDED, 200, text, parsed, "", "", tokens_in, tokens_out, tokens_cached,
                   tokens_reasoning, request_id)
            continue
        detail = error or (body.get("error") if isinstance(body, dict) else None) or {}
        code = str(detail.get("code") or detail.get("type") or (f"http_{status_code}" if status_code else "error"))
        status = RequestStatus.EXPIRED if code == "batch_expired" else RequestStatus.FAILED
        yield (custom_id, status, status_code, "", None, code[:100], str(detail.get("message") or ""), 0, 0, 0, 0,
               request_id)


def is_structured(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format") or (body.get("text") or {}).get("format") or {}
    return isinstance(response_format, dict) and response_format.get("type") in ("json_schema", "json_object")


def join_results(*, batch: Batch, rows: Iterable[ResultRow]) -> int:
    """Write parsed results onto the batch's request rows by custom_id. Returns rows updated."""
    assignments = ", ".join(f"{name} = t.{name}" for name in COLUMNS if name != "custom_id")
    with transaction.atomic(), db_connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE {TEMP_TABLE} (custom_id text, status text, status_code int, output_text text, "
            "output_json jsonb, error_code text, error_message text, input_tokens int, output_tokens int, "
            "cached_tokens int, reasoning_tokens int, provider_request_id text) ON COMMIT DROP"
        )
        with cursor.cursor.copy(f"COPY {TEMP_TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"UPDATE jobs_app_batchrequest r SET {assignments} FROM {TEMP_TABLE} t "  # noqa: S608 - fixed names only
            "WHERE r.batch_id = %s AND r.custom_id = t.custom_id",
            [batch.pk],
        )
        updated: int = cursor.rowcount
        cursor.execute(f"DROP TABLE {TEMP_TABLE}")
    return updated


def _file_lines(stream: IO[bytes]) -> Iterator[bytes]:
    with stream:
        yield from stream


def batch_results_collect(*, batch: Batch, final_attempt: bool = True) -> float | None:
    """Fetch and join the output and error files, then record usage and cost.
    Safe to run again: the files are fetched once and the join overwrites the same values.
    Returns seconds to wait before trying again when the provider failed in a passing way
    (and this is not the final attempt); otherwise None."""
    if batch.status == BatchStatus.FAILED:
        # The provider refused the whole input; no request ran.
        BatchRequest.objects.filter(batch=batch, status=RequestStatus.PENDING).update(
            status=RequestStatus.NOT_RUN, error_message="The batch failed validation; see the batch's errors.")
        Batch.objects.filter(pk=batch.pk).update(results_state=ResultsState.DONE, results_error="")
        return None
    first_body = BatchRequest.objects.filter(batch=batch).order_by("line_no").values_list("body", flat=True).first()
    structured = is_structured(first_body or {})
    try:
        for field, remote_id in (("output_file", batch.remote_output_file_id), ("error_file", batch.remote_error_file_id)):
            if not remote_id:
                continue
            file = file_fetch_remote(team=batch.team, connection=batch.connection, remote_id=remote_id)
            Batch.objects.filter(pk=batch.pk).update(**{field: file})
            join_results(batch=batch, rows=parse_result_lines(_file_lines(file_open(file=file)),
                                                              endpoint=batch.endpoint, structured=structured))
    except ProviderError as error:
        if error.transient and not final_attempt:
            Batch.objects.filter(pk=batch.pk).update(results_error=error.message)
            return max(error.retry_after or 0, 30.0)
        Batch.objects.filter(pk=batch.pk).update(results_state=ResultsState.ERROR, results_error=error.message)
        return None
    leftover = RequestStatus.EXPIRED if batch.status == BatchStatus.EXPIRED else RequestStatus.NOT_RUN
    BatchRequest.objects.filter(batch=batch, status=RequestStatus.PENDING).update(status=leftover)
    sums = BatchRequest.objects.filter(batch=batch).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    input_tokens = batch.input_tokens or int(sums["i"] or 0)
    output_tokens = batch.output_tokens or int(sums["o"] or 0)
    with transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(
            input_tokens=input_tokens, output_tokens=output_tokens, results_state=ResultsState.DONE, results_error="",
            cost_usd=actual_cost(batch.group.model, input_tokens, output_tokens),
        )
        batch_spend_record(batch=batch, input_tokens=input_tokens, output_tokens=output_tokens)
    return None


def batch_spend_record(*, batch: Batch, input_tokens: int, output_tokens: int) -> None:
    """Each billed line of the part's output file is a ledger row at batch prices (its own
    tokens, read from the file into its request row): collecting again records nothing
    more; the rows outlive the batch."""
    if not input_tokens and not output_tokens:
        return
    group = batch.group
    person = group.created_by
    line = SpendLine(
        team_id=batch.team_id, model=group.model, source_kind="batch", source_id=group.pk,
        feature=Feature.EMBEDDINGS if batch.endpoint == BatchEndpoint.EMBEDDINGS else Feature.BATCH,
        source_label=f"{group.name} (part {batch.part})", key=f"batch:{batch.pk}:line:",
        connection_id=batch.connection_id, connection_name=batch.connection.name,
        person_id=person.pk if person else None, person_name=person.get_username() if person else "",
        pricing=Pricing.BATCH, settles=f"batch_group:{group.pk}")
    if spend_key_recorded(key=f"batch:{batch.pk}"):
        return  # collected before each line had a row of its own: the part is one row
    billed = (BatchRequest.objects.filter(batch=batch, status=RequestStatus.SUCCEEDED)
              .exclude(input_tokens=0, output_tokens=0).order_by("line_no")
              .values_list("line_no", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
              .iterator(chunk_size=5000))
    spend_record_calls(line, (Call(key=str(line_no), input_tokens=tokens_in, output_tokens=tokens_out,
                                   cached_tokens=tokens_cached, reasoning_tokens=tokens_reasoning)
                              for line_no, tokens_in, tokens_out, tokens_cached, tokens_reasoning in billed))

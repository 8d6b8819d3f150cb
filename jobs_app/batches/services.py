"""Writes for batches: build a group from an input, submit it, cancel it, retry its failed rows."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from jobs_app.batches.build import RequestItem, items_from_rows, request_line
from jobs_app.batches.estimate import estimate_cost
from jobs_app.batches.models import (
    RETRYABLE_REQUEST_STATUSES,
    Batch,
    BatchGroup,
    BatchRequest,
    BatchSource,
    BatchStatus,
)
from jobs_app.batches.sync import batch_apply_remote
from jobs_app.batches.validation import (
    InputProblems,
    max_bytes_per_batch,
    max_parts_per_group,
    max_requests_per_batch,
)
from project.files.services import file_upload
from project.providers.client import ProviderError, provider_call
from project.providers.models import ProviderConnection
from project.queue import task_send_on_commit
from project.spend.budgets import budget_reserve
from project.teams.models import Team
from project.teams.services import audit_record

logger = logging.getLogger(__name__)

COPY_REQUESTS = (
    "COPY jobs_app_batchrequest (batch_id, line_no, custom_id, body, input_text, status, output_text, error_code, "
    "error_message, input_tokens, output_tokens, provider_request_id) FROM STDIN"
)
UPLOAD_CHUNK = 1024 * 1024


class _PartWriter:
    """Streams request rows into the group's parts with COPY, starting a new part
    when the next line would pass the per-batch count or size limit. Rows are sent
    in buffered COPYs so the connection is free between them for the reader (a
    retry reads its rows with a server-side cursor on the same connection)."""

    FLUSH_ROWS = 5000

    def __init__(self, group: BatchGroup) -> None:
        self.group = group
        self.max_requests = max_requests_per_batch()
        self.max_bytes = max_bytes_per_batch()
        self.part: Batch | None = None
        self.parts: list[Batch] = []
        self._buffer: list[tuple[Any, ...]] = []
        self.requests = 0
        self.bytes = 0

    def _flush(self) -> None:
        if not self._buffer:
            return
        with db_connection.cursor() as cursor, cursor.cursor.copy(COPY_REQUESTS) as copy:
            for row in self._buffer:
                copy.write_row(row)
        self._buffer.clear()

    def _finish_part(self) -> None:
        self._flush()
        if self.part is not None:
            Batch.objects.filter(pk=self.part.pk).update(request_count=self.part.request_count,
                                                         input_bytes=self.part.input_bytes)

    def _start_part(self) -> None:
        self._finish_part()
        self.part = Batch.objects.create(team=self.group.team, connection=self.group.connection, group=self.group,
                                         part=len(self.parts) + 1, endpoint=self.group.endpoint)
        self.parts.append(self.part)

    def add(self, item: RequestItem, size: int) -> None:
        part = self.part
        if part is None or part.request_count >= self.max_requests or part.input_bytes + size > self.max_bytes:
            self._start_part()
            part = self.part
            assert part is not None
        self._buffer.append((part.pk, item.line_no, item.custom_id, json.dumps(item.body), item.input_text,
                             "pending", "", "", "", 0, 0, ""))
        if len(self._buffer) >= self.FLUSH_ROWS:
            self._flush()
        part.request_count += 1
        part.input_bytes += size
        self.requests += 1
        self.bytes += size

    def close(self) -> None:
        self._finish_part()


def batch_group_build(
    *,
    team: Team,
    connection: ProviderConnection,
    actor: User | None,
    name: str,
    endpoint: str,
    source: str,
    items: Iterable[RequestItem],
    problems: InputProblems,
    metadata: dict[str, str] | None = None,
    retry_of: BatchGroup | None = None,
) -> BatchGroup:
    """Validate and store a whole input as a draft group, in one transaction: any
    problem anywhere raises BatchInputInvalid and leaves nothing behind."""
    max_bytes = max_bytes_per_batch()
    max_parts = max_parts_per_group()
    with transaction.atomic():
        group = BatchGroup.objects.create(team=team, connection=connection, name=name[:200], endpoint=endpoint,
                                          model="", source=source, created_by=actor, retry_of=retry_of,
                                          metadata=metadata or {})
        writer = _PartWriter(group)
        model: str | None = None
        first_model_line = 0
        tokens = 0
        for item in items:
            if problems:
                continue  # drain the input so every problem is reported
            item_model = str(item.body.get("model"))
            if model is None:
                model, first_model_line = item_model, item.line_no
            elif item_model != model:
                problems.add(f"model '{item_model}' differs from '{model}' on line {first_model_line}; "
                             "a batch runs one model.", line=item.line_no)
                continue
            line = request_line(item.custom_id, endpoint, item.body)
            if len(line) > max_bytes:
                problems.add(f"this request is {len(line):,} bytes, over the {max_bytes:,}-byte batch limit.",
                             line=item.line_no)
                continue
            writer.add(item, len(line))
            tokens += item.tokens
            if len(writer.parts) > max_parts:
                problems.add(f"the input needs more than {max_parts} batches of at most "
                             f"{writer.max_requests:,} requests / {max_bytes:,} bytes; split it into smaller files.",
                             line=item.line_no)
        if not problems and writer.requests == 0:
            problems.add("the input has no requests.")
        problems.raise_if_any()  # rolls the whole transaction back: nothing half-created
        writer.close()
        assert model is not None
        estimate = estimate_cost(model, tokens)
        group.model = model
        group.request_count = writer.requests
        group.input_bytes = writer.bytes
        group.estimated_input_tokens = tokens
        group.estimated_cost_usd = estimate.input_cost_usd
        group.save(update_fields=["model", "request_count", "input_bytes", "estimated_input_tokens",
                                  "estimated_cost_usd"])
        audit_record(team=team, actor=actor, action="batch.built", target=group.name, group=group.pk,
                     requests=writer.requests, parts=len(writer.parts))
    return group


def batch_group_discard(*, group: BatchGroup, actor: User | None) -> bool:
    """Delete a draft that was never sent. Returns False when some part was already sent."""
    with transaction.atomic():
        if group.parts.exclude(status__in=[BatchStatus.DRAFT, BatchStatus.SUBMIT_FAILED]).exists():
            return False
        if group.parts.exclude(remote_id="").exists():
            return False
        audit_record(team=group.team, actor=actor, action="batch.discarded", target=group.name)
        group.delete()
    return True


# A batch may take its 24-hour window and a while to be collected.
BATCH_RESERVATION_HOURS = 48.0


def batch_reservation_key(group_id: int) -> str:
    return f"batch_group:{group_id}"


@transaction.atomic
def batch_group_submit_request(*, group: BatchGroup, actor: User | None) -> int:
    """Claim the unsent parts and send one submit task after the commit (a conditional
    update, so a double click or a redelivered request submits nothing twice). Returns
    the parts claimed: 0 when it was already submitted. Raises BudgetExceeded when a hard
    budget limit is used up (nothing is claimed then)."""
    if Batch.objects.filter(group=group, status__in=[BatchStatus.DRAFT, BatchStatus.SUBMIT_FAILED],
                            remote_id="").exists():
        budget_reserve(team=group.team, connection_id=group.connection_id, key=batch_reservation_key(group.pk),
                       amount=group.estimated_cost_usd or Decimal(0), what="this batch", hours=BATCH_RESERVATION_HOURS)
    claimed = batch_group_mark_submitting(group=group, actor=actor)
    if claimed:
        task_send_on_commit("jobs_app.batches.tasks.batch_group_submit_task", group.pk, actor.pk if actor else None)
    return claimed


def batch_group_mark_submitting(*, group: BatchGroup, actor: User | None) -> int:
    """Claim the unsent parts for one submit task. Returns parts claimed."""
    claimed = Batch.objects.filter(group=group, status__in=[BatchStatus.DRAFT, BatchStatus.SUBMIT_FAILED],
                                   remote_id="").update(status=BatchStatus.SUBMITTING, submitting_since=timezone.now())
    if claimed:
        BatchGroup.objects.filter(pk=group.pk).update(submit_error="")
        audit_record(team=group.team, actor=actor, action="batch.submitted", target=group.name, parts=claimed)
    return claimed


def part_jsonl_chunks(batch: Batch) -> Iterator[bytes]:
    """The part's JSONL, regenerated from its rows in line order, in ~1 MB chunks."""
    rows = (BatchRequest.objects.filter(batch=batch).order_by("line_no")
            .values_list("custom_id", "body").iterator(chunk_size=5000))
    buffer: list[bytes] = []
    size = 0
    for custom_id, body in rows:
        line = request_line(custom_id, batch.endpoint, body)
        buffer.append(line)
        size += len(line)
        if size >= UPLOAD_CHUNK:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _create_remote(connection: ProviderConnection, input_file_id: str, endpoint: str, metadata: dict[str, str]) -> Any:
    return provider_call(connection, lambda client: client.batches.create(
        input_file_id=input_file_id, endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h", metadata=metadata))


def _cancel_remote(connection: ProviderConnection, remote_id: str) -> Any:
    return provider_call(connection, lambda client: client.batches.cancel(remote_id))


def batch_group_submit(*, group: BatchGroup, actor: User | None) -> None:
    """Send the claimed parts: upload every part's file first, then create the batches,
    so a refused upload creates no batch at all. A part that fails is marked and can
    be submitted again; parts already created stay tracked."""
    parts = list(group.parts.filter(status=BatchStatus.SUBMITTING, remote_id="").order_by("part"))
    if not parts:
        return
    total = group.parts.count()
    try:
        if any(part.input_file_id for part in parts):
            # An earlier submit got as far as uploading, then stopped (or was declared
            # stopped): it may have made some of the batches. Those are adopted, not made twice.
            made = _created_remotely(group.connection, {group.pk})
            parts = [part for part in parts if not (made.get((group.pk, part.part)) is not None
                                                    and _record_created(part, made[(group.pk, part.part)]))]
        for part in parts:
            if part.input_file is None:
                name = f"batch-{group.pk}-part-{part.part}-of-{total}.jsonl"
                part.input_file = file_upload(team=group.team, connection=group.connection, purpose="batch",
                                              name=name, chunks=part_jsonl_chunks(part), actor=actor)
                Batch.objects.filter(pk=part.pk).update(input_file=part.input_file)
        for part in parts:
            assert part.input_file is not None
            metadata = {**{str(k): str(v) for k, v in group.metadata.items()},
                        "switchboard_group": str(group.pk), "part": f"{part.part}/{total}"}
            _record_created(part, _create_remote(group.connection, part.input_file.remote_id, part.endpoint, metadata))
    except ProviderError as error:
        Batch.objects.filter(group=group, status=BatchStatus.SUBMITTING, remote_id="").update(
            status=BatchStatus.SUBMIT_FAILED)
        BatchGroup.objects.filter(pk=group.pk).update(submit_error=error.message)
        return
    BatchGroup.objects.filter(pk=group.pk).update(submitted_at=timezone.now(), submit_error="")


INTERRUPTED_SUBMIT = "The submission was interrupted (its worker stopped). Submit again."


def batches_recover_interrupted_submits(*, stale_after_seconds: float) -> int:
    """Parts claimed for submitting long ago that never got a remote id: their worker
    died mid-submit. A part the provider did create (found by the metadata every part is
    created with) is adopted; the others go back to "submit failed", to be submitted
    again, instead of staying "submitting" for ever. Returns parts recovered."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_seconds)
    stuck = list(Batch.objects.filter(status=BatchStatus.SUBMITTING, remote_id="", submitting_since__lt=cutoff)
                 .select_related("group", "connection"))
    recovered = 0
    for connection_id in {part.connection_id for part in stuck}:
        parts = [part for part in stuck if part.connection_id == connection_id]
        try:
            created = _created_remotely(parts[0].connection, {part.group_id for part in parts})
        except ProviderError as error:
            # Not knowing what the provider made, failing a part could send it twice: next tick.
            logger.info("interrupted batch submits on connection %s: %s", connection_id, error.message)
            continue
        for part in parts:
            remote = created.get((part.group_id, part.part))
            recovered += _record_created(part, remote) if remote is not None else _record_interrupted(part)
    return recovered


def _record_created(part: Batch, remote: Any) -> bool:
    """The provider created this part: keep its id and state, also when the part was
    declared interrupted meanwhile (the batch exists and is paid for, so it is tracked).
    False when the part already has its id (someone else recorded it)."""
    with transaction.atomic():
        if not Batch.objects.filter(pk=part.pk, status__in=(BatchStatus.SUBMITTING, BatchStatus.SUBMIT_FAILED),
                                    remote_id="").update(remote_id=remote.id, status=BatchStatus.VALIDATING):
            return False
        part.remote_id, part.status = remote.id, BatchStatus.VALIDATING
        batch_apply_remote(batch=part, remote=remote)
    return True


# A part "submitting" for this long without an id can be checked by hand (the page offers it).
SUBMIT_CHECK_AFTER_SECONDS = 120


def batch_group_check_submit(*, group: BatchGroup, actor: User | None) -> int:
    """A person's "check with the provider" for a submit that seems stuck: what the
    provider made is adopted, the rest is marked interrupted so it can be submitted
    again (a worker still sending it records what it makes all the same). Returns the
    parts settled; ProviderError when the provider cannot be asked."""
    cutoff = timezone.now() - timedelta(seconds=SUBMIT_CHECK_AFTER_SECONDS)
    stuck = list(group.parts.filter(status=BatchStatus.SUBMITTING, remote_id="", submitting_since__lt=cutoff))
    if not stuck:
        return 0
    made = _created_remotely(group.connection, {group.pk})
    settled = sum(_record_created(part, made[(group.pk, part.part)]) if (group.pk, part.part) in made
                  else _record_interrupted(part) for part in stuck)
    audit_record(team=group.team, actor=actor, action="batch.submit_checked", target=group.name, parts=settled)
    return settled


def _record_interrupted(part: Batch) -> bool:
    with transaction.atomic():
        if not Batch.objects.filter(pk=part.pk, status=BatchStatus.SUBMITTING, remote_id="").update(
                status=BatchStatus.SUBMIT_FAILED):
            return False
        BatchGroup.objects.filter(pk=part.group_id).update(submit_error=INTERRUPTED_SUBMIT)
    return True


def _created_remotely(connection: ProviderConnection, group_ids: set[int]) -> dict[tuple[int, int], Any]:
    """The provider's recent batches that are parts of these groups, by (group, part)."""
    page = provider_call(connection, lambda client: client.batches.list(limit=100))
    found: dict[tuple[int, int], Any] = {}
    for remote in page.data:
        metadata = remote.metadata or {}
        group_id, part = metadata.get("switchboard_group", ""), metadata.get("part", "").split("/")[0]
        if group_id.isdigit() and int(group_id) in group_ids and part.isdigit():
            found[(int(group_id), int(part))] = remote
    return found


def batch_group_cancel(*, group: BatchGroup, actor: User | None) -> list[str]:
    """Ask the provider to cancel every active part. Returns messages of parts that could not be cancelled."""
    problems = []
    for part in group.parts.filter(status__in=[BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS,
                                               BatchStatus.FINALIZING]).exclude(remote_id=""):
        try:
            remote = _cancel_remote(group.connection, part.remote_id)
        except ProviderError as error:
            problems.append(f"Part {part.part}: {error.message}")
            continue
        batch_apply_remote(batch=part, remote=remote)
    audit_record(team=group.team, actor=actor, action="batch.cancelled", target=group.name)
    return problems


def batch_group_retry_failed(*, group: BatchGroup, actor: User | None) -> BatchGroup:
    """A new draft group from only the failed or expired rows of this one."""
    rows = (BatchRequest.objects.filter(batch__group=group, status__in=RETRYABLE_REQUEST_STATUSES)
            .order_by("batch__part", "line_no").values_list("custom_id", "body", "input_text").iterator(chunk_size=5000))
    problems = InputProblems()
    return batch_group_build(
        team=group.team, connection=group.connection, actor=actor, name=f"{group.name} (retry of failed)",
        endpoint=group.endpoint, source=BatchSource.RETRY, items=items_from_rows(rows, endpoint=group.endpoint),
        problems=problems, retry_of=group,
    )



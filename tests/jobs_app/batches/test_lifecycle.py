"""Batches against the sandbox over real HTTP: submit, sync, results joined by custom_id, retry."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from jobs_app.batches.models import Batch, BatchGroup, BatchRequest, BatchStatus, RequestStatus, ResultsState
from jobs_app.batches.results import batch_results_collect
from jobs_app.batches.services import (
    batch_group_cancel,
    batch_group_mark_submitting,
    batch_group_retry_failed,
    batch_group_submit,
)
from jobs_app.batches.sync import batches_sync_connection
from project.files.models import File
from project.providers.model_facts import model_facts
from project.teams.models import Team
from tests.factories import batch_chat_line, make_batch_group
from tests.jobs_app.batches.conftest import sandbox_connection, sync_until_terminal, wait_until

pytestmark = pytest.mark.django_db


def submit(group: BatchGroup) -> None:
    assert batch_group_mark_submitting(group=group, actor=None)
    batch_group_submit(group=group, actor=None)


def collect(group: BatchGroup) -> None:
    # The task the sync enqueues on commit; called directly here (these tests run inside one transaction).
    for part in group.parts.all():
        assert part.results_state == ResultsState.QUEUED
        batch_results_collect(batch=part)


def mixed_lines() -> list[dict[str, object]]:
    lines = [batch_chat_line(f"req-{i}", f"echo: answer {i}") for i in range(6)]
    lines.insert(2, batch_chat_line("broken-1", "hi", sandbox_fail=True))
    lines.append(batch_chat_line("broken-2", "hi", sandbox_fail=True))
    return lines


def test_a_batch_completes_and_its_results_join_their_inputs_with_failed_lines(team: Team, sandbox_conn) -> None:
    group = make_batch_group(team, sandbox_conn, lines=mixed_lines())
    assert isinstance(group, BatchGroup)
    submit(group)
    part = group.parts.get()
    assert part.remote_id.startswith("batch_") and part.input_file is not None
    assert part.input_file.purpose == "batch"
    sync_until_terminal(group)
    collect(group)

    part.refresh_from_db()
    assert part.status == BatchStatus.COMPLETED
    assert (part.total, part.completed, part.failed) == (8, 6, 2)
    assert part.completed_at and part.in_progress_at and part.finalizing_at
    rows = {row.custom_id: row for row in BatchRequest.objects.filter(batch=part)}
    assert rows["req-3"].status == RequestStatus.SUCCEEDED
    assert rows["req-3"].output_text == "answer 3"
    assert rows["req-3"].input_text == "echo: answer 3"
    assert rows["req-3"].input_tokens > 0 and rows["req-3"].output_tokens > 0
    assert rows["broken-1"].status == RequestStatus.FAILED and rows["broken-1"].status_code == 500
    assert "sandbox_fail" in rows["broken-1"].error_message
    # Usage and cost are recorded at batch prices.
    assert part.input_tokens == sum(r.input_tokens for r in rows.values())
    facts = model_facts("gpt-4o-mini")
    expected = (Decimal(part.input_tokens) * facts.price("batch_input") / 1_000_000  # type: ignore[operator]
                + Decimal(part.output_tokens) * facts.price("batch_output") / 1_000_000)  # type: ignore[operator]
    assert part.cost_usd == expected.quantize(Decimal("0.000001"))
    # Output and error files are in the team's file library.
    assert File.objects.filter(team=team, remote_id=part.remote_output_file_id).exists()
    assert part.error_file is not None


def test_structured_outputs_are_parsed_into_json(team: Team, sandbox_conn) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": {
        "type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"], "additionalProperties": False}}}
    group = make_batch_group(team, sandbox_conn, lines=[batch_chat_line(f"c{i}", f"city number {i}", response_format=schema)
                                                        for i in range(2)])
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)
    for row in BatchRequest.objects.filter(batch__group=group):
        assert row.status == RequestStatus.SUCCEEDED
        assert isinstance(row.output_json, dict) and set(row.output_json) == {"city", "population"}
        assert json.loads(row.output_text) == row.output_json


def test_retry_failed_builds_a_batch_of_only_the_failed_rows(team: Team, sandbox_conn) -> None:
    group = make_batch_group(team, sandbox_conn, lines=mixed_lines())
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)

    retry = batch_group_retry_failed(group=group, actor=None)
    assert retry.retry_of == group and retry.request_count == 2
    assert set(BatchRequest.objects.filter(batch__group=retry).values_list("custom_id", flat=True)) == {"broken-1", "broken-2"}
    assert retry.parts.get().status == BatchStatus.DRAFT
    submit(retry)
    sync_until_terminal(retry)
    collect(retry)
    assert retry.parts.get().failed == 2  # the sandbox fails these lines every time


def test_an_expired_batch_marks_unrun_rows_expired_and_they_can_be_retried(team: Team, sandbox_conn) -> None:
    lines = [batch_chat_line(f"req-{i}", f"echo: {i}") for i in range(10)]
    group = make_batch_group(team, sandbox_conn, lines=lines, metadata={"sandbox_expire": "true"})
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)
    part = group.parts.get()
    assert part.status == BatchStatus.EXPIRED and part.expired_at
    statuses = list(BatchRequest.objects.filter(batch=part).values_list("status", flat=True))
    assert RequestStatus.EXPIRED in statuses and RequestStatus.SUCCEEDED in statuses
    expired = statuses.count(RequestStatus.EXPIRED)
    assert batch_group_retry_failed(group=group, actor=None).request_count == expired


def test_a_batch_the_provider_refuses_ends_failed_with_its_errors(team: Team, sandbox_conn) -> None:
    group = make_batch_group(team, sandbox_conn)
    assert isinstance(group, BatchGroup)
    # The sandbox accepts /v1/completions batches at create time but fails them in validation:
    # the provider-side "failed" path, which our own validation otherwise keeps us from reaching.
    Batch.objects.filter(group=group).update(endpoint="/v1/completions")
    submit(group)
    sync_until_terminal(group)
    collect(group)
    part = group.parts.get()
    assert part.status == BatchStatus.FAILED and part.failed_at
    assert part.errors and "/v1/completions" in part.errors[0]["message"]
    assert set(BatchRequest.objects.filter(batch=part).values_list("status", flat=True)) == {RequestStatus.NOT_RUN}


def test_a_responses_batch_runs_and_its_output_text_is_read(team: Team, sandbox_conn) -> None:
    lines: list[dict[str, object]] = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/responses",
         "body": {"model": "gpt-4o-mini", "input": f"echo: reply {i}", "instructions": "Be exact."}} for i in range(2)]
    group = make_batch_group(team, sandbox_conn, lines=lines, endpoint="/v1/responses")
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)
    rows = dict(BatchRequest.objects.filter(batch__group=group).values_list("custom_id", "output_text"))
    assert rows == {"r0": "reply 0", "r1": "reply 1"}


def test_a_running_batch_can_be_cancelled(team: Team, slow_sandbox_url: str) -> None:
    connection = sandbox_connection(team, slow_sandbox_url)
    group = make_batch_group(team, connection, lines=[batch_chat_line(f"req-{i}", f"echo: {i}") for i in range(40)])
    assert isinstance(group, BatchGroup)
    submit(group)
    part = group.parts.get()

    def running() -> bool:
        batches_sync_connection(connection=connection)
        part.refresh_from_db()
        return part.status == BatchStatus.IN_PROGRESS

    wait_until(running, timeout=10)
    assert batch_group_cancel(group=group, actor=None) == []
    part.refresh_from_db()
    assert part.status == BatchStatus.CANCELLING and part.cancelling_at
    sync_until_terminal(group)
    collect(group)
    part.refresh_from_db()
    assert part.status == BatchStatus.CANCELLED and part.cancelled_at
    statuses = set(BatchRequest.objects.filter(batch=part).values_list("status", flat=True))
    assert RequestStatus.NOT_RUN in statuses  # the requests never run are marked so, not left pending
    assert RequestStatus.PENDING not in statuses


def test_an_oversized_input_is_submitted_as_several_batches_shown_as_one_group(team: Team, sandbox_conn, settings) -> None:
    settings.BATCH_MAX_REQUESTS = 3
    group = make_batch_group(team, sandbox_conn, lines=[batch_chat_line(f"req-{i}", f"echo: {i}") for i in range(7)])
    assert isinstance(group, BatchGroup)
    assert [p.request_count for p in group.parts.all()] == [3, 3, 1]
    submit(group)
    remote_ids = [p.remote_id for p in group.parts.all()]
    assert all(remote_ids) and len(set(remote_ids)) == 3
    sync_until_terminal(group)
    collect(group)
    rows = BatchRequest.objects.filter(batch__group=group)
    assert rows.count() == 7 and not rows.exclude(status=RequestStatus.SUCCEEDED).exists()
    assert json.loads(json.dumps(rows.get(custom_id="req-6").output_text)) == "6"


def test_a_provider_refusal_at_submit_leaves_the_draft_to_submit_again(team: Team, sandbox_conn) -> None:
    group = make_batch_group(team, sandbox_conn)
    assert isinstance(group, BatchGroup)
    # The batch endpoint is wrong for this provider: it refuses the create call.
    Batch.objects.filter(group=group).update(endpoint="/v1/images/generations")
    submit(group)
    group.refresh_from_db()
    part = group.parts.get()
    assert part.status == BatchStatus.SUBMIT_FAILED and not part.remote_id
    assert "refused" in group.submit_error and "/v1/images/generations" in group.submit_error
    assert batch_group_mark_submitting(group=group, actor=None) == 1  # it can be tried again


@pytest.mark.parametrize("engine", ["chat_completions", "responses"])
def test_a_threads_batch_runs_to_completion_with_each_reply_joined_to_its_thread(team: Team, sandbox_conn,
                                                                               engine: str) -> None:
    """On a Responses connection the batch is built for /v1/responses (tool rounds as
    function_call items), by the same request builder as a chat run."""
    from jobs_app.batches.threads import batch_group_build_from_threads
    from tests.factories import make_assistant, make_message, make_thread

    sandbox_conn.engine = engine
    sandbox_conn.save(update_fields=["engine"])

    assistant = make_assistant(team, model="gpt-4o-mini", instructions="Reply briefly.")
    plain = make_thread(team, assistant, "Plain")
    make_message(plain, "hello")
    make_message(plain, "hi there", role="assistant")
    make_message(plain, "echo: plain again")
    make_message(plain, "an old reply", role="assistant")  # after the last user message: asked again
    with_tools = make_thread(team, assistant, "With a tool round")
    make_message(with_tools, "what is 6*7?")
    make_message(with_tools, "", role="assistant", tool_calls=[
        {"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'}}])
    make_message(with_tools, "42", role="tool", tool_call_id="call_1", tool_name="calculator")
    make_message(with_tools, "It is 42.", role="assistant")
    make_message(with_tools, "echo: tools again")

    group = batch_group_build_from_threads(team=team, connection=sandbox_conn, actor=None, name="Run again",
                                           threads=[plain, with_tools])
    assert group.endpoint == ("/v1/responses" if engine == "responses" else "/v1/chat/completions")
    if engine == "responses":
        body = BatchRequest.objects.get(batch__group=group, custom_id=f"thread-{with_tools.pk}").body
        assert body["instructions"] == "Reply briefly."
        assert [item.get("type") or item["role"] for item in body["input"]] == [
            "user", "function_call", "function_call_output", "assistant", "user"]
    submit(group)
    sync_until_terminal(group)
    collect(group)

    part = group.parts.get()
    assert part.status == BatchStatus.COMPLETED and (part.total, part.completed, part.failed) == (2, 2, 0)
    rows = {row.custom_id: row for row in BatchRequest.objects.filter(batch=part)}
    assert rows[f"thread-{plain.pk}"].output_text == "plain again"
    assert rows[f"thread-{plain.pk}"].input_text == "echo: plain again"
    assert rows[f"thread-{with_tools.pk}"].output_text == "tools again"
    assert all(row.status == RequestStatus.SUCCEEDED and row.input_tokens > 0 for row in rows.values())
    assert part.cost_usd is not None and part.cost_usd > 0


def _interrupted(group: BatchGroup) -> None:
    """What a worker that stopped mid-submit leaves: the part claimed long ago, no remote id."""
    from datetime import timedelta

    from django.utils import timezone

    Batch.objects.filter(group=group).update(status=BatchStatus.SUBMITTING, remote_id="",
                                             submitting_since=timezone.now() - timedelta(hours=1))


def test_a_submit_whose_worker_stopped_can_be_submitted_again(team: Team, sandbox_conn) -> None:
    from jobs_app.batches.services import INTERRUPTED_SUBMIT, batches_recover_interrupted_submits

    group = make_batch_group(team, sandbox_conn)
    assert isinstance(group, BatchGroup)
    assert batch_group_mark_submitting(group=group, actor=None) == 1
    assert batches_recover_interrupted_submits(stale_after_seconds=900) == 0  # just claimed: its worker is at it
    _interrupted(group)
    assert batches_recover_interrupted_submits(stale_after_seconds=900) == 1
    group.refresh_from_db()
    assert group.parts.get().status == BatchStatus.SUBMIT_FAILED and group.submit_error == INTERRUPTED_SUBMIT
    submit(group)  # the person submits again
    part = group.parts.get()
    assert part.status == BatchStatus.VALIDATING and part.remote_id


def test_a_part_the_provider_created_before_the_worker_stopped_is_adopted_not_sent_twice(team: Team,
                                                                                       sandbox_conn) -> None:
    import openai

    from jobs_app.batches.services import batches_recover_interrupted_submits

    group = make_batch_group(team, sandbox_conn)
    assert isinstance(group, BatchGroup)
    submit(group)
    created = group.parts.get().remote_id
    _interrupted(group)  # the batch exists on the provider; its id was never saved here
    assert batches_recover_interrupted_submits(stale_after_seconds=900) == 1
    part = group.parts.get()
    assert part.remote_id == created and part.status != BatchStatus.SUBMIT_FAILED
    client = openai.OpenAI(base_url=sandbox_conn.base_url, api_key=sandbox_conn.get_api_key())
    mine = [b for b in client.batches.list(limit=100).data if (b.metadata or {}).get("switchboard_group") == str(group.pk)]
    assert len(mine) == 1


def test_an_interrupted_submit_waits_while_the_provider_cannot_be_asked_what_it_made(team: Team, sandbox_conn) -> None:
    from jobs_app.batches.services import batches_recover_interrupted_submits
    from project.providers.models import ProviderConnection

    group = make_batch_group(team, sandbox_conn)
    assert isinstance(group, BatchGroup)
    submit(group)
    _interrupted(group)  # the provider may have made it: failing it now could send it twice
    ProviderConnection.objects.filter(pk=sandbox_conn.pk).update(base_url="http://127.0.0.1:9/v1")
    assert batches_recover_interrupted_submits(stale_after_seconds=900) == 0
    assert group.parts.get().status == BatchStatus.SUBMITTING
    ProviderConnection.objects.filter(pk=sandbox_conn.pk).update(base_url=sandbox_conn.base_url)
    assert batches_recover_interrupted_submits(stale_after_seconds=900) == 1  # asked again later: adopted
    assert group.parts.get().status != BatchStatus.SUBMIT_FAILED


def test_a_stuck_submit_can_be_checked_by_hand_and_submitted_again_without_a_second_batch(
        team: Team, sandbox_conn, owner_client) -> None:
    import openai

    group = make_batch_group(team, sandbox_conn)
    assert isinstance(group, BatchGroup)
    submit(group)
    created = group.parts.get().remote_id
    # The provider made it, then the worker died before saving its id (and uploaded the file before that).
    _interrupted(group)
    page = owner_client.get(f"/batches/{group.pk}/").content.decode()
    assert "Check with the provider" in page, page[page.find('<div class="actions">'):][:1500]
    owner_client.post(f"/batches/{group.pk}/check-submit/")
    part = group.parts.get()
    assert part.remote_id == created and part.status not in (BatchStatus.SUBMITTING, BatchStatus.SUBMIT_FAILED)
    assert "Check with the provider" not in owner_client.get(f"/batches/{group.pk}/").content.decode()

    # A submit declared interrupted that had uploaded its file: submitting again looks first.
    Batch.objects.filter(pk=part.pk).update(status=BatchStatus.SUBMIT_FAILED, remote_id="")
    submit(group)
    assert group.parts.get().remote_id == created
    client = openai.OpenAI(base_url=sandbox_conn.base_url, api_key=sandbox_conn.get_api_key())
    mine = [b for b in client.batches.list(limit=100).data if (b.metadata or {}).get("switchboard_group") == str(group.pk)]
    assert len(mine) == 1


def test_a_part_nobody_made_is_marked_interrupted_by_the_check(team: Team, sandbox_conn, owner_client) -> None:
    from jobs_app.batches.services import INTERRUPTED_SUBMIT

    group = make_batch_group(team, sandbox_conn)
    assert isinstance(group, BatchGroup)
    assert batch_group_mark_submitting(group=group, actor=None) == 1
    _interrupted(group)
    owner_client.post(f"/batches/{group.pk}/check-submit/")
    group.refresh_from_db()
    assert group.parts.get().status == BatchStatus.SUBMIT_FAILED and group.submit_error == INTERRUPTED_SUBMIT
    assert "<button type=\"submit\">Submit " in owner_client.get(f"/batches/{group.pk}/").content.decode()

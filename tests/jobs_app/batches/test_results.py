"""Parsing output and error files and joining them to request rows by custom_id."""

from __future__ import annotations

import json

import pytest

from jobs_app.batches.models import BatchGroup, BatchRequest, RequestStatus
from jobs_app.batches.results import join_results, parse_result_lines
from project.teams.models import Team
from tests.factories import batch_chat_line, make_batch_group

pytestmark = pytest.mark.django_db
SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
    "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}}


def output_line(custom_id: str, content: str) -> bytes:
    return json.dumps({"id": "batch_req_1", "custom_id": custom_id, "error": None, "response": {
        "status_code": 200, "request_id": "req_1", "body": {
            "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7}}}}).encode() + b"\n"


def test_results_are_joined_to_their_inputs_by_custom_id_whatever_the_order(team: Team) -> None:
    lines = [batch_chat_line(f"id-{i}", f"question {i}", response_format=SCHEMA) for i in range(3)]
    group = make_batch_group(team, lines=lines)
    assert isinstance(group, BatchGroup)
    part = group.parts.get()
    file_lines = [
        output_line("id-2", '{"answer": 2}'),
        b"this line is garbage\n",
        json.dumps({"custom_id": "id-0", "response": {"status_code": 429, "body": {"error": {
            "code": "rate_limit_exceeded", "message": "Slow down"}}}, "error": None}).encode(),
        output_line("not-ours", "ignored"),
        json.dumps({"custom_id": "id-1", "response": None, "error": {"code": "batch_expired",
                                                                     "message": "window passed"}}).encode(),
    ]
    updated = join_results(batch=part, rows=parse_result_lines(file_lines, endpoint=part.endpoint, structured=True))
    assert updated == 3
    rows = {r.custom_id: r for r in BatchRequest.objects.filter(batch=part)}
    assert rows["id-2"].status == RequestStatus.SUCCEEDED and rows["id-2"].output_json == {"answer": 2}
    assert (rows["id-2"].input_tokens, rows["id-2"].output_tokens) == (11, 7)
    assert rows["id-2"].input_text == "question 2"
    assert rows["id-0"].status == RequestStatus.FAILED and rows["id-0"].error_code == "rate_limit_exceeded"
    assert rows["id-0"].status_code == 429 and rows["id-0"].error_message == "Slow down"
    assert rows["id-1"].status == RequestStatus.EXPIRED
    # Joining the same file again (a redelivered task) gives the same rows.
    join_results(batch=part, rows=parse_result_lines(file_lines, endpoint=part.endpoint, structured=True))
    assert BatchRequest.objects.get(batch=part, custom_id="id-2").output_json == {"answer": 2}


def test_embedding_and_non_json_outputs_are_shown_as_text() -> None:
    embedding = json.dumps({"custom_id": "e", "response": {"status_code": 200, "body": {
        "data": [{"embedding": [0.1, 0.2, 0.3, 0.4, 0.5]}], "usage": {"prompt_tokens": 3}}}}).encode()
    [row] = parse_result_lines([embedding], endpoint="/v1/embeddings", structured=False)
    assert row[3] == "[0.1000, 0.2000, 0.3000, 0.4000, …] (5 dimensions)" and row[7] == 3
    [chat] = parse_result_lines([output_line("c", "not json")], endpoint="/v1/chat/completions", structured=True)
    assert chat[3] == "not json" and chat[4] is None


def test_results_are_fetched_again_after_a_passing_failure_and_the_last_failure_is_shown(team: Team) -> None:
    from jobs_app.batches.models import Batch, BatchStatus, ResultsState
    from jobs_app.batches.results import batch_results_collect
    from tests.factories import make_connection

    group = make_batch_group(team, make_connection(team, base_url="http://127.0.0.1:9/v1"))
    assert isinstance(group, BatchGroup)
    Batch.objects.filter(group=group).update(status=BatchStatus.COMPLETED, remote_id="batch_1",
                                             remote_output_file_id="file-out", results_state=ResultsState.QUEUED)
    part = group.parts.get()
    retry_in = batch_results_collect(batch=part, final_attempt=False)
    part.refresh_from_db()
    assert retry_in is not None and retry_in >= 30 and part.results_state == ResultsState.QUEUED
    assert batch_results_collect(batch=part, final_attempt=True) is None
    part.refresh_from_db()
    assert part.results_state == ResultsState.ERROR and "reach" in part.results_error
    assert not BatchRequest.objects.filter(batch=part).exclude(status=RequestStatus.PENDING).exists()


def test_an_output_lines_cached_and_reasoning_tokens_are_read_in_both_engines_words() -> None:
    chat = {"custom_id": "a", "response": {"status_code": 200, "request_id": "r1", "body": {
        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 40, "prompt_tokens_details": {"cached_tokens": 64},
                  "completion_tokens_details": {"reasoning_tokens": 30}}}}}
    responses = {"custom_id": "b", "response": {"status_code": 200, "request_id": "r2", "body": {
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
        "usage": {"input_tokens": 90, "output_tokens": 20, "input_tokens_details": {"cached_tokens": 32},
                  "output_tokens_details": {"reasoning_tokens": 12}}}}}
    plain = {"custom_id": "c", "response": {"status_code": 200, "body": {
        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2}}}}
    lines = [json.dumps(line).encode() for line in (chat, responses, plain)]
    chat_rows = list(parse_result_lines(lines[::2], endpoint="/v1/chat/completions", structured=False))
    responses_rows = list(parse_result_lines(lines[1:2], endpoint="/v1/responses", structured=False))
    # (input, output, cached, reasoning) tokens
    assert [row[7:11] for row in chat_rows] == [(100, 40, 64, 30), (5, 2, 0, 0)]
    assert [row[7:11] for row in responses_rows] == [(90, 20, 32, 12)]

"""Batch pages: build form with estimate and preview, bad input in the page, polling, results, downloads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from jobs_app.batches.models import (
    Batch,
    BatchBuild,
    BatchGroup,
    BatchRequest,
    BatchStatus,
    BuildState,
    RequestStatus,
    ResultsState,
)
from jobs_app.batches.results import join_results, parse_result_lines
from jobs_app.batches.tasks import batch_build_task
from project.teams.models import Role, Team
from tests.conftest import client_for
from tests.factories import add_member, batch_chat_line, make_batch_group, make_connection

pytestmark = pytest.mark.django_db


def csv_form(connection_id: int, content: bytes, **extra: Any) -> dict[str, Any]:
    return {"connection": connection_id, "endpoint": "/v1/chat/completions", "source": "csv", "name": "",
            "template": "Translate {word} to French.", "model": "gpt-4.1-mini", "instructions": "One word only.",
            "response_format": "", "file": SimpleUploadedFile("words.csv", content, "text/csv"), **extra}


def test_uploading_a_csv_shows_count_estimate_and_preview_before_anything_is_sent(owner_client: Client, team: Team) -> None:
    connection = make_connection(team)
    response = owner_client.post(reverse("batch_new"), csv_form(connection.pk, b"word\ncat\ndog\nbird\n"))
    group = BatchGroup.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("batch_detail", args=[group.pk])
    page = owner_client.get(response["Location"]).content.decode()
    assert "3 in 1 batch" in page
    assert f"{group.estimated_input_tokens} tokens" in page and f"${group.estimated_cost_usd} at batch prices" in page
    assert "Translate cat to French." in page and "One word only." in page
    assert "Submit 3 requests" in page
    assert not Batch.objects.exclude(remote_id="").exists()


def test_bad_input_is_reported_in_the_page_with_its_line_and_nothing_is_created(owner_client: Client, team: Team) -> None:
    connection = make_connection(team)
    response = owner_client.post(reverse("batch_new"), csv_form(connection.pk, b"word,x\ncat,1\ndog\n"))
    assert response.status_code == 400
    assert "line 3, column &#x27;x&#x27;: the row has 1 value(s) but the header has 2." in response.content.decode()
    jsonl = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    response = owner_client.post(reverse("batch_new"), {**csv_form(connection.pk, b""), "source": "jsonl",
                                                        "file": SimpleUploadedFile("in.jsonl", jsonl)})
    assert response.status_code == 400 and "line 1: body.model is missing." in response.content.decode()
    response = owner_client.post(reverse("batch_new"), csv_form(connection.pk, "wörd\n".encode("latin-1")))
    assert response.status_code == 400 and "not UTF-8" in response.content.decode()
    assert not BatchGroup.objects.exists() and not BatchRequest.objects.exists()


def test_viewers_cannot_build_or_submit(team: Team) -> None:
    viewer = add_member(team, role=Role.VIEWER).user
    group = make_batch_group(team)
    assert isinstance(group, BatchGroup)
    client = client_for(viewer)
    assert client.post(reverse("batch_submit", args=[group.pk])).status_code == 403
    assert client.post(reverse("batch_new"), {}).status_code == 403
    assert group.parts.get().status == BatchStatus.DRAFT


def test_a_draft_can_be_discarded_and_a_double_submit_is_claimed_once(owner_client: Client, team: Team,
                                                                      django_capture_on_commit_callbacks: Any) -> None:
    group = make_batch_group(team)
    assert isinstance(group, BatchGroup)
    with django_capture_on_commit_callbacks() as callbacks:
        owner_client.post(reverse("batch_submit", args=[group.pk]))
        owner_client.post(reverse("batch_submit", args=[group.pk]))
    assert len(callbacks) == 1
    assert group.parts.get().status == BatchStatus.SUBMITTING
    draft = make_batch_group(team)
    assert isinstance(draft, BatchGroup)
    owner_client.post(reverse("batch_discard", args=[draft.pk]))
    assert not BatchGroup.objects.filter(pk=draft.pk).exists()


def test_polling_stops_with_286_once_every_part_has_ended(owner_client: Client, team: Team) -> None:
    group = make_batch_group(team)
    assert isinstance(group, BatchGroup)
    Batch.objects.filter(group=group).update(status=BatchStatus.IN_PROGRESS, remote_id="batch_x", total=3, completed=1)
    headers = {"HX-Request": "true", "HX-Target": "batch-status"}
    live = owner_client.get(reverse("batch_detail", args=[group.pk]), headers=headers)
    assert live.status_code == 200 and 'hx-trigger="every 2s"' in live.content.decode()
    assert 'value="33"' in live.content.decode()  # the progress bar from request_counts
    listed = owner_client.get(reverse("batch_list"), headers={"HX-Request": "true", "HX-Target": "batch-rows"})
    assert listed.status_code == 200
    Batch.objects.filter(group=group).update(status=BatchStatus.COMPLETED, completed=3, results_state=ResultsState.DONE)
    ended = owner_client.get(reverse("batch_detail", args=[group.pk]), headers=headers)
    assert ended.status_code == 286 and "every 2s" not in ended.content.decode()
    listed = owner_client.get(reverse("batch_list"), headers={"HX-Request": "true", "HX-Target": "batch-rows"})
    assert listed.status_code == 286


FORMULA = '=HYPERLINK("http://evil")'


@pytest.fixture
def finished_group(team: Team) -> BatchGroup:
    lines = [batch_chat_line(f"id-{i}", f"question {i}") for i in range(4)]
    group = make_batch_group(team, lines=lines)
    assert isinstance(group, BatchGroup)
    part = group.parts.get()
    out = [json.dumps({"custom_id": f"id-{i}", "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": f"answer, {i}" if i else FORMULA}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2}}}}).encode()
        for i in (0, 2)]
    out.append(json.dumps({"custom_id": "id-1", "response": {"status_code": 500, "body": {"error": {
        "code": "server_error", "message": "boom"}}}}).encode())
    join_results(batch=part, rows=parse_result_lines(out, endpoint=part.endpoint, structured=False))
    BatchRequest.objects.filter(batch=part, custom_id="id-3").update(status=RequestStatus.EXPIRED, error_code="batch_expired")
    Batch.objects.filter(pk=part.pk).update(status=BatchStatus.EXPIRED, results_state=ResultsState.DONE, remote_id="b1")
    return group


def test_results_can_be_filtered_to_failed_rows_and_searched(owner_client: Client, finished_group: BatchGroup) -> None:
    url = reverse("batch_results", args=[finished_group.pk])
    page = owner_client.get(url).content.decode()
    assert page.count('data-row-status="') == 4 and "answer, 2" in page
    assert "=HYPERLINK(&quot;http://evil&quot;)" in page
    failed = owner_client.get(url, {"status": "failed"}, headers={"HX-Request": "true"}).content.decode()
    assert failed.count('data-row-status="') == 2 and "boom" in failed and "answer, 2" not in failed
    assert "<html" not in failed  # the fragment only
    searched = owner_client.get(url, {"q": "question 2"}).content.decode()
    assert searched.count('data-row-status="') == 1 and "answer, 2" in searched
    detail = owner_client.get(reverse("batch_detail", args=[finished_group.pk])).content.decode()
    assert "Retry 2 failed" in detail


def test_results_download_as_csv_and_jsonl(owner_client: Client, finished_group: BatchGroup) -> None:
    response = owner_client.get(reverse("batch_download_csv", args=[finished_group.pk]), {"status": "failed"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert text.splitlines()[0] == "custom_id,status,input,output,error_code,error,input_tokens,output_tokens"
    assert "id-1,failed,question 1,,server_error,boom,0,0" in text and "id-0" not in text
    response = owner_client.get(reverse("batch_download_jsonl", args=[finished_group.pk]))
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]  # type: ignore[attr-defined]
    assert [r["custom_id"] for r in rows] == ["id-0", "id-1", "id-2", "id-3"]
    assert rows[0]["output_text"] == '=HYPERLINK("http://evil")'
    assert rows[0]["input"]["messages"][0]["content"] == "question 0"
    every = b"".join(owner_client.get(reverse("batch_download_csv", args=[finished_group.pk])).streaming_content).decode()  # type: ignore[attr-defined]
    assert '\'=HYPERLINK(""http://evil"")' in every  # a spreadsheet shows it as text instead of running it
    assert rows[0]["usage"] == {"input_tokens": 5, "output_tokens": 2}


def test_retry_failed_from_the_page_opens_a_new_draft(owner_client: Client, finished_group: BatchGroup) -> None:
    response = owner_client.post(reverse("batch_retry_failed", args=[finished_group.pk]))
    retry = BatchGroup.objects.get(retry_of=finished_group)
    assert response["Location"] == reverse("batch_detail", args=[retry.pk])
    assert sorted(BatchRequest.objects.filter(batch__group=retry).values_list("custom_id", flat=True)) == ["id-1", "id-3"]


def test_a_big_input_is_checked_on_a_worker_and_the_page_follows_it(owner_client: Client, team: Team, settings: Any,
                                                                    django_capture_on_commit_callbacks: Any) -> None:
    settings.BATCH_INLINE_BUILD_BYTES = 10  # every upload counts as big here
    connection = make_connection(team)
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner_client.post(reverse("batch_new"), csv_form(connection.pk, b"word\ncat\ndog\n"))
    build = BatchBuild.objects.get()
    assert response["Location"] == reverse("batch_build_detail", args=[build.pk])
    assert len(callbacks) == 1 and not BatchGroup.objects.exists()
    page = owner_client.get(response["Location"], headers={"HX-Request": "true"})
    assert page.status_code == 200 and 'hx-trigger="every 1s"' in page.content.decode()
    assert response["Location"] in owner_client.get(reverse("batch_list")).content.decode()  # found again from the list

    batch_build_task.run(build.pk)  # what the cpu worker runs; the queue is exercised in the browser test
    build.refresh_from_db()
    assert build.state == BuildState.DONE and build.group is not None and not build.upload
    assert build.group.request_count == 2
    polled = owner_client.get(response["Location"], headers={"HX-Request": "true"})
    assert polled.status_code == 286 and polled["HX-Redirect"] == reverse("batch_detail", args=[build.group.pk])


def test_a_big_input_with_problems_shows_them_and_creates_nothing(owner_client: Client, team: Team, settings: Any) -> None:
    settings.BATCH_INLINE_BUILD_BYTES = 10
    connection = make_connection(team)
    response = owner_client.post(reverse("batch_new"), csv_form(connection.pk, b"word,x\ncat,1\ndog\n"))
    build = BatchBuild.objects.get()
    batch_build_task.run(build.pk)
    batch_build_task.run(build.pk)  # a redelivered task changes nothing
    page = owner_client.get(response["Location"]).content.decode()
    assert "line 3, column &#x27;x&#x27;: the row has 1 value(s) but the header has 2." in page
    assert not BatchGroup.objects.exists() and not BatchRequest.objects.exists()
    build.refresh_from_db()
    assert build.state == BuildState.INVALID and not build.upload

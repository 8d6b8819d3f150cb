"""In a real browser: upload a CSV, submit, watch it complete, filter failed rows, download results.

Everything is real: the sandbox over HTTP, a Celery worker for submit and results, and the
sandbox's signed webhook to the live server, which is what syncs the finished batch."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import expect

from jobs_app.batches.models import BatchGroup, RequestStatus
from tests.factories import log_in, make_team, make_user
from tests.jobs_app.batches.conftest import WEBHOOK_SECRET, sandbox_connection

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_a_csv_submit_watch_it_complete_filter_failed_rows_and_download(
        live_server: Any, page: Any, sandbox_url: str, celery_worker_session: object, tmp_path: Path,
        settings: Any) -> None:
    settings.BATCH_INLINE_BUILD_BYTES = 100_000  # this CSV (~800 KB) is checked on the cpu worker
    user = make_user("bea")
    team = make_team("Research", owner=user)
    connection = sandbox_connection(team, sandbox_url, webhook_secret=WEBHOOK_SECRET, name="Sandbox")
    httpx2.post(sandbox_url.removesuffix("/v1") + "/sandbox/webhooks",
                headers={"Authorization": f"Bearer {connection.get_api_key()}"},
                json={"url": f"{live_server.url}/webhooks/{connection.public_id}/", "secret": WEBHOOK_SECRET}
                ).raise_for_status()
    # The third row is longer than the model's context window, so the provider fails that one request.
    rows = [("w1", "bonjour"), ("w2", "merci"), ("w3", "hello " * 130_000), ("w4", "au revoir")]
    content = io.StringIO()
    csv.writer(content).writerows([("custom_id", "word"), *rows])

    log_in(page, live_server.url, "bea")
    page.click("nav.mainnav >> text=Batches")
    page.click("text=New batch")
    page.select_option("select[name=endpoint]", "/v1/chat/completions")
    page.check("input[name=source][value=csv]")
    page.set_input_files("input[name=file]", files=[{"name": "words.csv", "mimeType": "text/csv",
                                                      "buffer": content.getvalue().encode()}])
    page.fill("textarea[name=template]", "echo: {word}")
    page.fill("input[name=model]", "gpt-4o-mini")
    page.click("button:has-text('Check and estimate')")
    page.wait_for_url("**/batches/checks/*/")  # big: checked on the worker, this page follows it
    page.wait_for_url("**/batches/*/")

    page.wait_for_selector("[data-preview]")
    assert "4 in 1 batch" in page.inner_text("[data-request-count]")
    assert "at batch prices" in page.inner_text("[data-estimate]")
    assert '"custom_id":"w1"' in page.inner_text("[data-preview]")
    page.click("button:has-text('Submit 4 requests')")

    page.wait_for_selector("[data-status]:has-text('Completed')", timeout=40_000)
    page.click("a:has-text('Results')")
    assert page.locator("tr[data-row-status]").count() == 4
    assert "bonjour" in page.inner_text("table.batch-results")

    page.select_option("#status-filter", "failed")  # htmx swaps the table
    expect(page.locator("tr[data-row-status]")).to_have_count(1)
    failed_row = page.inner_text("tr[data-row-status]")
    assert "w3" in failed_row and "context_length_exceeded" in failed_row

    with page.expect_download() as download_info:
        page.click("a:has-text('Download CSV')")
    downloaded = tmp_path / "results.csv"
    download_info.value.save_as(downloaded)
    exported = list(csv.DictReader(downloaded.open()))
    assert [(r["custom_id"], r["status"], r["error_code"]) for r in exported] == [("w3", "failed", "context_length_exceeded")]

    group = BatchGroup.objects.get(team=team)
    statuses = dict(group.parts.get().requests.values_list("custom_id", "status"))
    assert statuses == {"w1": RequestStatus.SUCCEEDED, "w2": RequestStatus.SUCCEEDED, "w3": RequestStatus.FAILED,
                        "w4": RequestStatus.SUCCEEDED}


def test_pick_two_threads_review_the_draft_submit_and_watch_it_complete(
        live_server: Any, page: Any, sandbox_url: str, celery_worker_session: object) -> None:
    from tests.factories import make_assistant, make_message, make_thread

    user = make_user("theo")
    team = make_team("Support", owner=user)
    connection = sandbox_connection(team, sandbox_url, webhook_secret=WEBHOOK_SECRET, name="Sandbox")
    httpx2.post(sandbox_url.removesuffix("/v1") + "/sandbox/webhooks",
                headers={"Authorization": f"Bearer {connection.get_api_key()}"},
                json={"url": f"{live_server.url}/webhooks/{connection.public_id}/", "secret": WEBHOOK_SECRET}
                ).raise_for_status()
    assistant = make_assistant(team, name="Helpdesk", model="gpt-4o-mini", instructions="Be brief.")
    threads = {}
    for title in ("Refund question", "Login trouble", "Not this one"):
        thread = make_thread(team, assistant, title)
        make_message(thread, "hello")
        make_message(thread, "hi", role="assistant")
        make_message(thread, f"echo: answer for {title}")
        threads[title] = thread

    log_in(page, live_server.url, "theo")
    page.click("nav.mainnav >> text=Batches")
    page.click("text=Run threads again")
    expect(page.locator("tr.thread-row")).to_have_count(3)
    page.fill("input[name=name]", "Support rerun")
    page.check("label:has-text('Refund question')")
    page.check("label:has-text('Login trouble')")
    page.click("button:has-text('Check and estimate')")
    page.wait_for_selector("[data-preview]")
    assert "2 in 1 batch" in page.inner_text("[data-request-count]")
    assert "at batch prices" in page.inner_text("[data-estimate]")
    assert f'"custom_id":"thread-{threads["Refund question"].pk}"' in page.inner_text("[data-preview]")
    page.click("button:has-text('Submit 2 requests')")

    page.wait_for_selector("[data-status]:has-text('Completed')", timeout=40_000)
    page.click("a:has-text('Results')")
    expect(page.locator("tr[data-row-status]")).to_have_count(2)
    table = page.inner_text("table.batch-results")
    assert "answer for Refund question" in table and "answer for Login trouble" in table
    assert "Not this one" not in table

    group = BatchGroup.objects.get(team=team)
    assert group.source == "threads"
    statuses = dict(group.parts.get().requests.values_list("custom_id", "status"))
    assert statuses == {f"thread-{threads['Refund question'].pk}": RequestStatus.SUCCEEDED,
                        f"thread-{threads['Login trouble'].pk}": RequestStatus.SUCCEEDED}

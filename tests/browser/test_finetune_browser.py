"""In a real browser, with a real Celery worker and the sandbox: upload a dataset, read
its validation report, start a job, watch it finish, open a thread with the model beside
its base model and watch both replies stream in. The dashboard runs under uvicorn
(`asgi_url`), as in production, so the chat's SSE streams for real."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from project.providers.models import ProviderKind
from tests.factories import chat_example, jsonl, log_in, make_connection, make_team, make_user, send_with_enter

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tuning_sandbox(tmp_path: Path) -> Iterator[str]:
    """Jobs finish in seconds (fast clock), replies stream at 400 tokens a second (long enough to watch)."""
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path, time_scale=2000.0, ttft_ms=0, tokens_per_second=400) as url:
        yield url


def test_upload_validate_start_a_job_watch_it_finish_and_chat_with_the_model(asgi_url, page, tuning_sandbox,
                                                                               celery_worker_session) -> None:
    user = make_user("fiona")
    team = make_team("Tuners", owner=user)
    make_connection(team, base_url=tuning_sandbox, kind=ProviderKind.SANDBOX, name="Sandbox", api_key="sk-ft-browser-1")

    log_in(page, asgi_url, "fiona")
    page.click("nav.mainnav >> text=Fine-tuning")
    page.click("text=Upload a dataset")
    page.set_input_files("input[name=training_file]", files=[{
        "name": "support.jsonl", "mimeType": "application/jsonl",
        "buffer": jsonl([chat_example(i) for i in range(20)]),
    }])
    page.click("button:has-text('Upload and validate')")

    # The report arrives through htmx polling while the worker validates.
    page.wait_for_selector("text=No format errors")
    report = page.inner_text("#ft-report")
    assert "20 examples on 20 lines" in report
    assert "Examples without a system message: 0" in report
    assert re.search(r"Assistant tokens", report)
    assert "Cost estimate" in report and "5 epochs (heuristic)" in report

    page.click("text=Start a job with this dataset")
    assert "OpenAI closes self-serve fine-tuning to new jobs on 2027-01-06" in page.inner_text("#ft-estimate")
    page.fill("input[name=suffix]", "support")
    page.click("button:has-text('Upload files and start the job')")
    # A worker makes the job; the list, polling, shows it once it is made.
    page.wait_for_selector("text=The job is being created")
    page.click("#ft-jobs tbody a", timeout=30_000)

    # The page polls; each poll asks the worker to refresh the job from the sandbox.
    page.wait_for_selector("#ft-status:has-text('Succeeded')", timeout=30_000)
    page.wait_for_selector("svg polyline")
    model = page.inner_text("#ft-model")
    assert model.startswith("ft:gpt-4.1-mini:") and ":support:" in model
    assert "The job has successfully completed" in page.inner_text(".ft-events")
    page.reload()  # the bell is in the header, outside the live fragment
    assert page.get_attribute("a.bell", "aria-label") == "Notifications, 1 unread"

    page.click("text=Start a thread with it")
    # A link creates nothing: it asks first.
    page.wait_for_selector("button:has-text('Start the comparison')")
    assert "/threads/new/" in page.url and "model=ft%3Agpt-4.1-mini" in page.url
    page.fill("textarea[name=instructions]", "You answer support questions.")
    page.click("button:has-text('Start the comparison')")

    page.wait_for_selector("#compare-columns")
    models = [page.get_attribute(f".compare-col:nth-child({n})", "data-model") for n in (1, 2)]
    assert models == [model, "gpt-4.1-mini"]
    send_with_enter(page, "write 400 words")
    # Both replies stream in: live blocks show part of a reply before the whole arrives.
    page.wait_for_selector("#compare-1 .live .stream-text span")
    partial_words = len(page.inner_text("#compare-1 .live .stream-text").split())
    tuned = page.wait_for_selector("#compare-1 .run-group[data-run-status=succeeded] .msg.assistant", timeout=30_000)
    base = page.wait_for_selector("#compare-2 .run-group[data-run-status=succeeded] .msg.assistant", timeout=30_000)
    assert 0 < partial_words < 400
    # Each column's stream brought the message and one reply, shown once.
    for column in ("#compare-1", "#compare-2"):
        assert page.locator(f"{column} .msg.user .text").all_inner_texts() == ["write 400 words"]
        assert page.locator(f"{column} .run-group").count() == 1
    assert model in tuned.inner_text() and "gpt-4.1-mini" in base.inner_text()
    assert len(tuned.query_selector(".md").inner_text().split()) == 400
    assert page.input_value("#composer-text") == ""

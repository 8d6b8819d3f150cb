"""In a real browser, with a real Celery worker and the sandbox: upload a dataset, read
its validation report, start a job, watch it finish, open a thread with the model."""

from __future__ import annotations

import re

import pytest

from project.providers.models import ProviderKind
from tests.factories import PASSWORD, chat_example, jsonl, make_connection, make_team, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_validate_start_a_job_watch_it_finish_and_open_a_thread(live_server, page, sandbox_url,
                                                                         celery_worker_session) -> None:
    user = make_user("fiona")
    team = make_team("Tuners", owner=user)
    make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox", api_key="sk-ft-browser-1")

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "fiona")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
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
    page.wait_for_selector("text=created.")

    # The page polls; each poll asks the worker to refresh the job from the sandbox.
    page.wait_for_selector("#ft-status:has-text('Succeeded')", timeout=30_000)
    page.wait_for_selector("svg polyline")
    model = page.inner_text("#ft-model")
    assert model.startswith("ft:gpt-4.1-mini:") and ":support:" in model
    assert "The job has successfully completed" in page.inner_text(".ft-events")
    page.reload()  # the bell is in the header, outside the live fragment
    assert page.get_attribute("a.bell", "aria-label") == "Notifications, 1 unread"

    page.click("text=Start a thread with it")
    # The chat feature's new-thread route is not built yet; the link carries the model for it.
    assert "/threads/new/" in page.url and "model=ft%3Agpt-4.1-mini" in page.url

"""In a real browser: build a set from two threads, run it against two models, read the
comparison, switch the assistant to the winner."""

from __future__ import annotations

import pytest

from project.providers.models import ProviderKind
from tests.factories import log_in, make_assistant, make_connection, make_message, make_team, make_thread, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


def test_build_a_set_from_threads_compare_two_models_and_switch(live_server, page, sandbox_url) -> None:
    user = make_user("erin")
    team = make_team("Evaluators", owner=user)
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    assistant = make_assistant(team, connection, name="Support", model="gpt-4.1-mini", instructions="")
    for text in ("hello there", "see you soon"):
        thread = make_thread(team, assistant, title=f"Thread {text}")
        make_message(thread, f"echo: {text}")
        make_message(thread, text, role="assistant")

    log_in(page, live_server.url, "erin")
    page.click("nav.mainnav >> text=Evals")
    page.fill("input[name=name]", "Support answers")
    page.select_option("select[name=assistant]", label="Support")
    page.click("button:has-text('Create test set')")
    page.wait_for_selector("h1:has-text('Support answers')")

    page.click("summary:has-text('Add a grader')")
    page.select_option("select[name=kind]", "exact")
    page.click("button:has-text('Add grader')")
    page.wait_for_selector("[data-grader=exact]")

    page.click("text=Add cases from threads")
    page.check("tr:has-text('Thread hello there') input[type=checkbox]")
    page.check("tr:has-text('Thread see you soon') input[type=checkbox]")
    page.click("button:has-text('Add chosen threads')")
    page.wait_for_selector("text=Added 2 cases from threads")
    assert page.inner_text("[data-case-count]") == "2"

    page.click("text=Run this set")
    page.select_option("select[aria-label='Target 2 version']", label="Support v1 (gpt-4.1-mini)")
    page.select_option("select[aria-label='Target 2 model']", "gpt-5.4-mini")
    page.click("button:has-text('Estimate')")
    assert "2 cases × 2 targets" in page.inner_text("[data-estimate]")
    page.click("button:has-text('Start the run')")
    page.wait_for_selector("[data-run-status]:has-text('succeeded')", timeout=30_000)

    figures = page.inner_text("[data-figures]")
    assert "Support v1 with gpt-5.4-mini" in figures
    assert page.inner_text("tr:has-text('with gpt-5.4-mini') [data-pass-rate]").startswith("100%")
    assert page.locator("[data-results] td[data-passed=yes]").count() == 4

    page.on("dialog", lambda dialog: dialog.accept())
    page.click("tr:has-text('with gpt-5.4-mini') button:has-text('Switch to this model')")
    page.wait_for_selector("text=Support now uses gpt-5.4-mini")
    assistant.refresh_from_db()
    assert assistant.current_version is not None and assistant.current_version.model == "gpt-5.4-mini"

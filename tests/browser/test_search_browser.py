"""In a real browser: search a meaning with none of its words and find the thread."""

from __future__ import annotations

import pytest

from project.providers.models import ProviderKind
from tests.factories import log_in, make_assistant, make_connection, make_team, make_user
from tests.search_app.conftest import embed_all, make_conversation

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_searching_a_meaning_finds_the_thread_that_says_it_in_other_words(page, asgi_url, sandbox_url) -> None:
    owner = make_user("mira")
    team = make_team("Support", owner=owner)
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    assistant = make_assistant(team, connection, name="Helpdesk")
    make_conversation(team, "Kettle trouble", "My kettle arrived broken. Can I get my money back?",
                      "Yes: we reimburse within 30 days.", assistant=assistant)
    make_conversation(team, "Router reset", "How do I reset my router?", "Hold the button.", assistant=assistant)
    embed_all(team)

    log_in(page, asgi_url, "mira", expect_heading="Support")
    page.goto(f"{asgi_url}/threads/")
    assert page.locator("#mode").input_value() == "hybrid"  # the default once embeddings exist
    page.fill("#q", "refund")  # a word none of the thread's messages has
    page.click("button:has-text('Filter')")
    page.wait_for_selector("h1:has-text('Search')")
    first = page.locator(".search-result").first
    assert first.locator(".result-thread").inner_text() == "Kettle trouble"
    assert "similarity" in first.inner_text()
    assert page.locator(".result-thread:has-text('Router reset')").count() == 0

    first.locator("a.result-thread").click()
    page.wait_for_selector("text=Can I get my money back?")

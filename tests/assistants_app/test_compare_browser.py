"""In a real browser: any thread can be compared with another model, and starting a
comparison says which assistants it makes (or reuses) before it makes them."""

from __future__ import annotations

import pytest

from assistants_app.models import Assistant
from project.providers.models import ProviderKind
from tests.factories import log_in, make_assistant, make_connection, make_team, make_thread, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_normal_thread_opens_a_comparison_with_a_model_the_person_picks(page, asgi_url, sandbox_url) -> None:
    owner = make_user("sana")
    team = make_team("Compare", owner=owner)
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    thread = make_thread(team, make_assistant(team, connection, name="Helpdesk", model="gpt-4.1-mini"),
                         title="Support chat")
    log_in(page, asgi_url, "sana", expect_heading="Compare")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")

    page.click("text=Compare with another model")
    page.wait_for_selector("h1:has-text('Chat with gpt-4.1-mini')")
    # The second model is the person's choice, from the connection's models.
    assert page.locator("#model-options option[value='gpt-4o-mini']").count() == 1
    page.fill("#pick-compare", "gpt-4o-mini")
    page.click("button:has-text('Compare…')")
    page.wait_for_selector("h1:has-text('Chat with gpt-4.1-mini and gpt-4o-mini')")
    plan = page.inner_text("#start-plan")
    assert "gpt-4.1-mini: creates an assistant named" in plan and "gpt-4o-mini: creates an assistant named" in plan
    assert Assistant.objects.filter(team=team).count() == 1  # nothing made yet

    page.click("button:has-text('Start the comparison')")
    page.wait_for_selector("text=Send to both")
    assert "/compare/" in page.url
    assert Assistant.objects.filter(team=team).count() == 3

    # Again: the page says both assistants are reused, and makes none.
    page.goto(f"{asgi_url}/threads/new/?model=gpt-4.1-mini&compare=gpt-4o-mini&connection={connection.pk}")
    plan = page.inner_text("#start-plan")
    assert plan.count("uses the assistant") == 2 and "creates" not in plan


def test_starting_without_a_model_offers_a_model_picker(page, asgi_url, sandbox_url) -> None:
    owner = make_user("tomas")
    team = make_team("Picker", owner=owner)
    make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    log_in(page, asgi_url, "tomas", expect_heading="Picker")
    page.goto(f"{asgi_url}/threads/new/")
    page.wait_for_selector("h1:has-text('Chat with a model')")
    assert "?" not in page.inner_text("h1")
    page.fill("#pick-model", "gpt-4.1-mini")
    page.click("button:has-text('Continue')")
    page.wait_for_selector("h1:has-text('Chat with gpt-4.1-mini')")
    assert "creates an assistant named" in page.inner_text("#start-plan")
    page.click("button:has-text('Start the thread')")
    page.wait_for_selector("#composer-text")
    assert "/threads/" in page.url and page.url.rstrip("/").split("/")[-1].isdigit()

"""In a real browser: log in, switch team, add a provider connection, test it."""

from __future__ import annotations

import pytest

from tests.factories import log_in, make_team, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_log_in_switch_team_add_a_connection_and_test_it(live_server, page, sandbox_url) -> None:
    user = make_user("bruno")
    make_team("Alpha", owner=user)
    make_team("Beta", owner=user)

    log_in(page, live_server.url, "bruno", expect_heading="Alpha")

    page.select_option("#team-switch-select", label="Beta")  # auto-submits through site.js
    page.wait_for_selector("h1:has-text('Beta')")

    page.click("nav.mainnav >> text=Settings")
    page.click("text=Add connection")
    page.select_option("select[name=kind]", "sandbox")
    page.fill("input[name=name]", "Local sandbox")
    page.fill("input[name=base_url]", sandbox_url)
    page.fill("input[name=api_key]", "sk-browser-test-7777")
    page.click("button:has-text('Save connection')")
    page.wait_for_selector("text=Connection Local sandbox saved")
    assert "••••7777" in page.content()
    assert "sk-browser-test" not in page.content()

    page.click("button:has-text('Test connection')")  # an htmx request swapping in the result
    result = page.wait_for_selector("[data-test-result]")
    assert result.inner_text().startswith("Connected:")
    assert "Beta" in page.inner_text("#team-switch-select option:checked")

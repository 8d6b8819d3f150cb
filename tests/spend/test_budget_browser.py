"""In a real browser: an owner sets a budget with a hard limit, a reply uses it up, the next
message is refused with the reason and the alert is in the bell; then the usage charts are
read for one person."""

from __future__ import annotations

import re

import pytest

from project.providers.models import ProviderKind
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature
from project.teams.models import Role
from tests.factories import (
    add_member,
    log_in,
    make_assistant,
    make_connection,
    make_team,
    make_thread,
    make_user,
    send_with_enter,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


def test_set_a_budget_hit_it_see_the_block_and_the_alert_then_read_one_persons_usage(page, asgi_url,
                                                                                        sandbox_url) -> None:
    owner = make_user("olga")
    team = make_team("Costs", owner=owner)
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4.1", name="Writer"))
    colleague = add_member(team, make_user("pavel"), role=Role.MEMBER).user
    spend_record(SpendLine(team_id=team.pk, feature=Feature.BATCH, model="gpt-4.1-mini", source_kind="batch",
                           key="pavel-1", person_id=colleague.pk, person_name="pavel", input_tokens=10_000))

    log_in(page, asgi_url, "olga", expect_heading="Costs")
    page.click("nav.mainnav >> text=Usage")
    team_row = page.locator("tr[data-budget=team]")
    team_row.locator("input[name=amount_usd]").fill("0.01")
    team_row.locator("input[name=thresholds]").fill("50, 100")
    team_row.locator("input[name=hard_limit]").check()
    team_row.locator("button:has-text('Save')").click()
    page.wait_for_selector("text=Budget saved: $0.01 a month for the team.")
    assert "/ $0.01" in page.inner_text("[data-budget-bar]")

    # gpt-4.1 writes 2,000 words for about $0.016: more than the month's $0.01.
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    send_with_enter(page, "write 2000 words")
    page.wait_for_selector(".run-group[data-run-status=succeeded]", timeout=30_000)
    send_with_enter(page, "and once more")
    alert = page.wait_for_selector("#post-error .flash.error")
    assert re.search(r"This reply was not started: the team's budget of \$0\.01 a month is used up .*olga",
                     alert.inner_text())
    assert page.locator(".run-group").count() == 1

    page.reload()
    assert page.inner_text(".bell .badge") == "1"
    assert re.search(r"\(\d{3}%\)", page.inner_text("[data-budget-bar]"))
    page.click(".bell")
    assert "The team's budget reached 100%" in page.inner_text("main")

    page.click("nav.mainnav >> text=Usage")
    page.select_option("select[name=person]", label="pavel")
    page.click("form.spend-filters button:has-text('Show')")
    page.wait_for_url(re.compile(r"person=\d+"))
    assert "$0.004 in 1 calls" in page.inner_text("[data-usage-total]")
    assert page.locator("figure[data-chart=cost] svg[role=img] rect").count() == 1
    assert page.locator("figure[data-chart=cost] rect title").first.text_content().endswith("Batches: $0.0040")
    people = page.locator("[data-top=people] tbody tr")
    assert people.count() == 1 and "pavel" in people.inner_text()

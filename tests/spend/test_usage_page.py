"""The Usage page: charts, tables and filters read from the rollups; a person sees only
their own spend; the CSV is the filtered ledger; budgets are set by owners and admins."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Budget, Feature, Pricing
from project.teams.models import Role
from tests.conftest import client_for
from tests.factories import add_member, make_connection, make_user

pytestmark = pytest.mark.django_db


def record(team, key: str, *, person=None, model: str = "gpt-4.1-mini", feature: str = Feature.CHAT,
           tokens: int = 1_000_000, days_ago: int = 0, assistant: tuple[int, str] | None = None, **extra) -> None:
    spend_record(SpendLine(
        team_id=team.pk, feature=feature, model=model, source_kind="run", key=key, input_tokens=tokens,
        person_id=person.pk if person else None, person_name=person.get_username() if person else "",
        assistant_id=assistant[0] if assistant else None, assistant_name=assistant[1] if assistant else "",
        occurred_at=timezone.now() - timedelta(days=days_ago), **extra))


@pytest.fixture
def spent(team, owner, other_team):
    member = add_member(team, make_user("mia"), role=Role.MEMBER).user
    record(team, "o1", person=owner, assistant=(1, "Helpdesk"))  # $0.40
    record(team, "o2", person=owner, model="gpt-4.1", tokens=500_000, days_ago=3)  # $1.00
    record(team, "m1", person=member, assistant=(2, "Mia's bot"), tokens=250_000, days_ago=1)  # $0.10
    record(team, "b1", person=member, feature=Feature.BATCH, pricing=Pricing.BATCH, model="gpt-4o-mini",
           days_ago=2)  # $0.075
    record(team, "old", person=owner, days_ago=45)  # outside the default 30 days
    record(other_team, "x", tokens=50_000_000)  # another team's $20
    return member


def page_text(client, query: str = "") -> str:
    return " ".join(client.get(f"/usage/{query}").content.decode().split())


def test_the_page_draws_charts_and_tables_from_the_last_30_days(owner, spent) -> None:
    html = page_text(client_for(owner))
    assert "<strong>$1.575</strong> in 4 calls" in html
    assert html.count('<svg viewBox="0 0 720 240" role="img"') == 2
    assert 'aria-label="Cost per day by feature"' in html and 'aria-label="Tokens per day"' in html
    assert "· Chat: $1.10</title>" not in html  # one bar segment per day, not summed across days
    assert "<td>Helpdesk</td><td>$0.40</td>" in html and "<td>Mia&#x27;s bot</td><td>$0.10</td>" in html
    assert "<td>owner" in html or f"<td>{owner.get_username()}</td>" in html
    assert "<td>gpt-4.1</td><td>$1.00</td>" in html
    assert "$20" not in html


def test_filters_narrow_every_figure(owner, spent) -> None:
    client = client_for(owner)
    assert "<strong>$0.175</strong> in 2 calls" in page_text(client, f"?person={spent.pk}")
    assert "<strong>$1.00</strong> in 1 calls" in page_text(client, "?model=gpt-4.1")
    assert "<strong>$0.075</strong> in 1 calls" in page_text(client, "?feature=batch")
    assert "<strong>$0.10</strong> in 1 calls" in page_text(client, "?assistant=2")
    day = (timezone.now() - timedelta(days=45)).date()
    assert "<strong>$0.40</strong> in 1 calls" in page_text(client, f"?start={day}&end={day}")
    stacked = page_text(client, "?stack=model")
    assert 'aria-label="Cost per day by model"' in stacked and "gpt-4o-mini: $0.075" in stacked
    bad = page_text(client, "?start=2026-02-10&end=2026-01-01")
    assert "The start date is after the end date." in bad and "<strong>$1.575</strong>" in bad


def test_a_member_sees_only_their_own_spend(spent) -> None:
    html = page_text(client_for(spent), "?person=")
    assert "<strong>$0.175</strong> in 2 calls" in html and "Your own spend" in html
    assert 'name="person"' not in html and "Top people" not in html and "Budgets" not in html
    # Asking for someone else changes nothing.
    assert "<strong>$0.175</strong>" in page_text(client_for(spent), "?person=1")
    export = client_for(spent).get("/usage/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))  # type: ignore[attr-defined]
    assert {row[3] for row in rows[1:]} == {"mia"}


def test_the_csv_is_the_filtered_ledger_row_by_row(owner, spent) -> None:
    response = client_for(owner).get("/usage/export.csv?feature=chat")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[attr-defined]
    assert sorted(row["cost_usd"] for row in rows) == ["0.100000", "0.400000", "1.000000"]
    assert {row["figure"] for row in rows} == {"provider"}
    assert rows[0]["prices_per_1m"].startswith("cached_input=")


def test_a_formula_in_a_name_is_kept_as_text_in_the_csv(team, owner) -> None:
    record(team, "evil", person=owner, assistant=(9, "=HYPERLINK(\"http://x\")"))
    body = b"".join(client_for(owner).get("/usage/export.csv").streaming_content).decode()  # type: ignore[attr-defined]
    assert "'=HYPERLINK" in body


def test_owners_set_and_remove_budgets_and_the_top_bar_shows_the_month(team, owner, spent) -> None:
    client = client_for(owner)
    connection = make_connection(team, name="Main")
    response = client.post("/usage/budgets/", {"connection": "", "amount_usd": "10", "thresholds": "50, 80",
                                               "hard_limit": "on"})
    assert response.status_code == 302
    budget = Budget.objects.get(team=team, connection=None)
    assert (budget.amount_usd, budget.thresholds, budget.hard_limit) == (Decimal("10.00"), [50, 80], True)
    client.post("/usage/budgets/", {"connection": str(connection.pk), "amount_usd": "3", "thresholds": ""})
    assert Budget.objects.get(team=team, connection=connection).hard_limit is False
    html = page_text(client)
    month_total = "$1.575" if timezone.now().day > 3 else None
    if month_total:  # the spend of the last few days is all in this month
        assert f'data-budget-bar title="Spent this month against the team\'s budget">{month_total} / $10.00 (15%)' in html
    response = client.post("/usage/budgets/", {"amount_usd": "-1", "thresholds": "lots"}, follow=True)
    bad = " ".join(response.content.decode().split())
    assert "Ensure this value is greater than or equal to 0.01." in bad
    assert "Thresholds are whole percentages" in bad
    client.post(f"/usage/budgets/{budget.pk}/delete/")
    assert not Budget.objects.filter(pk=budget.pk).exists()


def test_members_cannot_set_budgets_nor_for_another_teams_connection(team, owner, other_team, spent) -> None:
    assert client_for(spent).post("/usage/budgets/", {"amount_usd": "100"}).status_code == 403
    foreign = make_connection(other_team)
    response = client_for(owner).post("/usage/budgets/", {"connection": str(foreign.pk), "amount_usd": "100"})
    assert response.status_code == 404 and not Budget.objects.exists()


def test_days_are_utc_days(team, owner) -> None:
    late = datetime.now(UTC).replace(hour=23, minute=59) - timedelta(days=1)
    spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="gpt-4.1-mini", source_kind="run", key="late",
                           input_tokens=1_000_000, occurred_at=late))
    day = late.date()
    assert "<strong>$0.40</strong>" in page_text(client_for(owner), f"?start={day}&end={day}")


def test_the_chosen_filters_stay_chosen_in_the_form(owner, spent) -> None:
    html = page_text(client_for(owner), f"?person={spent.pk}&assistant=2")
    assert f'<option value="{spent.pk}" selected>mia</option>' in html
    assert "<option value=\"2\" selected>Mia&#x27;s bot</option>" in html
    assert '<select name="connection"><option value="">All</option>' in html


def test_a_run_and_a_batch_show_what_the_ledger_holds_for_them(team, owner) -> None:
    from jobs_app.batches.models import BatchGroup
    from tests.factories import make_batch_group, make_message, make_run, make_thread

    thread = make_thread(team)
    asked = make_message(thread, "hello")
    run = make_run(thread, user_message=asked, status="succeeded", cost_usd=Decimal("9.99"))
    make_message(thread, "hi there", role="assistant", run=run)
    record(team, "r1", tokens=1_000_000, source_id=run.pk)  # $0.40: the run's row
    html = " ".join(client_for(owner).get(f"/threads/{thread.pk}/").content.decode().split())
    assert "· $0.40" in html and "$9.99" not in html
    group = make_batch_group(team)
    assert isinstance(group, BatchGroup)
    spend_record(SpendLine(team_id=team.pk, feature=Feature.BATCH, model="gpt-4o-mini", source_kind="batch",
                           source_id=group.pk, key="b:1", input_tokens=1_000_000, pricing=Pricing.BATCH))
    batch_page = client_for(owner).get(f"/batches/{group.pk}/").content.decode()
    assert '<dd data-cost>$0.075</dd>' in batch_page

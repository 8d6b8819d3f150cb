"""Shutdown marks: the picker hides models already shut down and marks those retiring within
90 days, the guide recommends only models that will still exist, an assistant pinned to a
retiring model shows a banner on its page and a mark in the list."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from assistants_app.model_catalog import model_choices, model_retirement, recommend
from project.providers.models import ProviderKind
from tests.factories import make_assistant, make_connection

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 29)


def test_the_picker_puts_current_models_first_and_hides_those_shut_down(team, sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    choices, error = model_choices(connection, today=TODAY)
    assert not error
    ids = [choice.id for choice in choices]
    # o4-mini and gpt-4.1-nano shut down on 2026-10-23: gone.
    assert "o4-mini" not in ids and "gpt-4.1-nano" not in ids and "gpt-5" in ids
    first_retiring = next(i for i, choice in enumerate(choices) if choice.retirement is not None)
    assert {"gpt-5.5", "gpt-5.4-mini"} <= set(ids[:first_retiring])
    assert all(choice.retirement is None for choice in choices[:first_retiring])
    gpt5 = choices[ids.index("gpt-5")]
    assert gpt5.retiring and gpt5.shutdown_date == "2026-12-11"
    assert gpt5.retirement is not None and gpt5.retirement.sentence == "gpt-5 shuts down on 2026-12-11 (in 12 days)."
    # The soonest shutdown comes last.
    assert ids.index("gpt-4o") < ids.index("gpt-5")
    assert choices[ids.index("gpt-5.5")].engine_note == "tools with reasoning need the Responses engine"


def test_a_shutdown_date_from_the_provider_overrides_the_file() -> None:
    assert model_retirement("gpt-5.5", today=TODAY) is None
    retirement = model_retirement("gpt-5.5", "2027-01-01", today=TODAY)
    assert retirement is not None and retirement.soon and retirement.days_left == 33
    later = model_retirement("gpt-4o", "2028-01-01", today=TODAY)
    assert later is not None and not later.soon


def test_the_guide_recommends_only_models_that_will_still_exist(team) -> None:
    choices, _ = model_choices(None, today=TODAY)
    for task in ("chat", "tools", "vision", "reasoning", "extraction"):
        result = recommend(choices=choices, task=task, latency="slow", budget_usd=Decimal(100_000),
                           input_tokens=1_000_000, output_tokens=100_000)
        assert result.choice is not None, task
        for choice in [result.choice, *(alternative for alternative, _ in result.alternatives)]:
            assert not choice.retiring, (task, choice.id)


def test_an_assistant_on_a_retiring_model_shows_a_banner_and_a_mark(owner_client, team) -> None:
    old = make_assistant(team, model="gpt-5", name="Old")
    current = make_assistant(team, model="gpt-5.5", name="Current")
    page = owner_client.get(f"/assistants/{old.pk}/").content.decode()
    assert "data-retiring-banner" in page and "gpt-5 " in page and "pick a current model" in page
    assert "data-retiring-banner" not in owner_client.get(f"/assistants/{current.pk}/").content.decode()
    listing = owner_client.get("/assistants/").content.decode()
    assert listing.count("data-retiring") == 1
    assert listing.index("data-retiring") > listing.index(">Old<")


def test_a_version_takes_the_efforts_its_model_accepts(owner_client, team) -> None:
    connection = make_connection(team)
    form = {"name": "Reasoner", "connection": connection.pk, "model": "gpt-5.5", "instructions": "", "tools": "",
            "response_schema": ""}
    refused = owner_client.post("/assistants/new/", {**form, "reasoning_effort": "minimal"})
    assert "gpt-5.5 takes the efforts none, low, medium, high, xhigh." in refused.content.decode()
    assert owner_client.post("/assistants/new/", {**form, "reasoning_effort": "xhigh"}).status_code == 302
    assert team.assistants.get().current_version.reasoning_effort == "xhigh"

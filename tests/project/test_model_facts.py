from __future__ import annotations

from decimal import Decimal

from project.providers.model_facts import base_model_id, cost_usd, model_facts


def test_snapshots_and_fine_tuned_models_take_their_base_models_facts() -> None:
    assert base_model_id("gpt-4.1-mini-2025-04-14") == "gpt-4.1-mini"
    assert base_model_id("ft:gpt-4o-mini-2024-07-18:acme:support:abc123") == "gpt-4o-mini"
    facts = model_facts("ft:gpt-4o-mini-2024-07-18:acme:support:abc123")
    assert facts.known and facts.context_window == 128000 and facts.supports("tools")


def test_a_fine_tuned_model_is_priced_at_fine_tuned_rates_and_trains_at_the_base_rate() -> None:
    base = model_facts("gpt-4.1-mini")
    tuned = model_facts("ft:gpt-4.1-mini-2025-04-14:acme::xyz")
    assert base.price("input") == Decimal("0.4") and tuned.price("input") == Decimal("0.8")
    assert tuned.price("output") == Decimal("3.2") and tuned.price("batch_output") == Decimal("1.6")
    assert tuned.price("training") == base.price("training") == Decimal("5.0")


def test_an_unknown_model_says_so_instead_of_guessing_a_price() -> None:
    facts = model_facts("llama-3.1-8b-instruct")
    assert not facts.known and facts.price("input") is None
    assert cost_usd(1000, facts.price("input")) is None


def test_cost_is_tokens_times_price_per_million() -> None:
    assert cost_usd(2_500_000, Decimal("0.4")) == Decimal("1.000000")

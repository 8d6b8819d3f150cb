from __future__ import annotations

import json
from decimal import Decimal

from project.providers.model_facts import FACTS_FILE, base_model_id, cost_usd, known_model_ids, model_facts
from sandbox.models_data import BASE_MODELS


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


def test_the_catalog_has_todays_models_with_their_figures_and_engines() -> None:
    nano = model_facts("gpt-5.4-nano-2026-03-17")
    assert nano.known and nano.base_id == "gpt-5.4-nano"
    assert (nano.context_window, nano.max_output_tokens) == (400_000, 128_000)
    assert (nano.price("input"), nano.price("cached_input"), nano.price("output")) == (
        Decimal("0.2"), Decimal("0.02"), Decimal("1.25"))
    assert nano.fine_tuning_methods == () and nano.shutdown_date is None
    for current in ("gpt-5.5", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.6-terra", "gpt-5.6-luna"):
        facts = model_facts(current)
        assert facts.known and facts.supports("tools") and facts.supports("reasoning")
        assert {"chat_completions", "responses"} <= facts.endpoints
        # Tools with reasoning on these models need the Responses engine.
        assert facts.chat_refuses_tools_with_reasoning_effort and "none" in facts.reasoning_efforts
    assert model_facts("gpt-5.6-luna").price("batch_input") is None  # not found, so not invented


def test_retiring_models_keep_their_shutdown_dates_and_accept_tools_with_reasoning_on_chat() -> None:
    expected = {"gpt-5": "2026-12-11", "gpt-5-mini": "2026-12-11", "gpt-5-nano": "2026-12-11", "o3": "2026-12-11",
                "gpt-4o": "2027-01-14", "gpt-4o-mini": "2027-01-14", "gpt-4.1": "2027-01-14",
                "gpt-4.1-mini": "2027-01-14", "o4-mini": "2026-10-23", "gpt-4.1-nano": "2026-10-23"}
    assert {m: model_facts(m).shutdown_date for m in expected} == expected
    assert model_facts("ft:gpt-4o-mini-2024-07-18:acme:support:abc123").shutdown_date == "2027-01-14"
    assert not any(model_facts(m).chat_refuses_tools_with_reasoning_effort for m in expected)
    assert "fine_tuning" in model_facts("gpt-4.1-mini").endpoints


def test_the_file_says_when_and_where_each_figure_was_checked() -> None:
    data = json.loads(FACTS_FILE.read_text())
    assert data["_checked"] == "2026-11-29" and data["_source"]["checked_on"] == "2026-11-29"
    for model_id, raw in data["models"].items():
        assert raw.get("source"), f"{model_id} has no source"
    assert "developers.openai.com/api/docs/models/gpt-5.4-nano" in data["models"]["gpt-5.4-nano"]["source"]["prices"]


def test_the_sandbox_serves_the_catalogs_chat_models_with_the_same_dates_and_rules() -> None:
    served = {m.id: m for m in BASE_MODELS if m.id == base_model_id(m.id)}
    for model_id in known_model_ids():
        facts = model_facts(model_id)
        spec = served[model_id]
        assert spec.shutdown_date == facts.shutdown_date, model_id
        assert (spec.chat_tools_effort_refusal is not None) == facts.chat_refuses_tools_with_reasoning_effort, model_id
        assert (spec.context_window, spec.max_output_tokens) == (facts.context_window, facts.max_output_tokens), model_id

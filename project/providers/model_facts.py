"""What the dashboard knows about models: context window, output limit, prices,
capabilities, fine-tuning support, endpoints, shutdown date, and whether Chat Completions
refuses its function tools with reasoning. Read from model_facts.json in the repo (which
also says where each figure came from and when it was checked).

A fine-tuned model ("ft:gpt-4.1-mini-2025-04-14:org:suffix:id") and a dated
snapshot ("gpt-4.1-mini-2025-04-14") take the facts of their base model (a
fine-tuned one with the base's fine-tuned prices); a model
the file does not know gets conservative defaults and `known=False`, so callers
can say "price unknown" instead of guessing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

FACTS_FILE = Path(__file__).resolve().parent / "model_facts.json"
PER_MILLION = Decimal(1_000_000)
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ModelFacts:
    model_id: str
    base_id: str
    known: bool
    family: str = ""
    context_window: int = 8192
    max_output_tokens: int = 4096
    encoding: str = "o200k_base"
    prices: dict[str, Decimal] = field(default_factory=dict)
    capabilities: frozenset[str] = frozenset()
    fine_tuning_methods: tuple[str, ...] = ()
    training_context: int = 0
    latency: str = "medium"
    tier: str = "balanced"
    # Which APIs serve it: chat_completions, responses, batch, embeddings, fine_tuning.
    endpoints: frozenset[str] = frozenset()
    # The date in the file; GET /v1/models' shutdown_date overrides it (None: none announced).
    shutdown_date: str | None = None
    # /v1/chat/completions refuses function tools together with a reasoning effort (gpt-5.4 and later):
    # tools with reasoning on this model need the Responses engine.
    chat_refuses_tools_with_reasoning_effort: bool = False
    reasoning_efforts: tuple[str, ...] = ()
    default_reasoning_effort: str | None = None

    def price(self, kind: str) -> Decimal | None:
        """USD per 1M tokens for kind: input, cached_input, output, batch_input, batch_output, training."""
        return self.prices.get(kind)

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


@cache
def _raw_facts() -> dict[str, dict[str, Any]]:
    """The models of the file; keys starting with "_" (about, checked date, sources) are notes."""
    data = json.loads(FACTS_FILE.read_text())
    return {k: v for k, v in data["models"].items() if not k.startswith("_")}


def base_model_id(model_id: str) -> str:
    """ft:gpt-4o-mini-2024-07-18:org:suffix:id -> gpt-4o-mini; gpt-4.1-2025-04-14 -> gpt-4.1."""
    base = model_id.split(":")[1] if model_id.startswith("ft:") and model_id.count(":") >= 1 else model_id
    return _SNAPSHOT_SUFFIX.sub("", base)


@cache
def model_facts(model_id: str) -> ModelFacts:
    base = base_model_id(model_id)
    raw = _raw_facts().get(base)
    if raw is None:
        return ModelFacts(model_id=model_id, base_id=base, known=False)
    prices = {kind: Decimal(str(value)) for kind, value in dict(raw.get("prices", {})).items()}
    if model_id.startswith("ft:"):
        # A fine-tuned model is billed at its own (higher) rates; training stays the base's.
        prices |= {kind: Decimal(str(value)) for kind, value in dict(raw.get("fine_tuned_prices", {})).items()}
    return ModelFacts(
        model_id=model_id,
        base_id=base,
        known=True,
        family=str(raw.get("family", "")),
        context_window=int(raw["context_window"]),
        max_output_tokens=int(raw["max_output_tokens"]),
        encoding=str(raw.get("encoding", "o200k_base")),
        prices=prices,
        capabilities=frozenset(raw.get("capabilities", [])),
        fine_tuning_methods=tuple(raw.get("fine_tuning", [])),
        training_context=int(raw.get("training_context", 0)),
        latency=str(raw.get("latency", "medium")),
        tier=str(raw.get("tier", "balanced")),
        endpoints=frozenset(raw.get("endpoints", [])),
        shutdown_date=raw.get("shutdown_date") or None,
        chat_refuses_tools_with_reasoning_effort=bool(raw.get("chat_refuses_tools_with_reasoning_effort", False)),
        reasoning_efforts=tuple(raw.get("reasoning_efforts", [])),
        default_reasoning_effort=raw.get("default_reasoning_effort") or None,
    )


def known_model_ids() -> list[str]:
    return sorted(_raw_facts())


def cost_usd(tokens: int, price_per_million: Decimal | None) -> Decimal | None:
    if price_per_million is None:
        return None
    return (Decimal(tokens) * price_per_million / PER_MILLION).quantize(Decimal("0.000001"))

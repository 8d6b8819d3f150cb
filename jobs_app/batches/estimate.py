"""Token estimates and cost at batch prices, counted with the model's own encoding.

Input tokens are counted; output is unknown until the batch runs, so the estimate
is for input, with output priced only when the body caps it (max_tokens)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import tiktoken

from jobs_app.batches.models import BatchEndpoint
from project.providers.model_facts import PER_MILLION, cost_usd, model_facts
from project.tokens import REPLY_PRIMING, count_message, encoding_for_model


def body_input_tokens(body: dict[str, Any], endpoint: str, encoding: tiktoken.Encoding) -> int:
    if endpoint == BatchEndpoint.CHAT:
        tokens = sum(count_message(m, encoding) for m in body.get("messages", []) if isinstance(m, dict))
        tools = body.get("tools")
        if tools:
            tokens += len(encoding.encode(json.dumps(tools, separators=(",", ":")), disallowed_special=()))
        return tokens + REPLY_PRIMING
    text = body.get("input")
    if not isinstance(text, str):
        text = json.dumps(text)
    tokens = len(encoding.encode(text, disallowed_special=()))
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        tokens += len(encoding.encode(instructions, disallowed_special=()))
    return tokens


def body_output_cap(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


@dataclass(frozen=True)
class Estimate:
    input_tokens: int
    input_cost_usd: Decimal | None
    price_known: bool


def estimate_cost(model_id: str, input_tokens: int) -> Estimate:
    facts = model_facts(model_id)
    price = facts.price("batch_input")
    return Estimate(input_tokens, cost_usd(input_tokens, price), facts.known and price is not None)


def actual_cost(model_id: str, input_tokens: int, output_tokens: int) -> Decimal | None:
    """Usage at batch prices, rounded once (rounding each side apart would drift on small batches)."""
    facts = model_facts(model_id)
    input_price, output_price = facts.price("batch_input"), facts.price("batch_output")
    if input_price is None:
        return None
    total = Decimal(input_tokens) * input_price + Decimal(output_tokens) * (output_price or Decimal(0))
    return (total / PER_MILLION).quantize(Decimal("0.000001"))


__all__ = ["Estimate", "actual_cost", "body_input_tokens", "body_output_cap", "encoding_for_model", "estimate_cost"]

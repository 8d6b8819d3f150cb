"""The request log behind GET /v1/organization/costs and /v1/organization/usage/completions.

One line per billed model call (chat completion, response or embeddings, live or a batch line), appended to usage.jsonl under
the data directory and kept in memory. Each line names its owner by key fingerprint
(sandbox/owners.py), so a key's usage and costs are its own requests only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

from .owners import fingerprint

PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens, as OpenAI's pricing page lists them (the dashboard's
    project/providers/model_facts.json holds the same figures; a test keeps them equal)."""

    input: float
    cached_input: float | None
    output: float
    batch_input: float | None = None  # the Batch API's rates; None where not known
    batch_output: float | None = None
    training: float | None = None  # per 1M tokens trained on, for models that can be fine-tuned


PRICES: dict[str, Price] = {
    "gpt-5.5": Price(5.0, 0.5, 30.0, 2.5, 15.0),
    "gpt-5.4": Price(2.5, 0.25, 15.0, 1.25, 7.5),
    "gpt-5.4-mini": Price(0.75, 0.075, 4.5, 0.375, 2.25),
    "gpt-5.4-nano": Price(0.2, 0.02, 1.25, 0.1, 0.625),
    "gpt-5.6-terra": Price(2.0, 0.2, 12.0),
    "gpt-5.6-luna": Price(0.2, 0.02, 1.2),
    "gpt-5": Price(1.25, 0.125, 10.0, 0.625, 5.0),
    "gpt-5-mini": Price(0.25, 0.025, 2.0, 0.125, 1.0),
    "gpt-5-nano": Price(0.05, 0.005, 0.4, 0.025, 0.2),
    "gpt-4.1": Price(2.0, 0.5, 8.0, 1.0, 4.0, training=25.0),
    "gpt-4.1-mini": Price(0.4, 0.1, 1.6, 0.2, 0.8, training=5.0),
    "gpt-4.1-nano": Price(0.1, 0.025, 0.4, 0.05, 0.2, training=1.5),
    "gpt-4o": Price(2.5, 1.25, 10.0, 1.25, 5.0, training=25.0),
    "gpt-4o-mini": Price(0.15, 0.075, 0.6, 0.075, 0.3, training=3.0),
    "o3": Price(2.0, 0.5, 8.0, 1.0, 4.0),
    "o4-mini": Price(1.1, 0.275, 4.4, 0.55, 2.2),
    "text-embedding-3-small": Price(0.02, None, 0.0, 0.01, 0.0),
    "text-embedding-3-large": Price(0.13, None, 0.0, 0.065, 0.0),
}


def price_of(model: str) -> Price | None:
    """A model's price; a fine-tuned model ("ft:gpt-4o-mini:...") is priced here as its base."""
    if model.startswith("ft:"):
        model = model.split(":")[1]
    return PRICES.get(model)


@dataclass(frozen=True)
class UsageLine:
    owner: str
    at: float
    model: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    kind: str = "completions"  # or "embeddings", "fine_tuning": in the costs, not in /usage/completions
    batch: bool = False  # a batch line, at the Batch API's rates
    trained_tokens: int = 0  # a fine-tuning job's training, billed when it ends

    def costs(self) -> dict[str, Decimal]:
        """USD per line item ("input", "cached input", "output", "batch input", "batch output");
        empty for an unpriced model."""
        price = price_of(self.model)
        if price is None:
            return {}
        if self.kind == "fine_tuning":
            if price.training is None:
                return {}
            return {"fine-tuning training": Decimal(str(price.training)) * self.trained_tokens / PER_MILLION}
        if self.batch:
            if price.batch_input is None:
                return {}
            return {"batch input": Decimal(str(price.batch_input)) * self.input_tokens / PER_MILLION,
                    "batch output": Decimal(str(price.batch_output or 0)) * self.output_tokens / PER_MILLION}
        cached_price = price.cached_input if price.cached_input is not None else price.input
        return {
            "input": Decimal(str(price.input)) * (self.input_tokens - self.cached_tokens) / PER_MILLION,
            "cached input": Decimal(str(cached_price)) * self.cached_tokens / PER_MILLION,
            "output": Decimal(str(price.output)) * self.output_tokens / PER_MILLION,
        }


class UsageLog:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "usage.jsonl"
        self._lock = threading.Lock()
        self.lines: list[UsageLine] = []
        if self.path.exists():
            for raw in self.path.read_text().splitlines():
                try:
                    self.lines.append(UsageLine(**json.loads(raw)))
                except (ValueError, TypeError):
                    continue  # a torn last line after a crash must not stop the server

    def record(self, *, api_key: str, at: float, model: str, input_tokens: int, cached_tokens: int = 0,
               output_tokens: int = 0, kind: str = "completions", batch: bool = False, trained_tokens: int = 0) -> None:
        line = UsageLine(fingerprint(api_key), at, model, input_tokens, cached_tokens, output_tokens, kind, batch,
                         trained_tokens)
        with self._lock:
            self.lines.append(line)
            with self.path.open("a") as fh:
                fh.write(json.dumps(asdict(line)) + "\n")

    def of(self, api_key: str, start: float, end: float, kind: str | None = None) -> list[UsageLine]:
        mine = fingerprint(api_key)
        return [line for line in self.lines
                if line.owner == mine and start <= line.at < end and kind in (None, line.kind)]

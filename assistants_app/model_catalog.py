"""The model picker's list (the connection's GET /v1/models joined with the model
facts in the repo) and the "which model?" guide, which reasons over the same facts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from project.providers.client import ProviderError
from project.providers.connection_facts import connection_model_list
from project.providers.model_facts import ModelFacts, known_model_ids, model_facts
from project.providers.models import ProviderConnection
from project.providers.remote_models import RemoteModel, connection_models

CAPABILITIES = ("vision", "tools", "structured_outputs", "reasoning")


@dataclass(frozen=True)
class ModelChoice:
    id: str
    facts: ModelFacts  # as the connection serves it (project.providers.connection_facts)
    shutdown_date: str | None
    # False for a model nobody gave a window or a price for: shown as unknown, not as a guess.
    context_known: bool = True
    prices_known: bool = True

    @property
    def capabilities(self) -> list[str]:
        return [c.replace("_", " ") for c in CAPABILITIES if self.facts.supports(c)]


def model_choices(connection: ProviderConnection | None) -> tuple[list[ModelChoice], str]:
    """Chat models of the connection with their facts, and an error to show when the
    list could not be fetched (then the models the repo knows are offered)."""
    error = ""
    rows: list[RemoteModel] = []
    if connection is not None:
        try:
            rows = connection_models(connection)
        except ProviderError as failure:
            error = failure.message
    if not rows:
        rows = [RemoteModel(id=model_id, shutdown_date=None) for model_id in known_model_ids()]
    rows = [row for row in rows if not any(word in row.id for word in ("embedding", "whisper", "tts", "dall-e"))]
    if connection is not None and not error:
        choices = [ModelChoice(id=m.model_id, facts=m.facts, shutdown_date=row.shutdown_date,
                               context_known=m.context_known, prices_known=m.prices_known)
                   for m, row in zip(connection_model_list(connection, rows), rows, strict=True)]
    else:
        choices = [ModelChoice(id=row.id, facts=model_facts(row.id), shutdown_date=row.shutdown_date,
                               context_known=model_facts(row.id).known, prices_known=model_facts(row.id).known)
                   for row in rows]
    choices.sort(key=lambda c: (not c.facts.known, c.id))
    return choices, error


TASKS = {
    "chat": ("General chat and writing", set()),
    "tools": ("Calling tools / agents", {"tools"}),
    "extraction": ("Extracting structured data", {"structured_outputs"}),
    "vision": ("Reading images", {"vision"}),
    "reasoning": ("Hard reasoning, maths, code", {"reasoning"}),
}
LATENCY_RANK = {"fast": 0, "medium": 1, "slow": 2}
TIER_RANK = {"budget": 0, "balanced": 1, "frontier": 2}


@dataclass(frozen=True)
class Recommendation:
    choice: ModelChoice | None
    monthly_cost: Decimal | None
    reason: str
    alternatives: list[tuple[ModelChoice, Decimal | None]]


def monthly_cost(facts: ModelFacts, input_tokens: int, output_tokens: int) -> Decimal | None:
    prices = facts.price("input"), facts.price("output")
    if prices[0] is None or prices[1] is None:
        return None
    return (Decimal(input_tokens) * prices[0] + Decimal(output_tokens) * prices[1]) / Decimal(1_000_000)


def recommend(*, choices: list[ModelChoice], task: str, latency: str, budget_usd: Decimal, input_tokens: int,
              output_tokens: int) -> Recommendation:
    """The most capable model that has what the task needs, answers within the
    latency asked for, and whose monthly cost fits the budget."""
    needed = TASKS.get(task, TASKS["chat"])[1]
    max_latency = LATENCY_RANK.get(latency, 2)
    fits: list[tuple[ModelChoice, Decimal | None]] = []
    for choice in choices:
        facts = choice.facts
        if not facts.known or not needed <= facts.capabilities or LATENCY_RANK.get(facts.latency, 1) > max_latency:
            continue
        if choice.id != facts.base_id:
            continue  # dated snapshots repeat their base model
        cost = monthly_cost(facts, input_tokens, output_tokens)
        if cost is not None and cost <= budget_usd:
            fits.append((choice, cost))
    if not fits:
        return Recommendation(None, None, "No model has what this task needs within that latency and budget. "
                              "Raise the budget or accept a slower model.", [])
    fits.sort(key=lambda pair: (TIER_RANK.get(pair[0].facts.tier, 1), -(pair[1] or 0)), reverse=True)
    best, cost = fits[0]
    reason = (f"{best.id} is the most capable {best.facts.latency}-latency model with "
              f"{', '.join(sorted(needed)) or 'what chat needs'} whose estimated cost (${cost:.2f}/month) fits ${budget_usd}.")
    return Recommendation(best, cost, reason, fits[1:4])

"""The model picker's list (the connection's GET /v1/models joined with the model
facts in the repo) and the "which model?" guide, which reasons over the same facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from project.providers.client import ProviderError
from project.providers.connection_facts import ConnectionModel, connection_model_list
from project.providers.model_facts import ModelFacts, known_model_ids, model_facts
from project.providers.models import ProviderConnection
from project.providers.remote_models import RemoteModel, connection_models

CAPABILITIES = ("vision", "tools", "structured_outputs", "reasoning")
# A model whose shutdown is this close is marked in the picker, and an assistant pinned to it gets a banner.
RETIRING_WITHIN = timedelta(days=90)


@dataclass(frozen=True)
class Retirement:
    """A model's announced shutdown, as of `today`."""

    model: str
    shutdown: date
    today: date

    @property
    def days_left(self) -> int:
        return (self.shutdown - self.today).days

    @property
    def shut_down(self) -> bool:
        return self.days_left <= 0

    @property
    def soon(self) -> bool:
        """Shut down already, or within RETIRING_WITHIN."""
        return self.shutdown - self.today <= RETIRING_WITHIN

    @property
    def sentence(self) -> str:
        if self.shut_down:
            return f"{self.model} was shut down on {self.shutdown.isoformat()}."
        days = f"{self.days_left} day{'s' if self.days_left != 1 else ''}"
        return f"{self.model} shuts down on {self.shutdown.isoformat()} (in {days})."


def model_retirement(model_id: str, shutdown_date: str | None = None, *, today: date | None = None) -> Retirement | None:
    """The model's shutdown: `shutdown_date` (the provider's GET /v1/models says it) or the
    model facts' date; None when none is announced (or the date cannot be read)."""
    raw = shutdown_date or model_facts(model_id).shutdown_date
    if not raw:
        return None
    try:
        shutdown = date.fromisoformat(str(raw)[:10])
    except ValueError:
        return None
    return Retirement(model_id, shutdown, today or timezone.localdate())


@dataclass(frozen=True)
class ModelChoice:
    id: str
    facts: ModelFacts  # as the connection serves it (project.providers.connection_facts)
    shutdown_date: str | None
    # False for a model nobody gave a window or a price for: shown as unknown, not as a guess.
    context_known: bool = True
    prices_known: bool = True
    retirement: Retirement | None = None

    @property
    def capabilities(self) -> list[str]:
        return [c.replace("_", " ") for c in CAPABILITIES if self.facts.supports(c)]

    @property
    def retiring(self) -> bool:
        return self.retirement is not None and self.retirement.soon

    @property
    def engine_note(self) -> str:
        """Which engine the model needs, when it matters: tools with reasoning."""
        if self.facts.chat_refuses_tools_with_reasoning_effort:
            return "tools with reasoning need the Responses engine"
        return ""


def model_choices(connection: ProviderConnection | None, *, today: date | None = None) -> tuple[list[ModelChoice], str]:
    """Chat models of the connection with their facts, and an error to show when the
    list could not be fetched (then the models the repo knows are offered). Models
    already shut down are left out; current models come first, then those with a shutdown
    date (soonest last), then those the facts do not know."""
    error = ""
    rows: list[RemoteModel] = []
    if connection is not None:
        try:
            rows = connection_models(connection)
        except ProviderError as failure:
            error = failure.message
    if not rows:
        rows = [RemoteModel(id=model_id, shutdown_date=None) for model_id in known_model_ids()]
    today = today or timezone.localdate()
    rows = [row for row in rows if not any(word in row.id for word in ("embedding", "whisper", "tts", "dall-e"))]
    # The connection's own facts (an admin may set a local model's window and prices).
    served: list[ConnectionModel | None] = list(connection_model_list(connection, rows)) \
        if connection is not None and not error else [None] * len(rows)
    choices = []
    for row, model in zip(rows, served, strict=True):
        retirement = model_retirement(row.id, row.shutdown_date, today=today)
        if retirement is not None and retirement.shut_down:
            continue
        facts = model.facts if model else model_facts(row.id)
        choices.append(ModelChoice(id=row.id, facts=facts,
                                   shutdown_date=retirement.shutdown.isoformat() if retirement else None,
                                   context_known=model.context_known if model else facts.known,
                                   prices_known=model.prices_known if model else facts.known,
                                   retirement=retirement))
    choices.sort(key=lambda c: (not c.facts.known, c.retirement is not None,
                                -(c.retirement.days_left if c.retirement else 0), c.id))
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
        if choice.retiring:
            continue  # only models that will still be there
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

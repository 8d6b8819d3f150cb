"""Which base models a connection can fine-tune, and until when.

The model facts say which models support fine-tuning (and how); the
connection's GET /v1/models says which of them it serves and their
shutdown_date (project.providers.remote_models, cached briefly per connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from project.providers.model_facts import model_facts
from project.providers.models import ProviderConnection, ProviderKind
from project.providers.remote_models import connection_models

# OpenAI closes self-serve fine-tuning to new jobs on this day; other providers keep it.
OPENAI_FINE_TUNING_DEADLINE = date(2027, 1, 6)


@dataclass(frozen=True)
class BaseModelChoice:
    model_id: str
    methods: tuple[str, ...]
    shutdown_date: str | None
    training_price: str | None


def shows_openai_deadline(connection: ProviderConnection) -> bool:
    # The sandbox plays OpenAI, so it shows OpenAI's dates too.
    return connection.kind in (ProviderKind.OPENAI, ProviderKind.SANDBOX)


def finetunable_models(connection: ProviderConnection) -> list[BaseModelChoice]:
    """Base models that both the model facts and the connection know. Raises ProviderError."""
    out = []
    for remote in connection_models(connection):
        model_id, shutdown = remote.id, remote.shutdown_date
        if model_id.startswith("ft:"):
            continue
        facts = model_facts(model_id)
        if not facts.known or not facts.fine_tuning_methods:
            continue
        price = facts.price("training")
        out.append(BaseModelChoice(model_id=model_id, methods=facts.fine_tuning_methods, shutdown_date=shutdown,
                                   training_price=str(price) if price is not None else None))
    return sorted(out, key=lambda choice: choice.model_id)


def model_shutdown_date(connection: ProviderConnection, model_id: str) -> str | None:
    for remote in connection_models(connection):
        if remote.id == model_id:
            return remote.shutdown_date
    return None

"""Which base models a connection can fine-tune, and until when.

The model facts say which models support fine-tuning (and how); the
connection's GET /v1/models says which of them it serves and their
shutdown_date. The answer is cached briefly per connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.core.cache import cache

from project.providers.client import provider_call
from project.providers.model_facts import model_facts
from project.providers.models import ProviderConnection, ProviderKind

# OpenAI closes self-serve fine-tuning to new jobs on this day; other providers keep it.
OPENAI_FINE_TUNING_DEADLINE = date(2027, 1, 6)
CACHE_SECONDS = 300


@dataclass(frozen=True)
class BaseModelChoice:
    model_id: str
    methods: tuple[str, ...]
    shutdown_date: str | None
    training_price: str | None


def shows_openai_deadline(connection: ProviderConnection) -> bool:
    # The sandbox plays OpenAI, so it shows OpenAI's dates too.
    return connection.kind in (ProviderKind.OPENAI, ProviderKind.SANDBOX)


def _remote_models(connection: ProviderConnection) -> list[tuple[str, str | None]]:
    key = f"finetune:models:{connection.pk}"
    cached = cache.get(key)
    if cached is not None:
        return [(str(m), s) for m, s in cached]
    page = provider_call(connection, lambda client: client.models.list())
    models = [(m.id, getattr(m, "shutdown_date", None)) for m in page.data]
    cache.set(key, models, CACHE_SECONDS)
    return models


def finetunable_models(connection: ProviderConnection) -> list[BaseModelChoice]:
    """Base models that both the model facts and the connection know. Raises ProviderError."""
    out = []
    for model_id, shutdown in _remote_models(connection):
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
    for remote_id, shutdown in _remote_models(connection):
        if remote_id == model_id:
            return shutdown
    return None

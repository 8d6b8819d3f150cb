"""The models a connection serves (GET /v1/models), cached briefly per connection.

One list serves the model picker, the fine-tuning form (which base models, their
shutdown_date) and "Test connection", so a page never asks the provider twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache

from project.providers.client import ClientOptions, provider_call
from project.providers.models import ProviderConnection

CACHE_SECONDS = 5 * 60


@dataclass(frozen=True)
class RemoteModel:
    id: str
    shutdown_date: str | None


def _cache_key(connection: ProviderConnection) -> str:
    return f"provider:models:{connection.pk}"


def connection_models(connection: ProviderConnection, *, fresh: bool = False,
                      options: ClientOptions | None = None) -> list[RemoteModel]:
    """The connection's models, from the cache unless `fresh`. Raises ProviderError."""
    if not fresh:
        cached = cache.get(_cache_key(connection))
        if cached is not None:
            return [RemoteModel(id=model_id, shutdown_date=shutdown) for model_id, shutdown in cached]
    page = provider_call(connection, lambda client: client.models.list(), options)
    # shutdown_date is newer than some SDK model types; it then arrives as an extra field.
    models = [RemoteModel(id=m.id, shutdown_date=getattr(m, "shutdown_date", None) or (m.model_extra or {}).get("shutdown_date"))
              for m in page]
    cache.set(_cache_key(connection), [(m.id, m.shutdown_date) for m in models], CACHE_SECONDS)
    return models


def connection_has_model(connection: ProviderConnection, model_id: str) -> bool:
    """Whether the connection lists model_id. A miss in the cached list asks the
    provider again, since a model made minutes ago is not in a list cached before it."""
    if any(model.id == model_id for model in connection_models(connection)):
        return True
    return any(model.id == model_id for model in connection_models(connection, fresh=True))


def connection_models_forget(connection: ProviderConnection) -> None:
    cache.delete(_cache_key(connection))

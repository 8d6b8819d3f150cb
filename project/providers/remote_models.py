"""The models a connection serves (GET /v1/models), cached briefly per connection.

One list serves the model picker, the fine-tuning form (which base models, their
shutdown_date) and "Test connection", so a page never asks the provider twice.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

from django.core.cache import cache

from project.providers.client import ClientOptions, provider_call
from project.providers.models import ProviderConnection

CACHE_SECONDS = 5 * 60


@dataclass(frozen=True)
class RemoteModel:
    id: str
    shutdown_date: str | None
    # What some servers put in the list: vLLM's max_model_len is the window it serves;
    # llama.cpp's meta.n_ctx_train is the model's training context (it may serve less).
    server_context: int | None = None
    trained_context: int | None = None


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _remote_model(entry: object) -> RemoteModel:
    extra = getattr(entry, "model_extra", None) or {}
    meta: dict[str, object] = extra["meta"] if isinstance(extra.get("meta"), dict) else {}
    return RemoteModel(
        id=str(getattr(entry, "id", "")),
        # shutdown_date is newer than some SDK model types; it then arrives as an extra field.
        shutdown_date=getattr(entry, "shutdown_date", None) or extra.get("shutdown_date"),
        server_context=_positive_int(extra.get("max_model_len")) or _positive_int(meta.get("n_ctx")),
        trained_context=_positive_int(meta.get("n_ctx_train")),
    )


def _cache_key(connection: ProviderConnection) -> str:
    return f"provider:models:v2:{connection.pk}"


def connection_models(connection: ProviderConnection, *, fresh: bool = False,
                      options: ClientOptions | None = None) -> list[RemoteModel]:
    """The connection's models, from the cache unless `fresh`. Raises ProviderError."""
    if not fresh:
        cached = cache.get(_cache_key(connection))
        if cached is not None:
            return [RemoteModel(*fields) for fields in cached]
    page = provider_call(connection, lambda client: client.models.list(), options)
    models = [_remote_model(m) for m in page]
    cache.set(_cache_key(connection), [astuple(m) for m in models], CACHE_SECONDS)
    return models


def connection_has_model(connection: ProviderConnection, model_id: str) -> bool:
    """Whether the connection lists model_id. A miss in the cached list asks the
    provider again, since a model made minutes ago is not in a list cached before it."""
    if any(model.id == model_id for model in connection_models(connection)):
        return True
    return any(model.id == model_id for model in connection_models(connection, fresh=True))


def connection_models_forget(connection: ProviderConnection) -> None:
    cache.delete(_cache_key(connection))

"""A model's facts as one connection serves it: the catalog's (model_facts.json), what the
server says in its model list (vLLM's max_model_len), and what an admin set for this
connection (a local server's context window, its price or "free / self-hosted", an
encoding). Trimming, token estimates and cost use these, so a model the catalog does not
know is sized and priced as its connection says, and is "unknown" where nobody said.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User

from project.providers.client import ProviderError
from project.providers.model_facts import ModelFacts, model_facts
from project.providers.models import ConnectionModelFacts, ProviderConnection
from project.providers.remote_models import RemoteModel, connection_models
from project.teams.services import audit_record

ENCODINGS = ("o200k_base", "cl100k_base", "p50k_base", "r50k_base")


@dataclass(frozen=True)
class ConnectionModel:
    model_id: str
    facts: ModelFacts  # what trimming, estimates and cost use
    context_source: str  # "set for this connection", "the server's model list", "catalog", or "" (assumed)
    prices_source: str  # "set for this connection", "free / self-hosted", "catalog", or "" (unknown)
    remote: RemoteModel | None
    saved: ConnectionModelFacts | None

    @property
    def context_known(self) -> bool:
        return bool(self.context_source)

    @property
    def prices_known(self) -> bool:
        return bool(self.prices_source)


def _remote(connection: ProviderConnection, model_id: str) -> RemoteModel | None:
    """The connection's list entry for the model, from the cached list (None when the list fails)."""
    try:
        return next((m for m in connection_models(connection) if m.id == model_id), None)
    except ProviderError:
        return None


def connection_model(connection: ProviderConnection | None, model_id: str, *,
                     remote: RemoteModel | None = None) -> ConnectionModel:
    """One model's facts on a connection (its list entry read from the cached list when needed)."""
    if connection is None:
        return _merged(model_id, None, None)
    saved = ConnectionModelFacts.objects.filter(connection=connection, model_id=model_id).first()
    return _with_saved(connection, model_id, saved, remote)


def _with_saved(connection: ProviderConnection, model_id: str, saved: ConnectionModelFacts | None,
                remote: RemoteModel | None) -> ConnectionModel:
    if remote is None and not model_facts(model_id).known and not (saved and saved.context_window):
        remote = _remote(connection, model_id)
    return _merged(model_id, saved, remote)


def connection_model_list(connection: ProviderConnection, remote: list[RemoteModel]) -> list[ConnectionModel]:
    """The facts of every model in a connection's list, in one query."""
    saved = {row.model_id: row for row in ConnectionModelFacts.objects.filter(
        connection=connection, model_id__in=[m.id for m in remote])}
    return [_merged(m.id, saved.get(m.id), m) for m in remote]


def _merged(model_id: str, saved: ConnectionModelFacts | None, remote: RemoteModel | None) -> ConnectionModel:
    base = model_facts(model_id)
    changes: dict[str, object] = {}
    context_source = "catalog" if base.known else ""
    if saved and saved.context_window:
        changes["context_window"], context_source = saved.context_window, "set for this connection"
    elif not base.known and remote and remote.server_context:
        changes["context_window"], context_source = remote.server_context, "the server's model list"
    if saved and saved.max_output_tokens:
        changes["max_output_tokens"] = saved.max_output_tokens
    if saved and saved.encoding:
        changes["encoding"] = saved.encoding
    prices_source = "catalog" if base.known and base.price("input") is not None else ""
    if saved and saved.free:
        changes["prices"] = {kind: Decimal(0) for kind in ("input", "cached_input", "output")}
        prices_source = "free / self-hosted"
    elif saved and saved.input_price is not None and saved.output_price is not None:
        prices = {"input": saved.input_price, "output": saved.output_price}
        if saved.cached_input_price is not None:
            prices["cached_input"] = saved.cached_input_price
        changes["prices"], prices_source = prices, "set for this connection"
    facts = dataclasses.replace(base, **changes) if changes else base  # type: ignore[arg-type]
    return ConnectionModel(model_id, facts, context_source, prices_source, remote, saved)


def connection_price_facts(connection_id: int | None, model_id: str) -> ModelFacts:
    """The facts a call on this connection is priced by (what was set for the model on it,
    else the catalog's), without asking the server: for the spend ledger."""
    saved = (ConnectionModelFacts.objects.filter(connection_id=connection_id, model_id=model_id).first()
             if connection_id is not None else None)
    return connection_price_facts_given(model_id, saved)


def connection_price_facts_given(model_id: str, saved: ConnectionModelFacts | None) -> ModelFacts:
    """connection_price_facts with the connection's saved row for the model (or None: it has
    none) already read, as the message POST reads it in the round trip that stores the run."""
    return _merged(model_id, saved, None).facts


def connection_model_facts(connection: ProviderConnection | None, model_id: str) -> ModelFacts:
    """The facts a run on this connection sizes and prices its requests by."""
    return connection_model(connection, model_id).facts


def connection_model_facts_given(connection: ProviderConnection | None, model_id: str,
                                 saved: ConnectionModelFacts | None) -> ModelFacts:
    """connection_model_facts with the connection's saved row for the model (or None: it has
    none) already read, as the run's claim reads it in the same statement."""
    if connection is None:
        return _merged(model_id, None, None).facts
    return _with_saved(connection, model_id, saved, None).facts


def connection_model_facts_save(*, connection: ProviderConnection, actor: User | None, model_id: str,
                                context_window: int | None, max_output_tokens: int | None,
                                input_price: Decimal | None, cached_input_price: Decimal | None,
                                output_price: Decimal | None, free: bool, encoding: str) -> ConnectionModelFacts:
    saved, _ = ConnectionModelFacts.objects.update_or_create(
        connection=connection, model_id=model_id,
        defaults={"context_window": context_window, "max_output_tokens": max_output_tokens,
                  "input_price": None if free else input_price,
                  "cached_input_price": None if free else cached_input_price,
                  "output_price": None if free else output_price, "free": free, "encoding": encoding})
    audit_record(team=connection.team, actor=actor, action="connection.model_facts", target=connection.name,
                 model=model_id)
    return saved

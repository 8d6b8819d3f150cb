"""Batch API: create, list (cursor paged), retrieve, cancel."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import batches
from .errors import not_found
from .http import int_query, json_body, json_response, list_body, page
from .owners import owned, owns
from .state import api_key_of, state_of


def _batch_or_404(request: Request) -> dict[str, object]:
    batch_id = request.path_params["batch_id"]
    batch = state_of(request).store.batches.get(batch_id)
    if batch is None or not owns(api_key_of(request), batch):
        raise not_found(f"No batch found with id '{batch_id}'.", param="batch_id")
    return batch


async def create_batch(request: Request) -> Response:
    state = state_of(request)
    body = await json_body(request)
    key = api_key_of(request)
    batch = batches.create_batch(state.store, body, key, state.clock.now(), lambda m: state.model_exists(m, key))
    state.store.batches.put(batch)
    state.active_batches.add(batch["id"])
    return json_response(batches.render(batch, state.clock))


async def list_batches(request: Request) -> Response:
    state = state_of(request)
    limit = int_query(request, "limit", 20, 1, 100)
    docs = list(owned(api_key_of(request), state.store.batches.values()))
    docs.reverse()  # newest first, as the real API pages
    chunk, has_more = page(docs, request.query_params.get("after"), limit)
    for batch in chunk:
        state.settle_batch(batch)
    return json_response(list_body([batches.render(b, state.clock) for b in chunk], has_more))


async def get_batch(request: Request) -> Response:
    state = state_of(request)
    batch = _batch_or_404(request)
    state.settle_batch(batch)
    return json_response(batches.render(batch, state.clock))


async def cancel_batch(request: Request) -> Response:
    state = state_of(request)
    batch = _batch_or_404(request)
    batches.cancel(batch, state.clock)
    state.store.batches.put(batch)
    state.settle_batch(batch)
    return json_response(batches.render(batch, state.clock))


routes = [
    Route("/v1/batches", create_batch, methods=["POST"]),
    Route("/v1/batches", list_batches, methods=["GET"]),
    Route("/v1/batches/{batch_id}", get_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
]

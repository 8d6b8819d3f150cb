"""GET /v1/models, GET/DELETE /v1/models/{id}: base models plus every fine-tuned model made here."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import fine_tuning
from .errors import ApiError, model_not_found
from .http import json_response
from .models_data import BASE_MODELS, BASE_MODELS_BY_ID
from .state import api_key_of, state_of

_BASE_OBJECTS: list[dict[str, Any]] = [
    {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by, "shutdown_date": m.shutdown_date}
    for m in BASE_MODELS
]


def _all_models(request: Request) -> dict[str, dict[str, Any]]:
    state = state_of(request)
    out = {m["id"]: m for m in _BASE_OBJECTS}
    for name, job in fine_tuning.fine_tuned_models(state.store, state.clock, api_key_of(request)).items():
        finished = fine_tuning.progress(job, state.clock).finished_at or job["created_at"]
        out[name] = {
            "id": name,
            "object": "model",
            "created": int(finished),
            "owned_by": job["organization_id"],
            # A fine-tuned model lives as long as its base model.
            "shutdown_date": BASE_MODELS_BY_ID[job["model"]].shutdown_date,
        }
    return out


async def list_models(request: Request) -> Response:
    return json_response({"object": "list", "data": list(_all_models(request).values())})


async def get_model(request: Request) -> Response:
    model_id = request.path_params["model"]
    model = _all_models(request).get(model_id)
    if model is None:
        raise model_not_found(model_id)
    return json_response(model)


async def delete_model(request: Request) -> Response:
    state = state_of(request)
    model_id = request.path_params["model"]
    models = fine_tuning.fine_tuned_models(state.store, state.clock, api_key_of(request))
    if model_id in BASE_MODELS_BY_ID or ":ckpt-step-" in model_id:
        raise ApiError(403, "You have insufficient permissions for this operation. Only fine-tuned models you "
                       "own can be deleted.", param="model", code="insufficient_permissions")
    if model_id not in models:
        raise model_not_found(model_id)
    doc = state.store.setting("deleted_models")
    doc["ids"] = [*doc.get("ids", []), model_id]
    state.store.settings.put(doc)
    return json_response({"id": model_id, "object": "model", "deleted": True})


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    Route("/v1/models/{model:path}", delete_model, methods=["DELETE"]),
]

"""Fine-tuning jobs API: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import fine_tuning
from .errors import not_found
from .http import int_query, json_body, json_response, list_body, page
from .owners import owned, owns
from .state import api_key_of, state_of


def _job_or_404(request: Request) -> dict[str, Any]:
    job_id = request.path_params["job_id"]
    job = state_of(request).store.jobs.get(job_id)
    if job is None or not owns(api_key_of(request), job):
        raise not_found(f"No fine-tuning job found with id '{job_id}'.", param="fine_tuning_job_id",
                        code="fine_tune_not_found")
    return job


def _render(request: Request, job: dict[str, Any]) -> Response:
    state = state_of(request)
    state.settle_job(job)
    return json_response(fine_tuning.render(job, state.clock))


async def create_job(request: Request) -> Response:
    state = state_of(request)
    body = await json_body(request)
    job = fine_tuning.create_job(state.store, body, api_key_of(request), state.config.organization, state.clock.now())
    state.store.jobs.put(job)
    state.active_jobs.add(job["id"])
    return _render(request, job)


def _metadata_filter(request: Request) -> dict[str, str]:
    # metadata[key]=value query parameters, as the SDK sends them
    out = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("metadata[") and key.endswith("]"):
            out[key[9:-1]] = value
    return out


async def list_jobs(request: Request) -> Response:
    state = state_of(request)
    limit = int_query(request, "limit", 20, 1, 100)
    wanted = _metadata_filter(request)
    docs = [
        j for j in owned(api_key_of(request), state.store.jobs.values())
        if all((j.get("metadata") or {}).get(k) == v for k, v in wanted.items())
    ]
    docs.reverse()
    chunk, has_more = page(docs, request.query_params.get("after"), limit)
    for job in chunk:
        state.settle_job(job)
    return json_response(list_body([fine_tuning.render(j, state.clock) for j in chunk], has_more, cursors=False))


async def get_job(request: Request) -> Response:
    return _render(request, _job_or_404(request))


def _action(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        job = _job_or_404(request)
        getattr(fine_tuning, name)(job, state.clock)
        state.store.jobs.put(job)
        return _render(request, job)

    endpoint.__name__ = f"{name}_job"
    return endpoint


async def list_events(request: Request) -> Response:
    state = state_of(request)
    job = _job_or_404(request)
    limit = int_query(request, "limit", 20, 1, 1000)
    events = list(reversed(fine_tuning.events(job, state.clock)))  # newest first
    chunk, has_more = page(events, request.query_params.get("after"), limit)
    return json_response(list_body(chunk, has_more, cursors=False))


async def list_checkpoints(request: Request) -> Response:
    state = state_of(request)
    job = _job_or_404(request)
    limit = int_query(request, "limit", 10, 1, 100)
    chunk, has_more = page(fine_tuning.checkpoints(job, state.clock), request.query_params.get("after"), limit)
    return json_response(list_body(chunk, has_more))


routes = [
    Route("/v1/fine_tuning/jobs", create_job, methods=["POST"]),
    Route("/v1/fine_tuning/jobs", list_jobs, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/cancel", _action("cancel"), methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/pause", _action("pause"), methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/resume", _action("resume"), methods=["POST"]),
    Route("/v1/fine_tuning/jobs/{job_id}/events", list_events, methods=["GET"]),
    Route("/v1/fine_tuning/jobs/{job_id}/checkpoints", list_checkpoints, methods=["GET"]),
]

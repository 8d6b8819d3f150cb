"""GET /v1/organization/costs and GET /v1/organization/usage/completions: daily buckets of
the calling key's own requests (sandbox/usage_log.py), in the API's UsageResponse shape.
Costs count every logged call; usage/completions only chat completions and responses.

Only what the dashboard reconciles is modelled: 1d buckets, group_by line_item (costs) and
model (usage), limit and the page cursor. Other filters are accepted and ignored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import invalid
from .http import json_response
from .state import api_key_of, state_of
from .usage_log import UsageLine

DAY = 86_400


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"Invalid value for '{name}': expected an integer.", param=name) from None


def _group_by(request: Request) -> set[str]:
    # Query arrays arrive as group_by=a&group_by=b or group_by[]=a (the SDK's form).
    return set(request.query_params.getlist("group_by")) | set(request.query_params.getlist("group_by[]"))


def _page(request: Request, *, max_limit: int, kind: str | None,
          results: Callable[[list[UsageLine]], list[dict[str, Any]]]) -> Response:
    start = _int_param(request, "start_time", None)
    if start is None:
        raise invalid("Missing query parameter 'start_time'.", param="start_time")
    if (request.query_params.get("bucket_width") or "1d") != "1d":
        raise invalid("Only bucket_width=1d is supported here.", param="bucket_width")
    limit = _int_param(request, "limit", 7) or 7
    if not 1 <= limit <= max_limit:
        raise invalid(f"'limit' must be between 1 and {max_limit}.", param="limit")
    end = _int_param(request, "end_time", None) or int(time.time()) + 1  # up to now, this second included
    start -= start % DAY  # buckets are whole UTC days
    page = request.query_params.get("page") or ""
    first = int(page) if page.isdigit() else start
    state = state_of(request)
    buckets: list[dict[str, Any]] = []
    bucket_start = max(first, start)
    while bucket_start < end and len(buckets) < limit:
        bucket_end = bucket_start + DAY
        lines = state.usage.of(api_key_of(request), bucket_start, min(bucket_end, end), kind)
        buckets.append({"object": "bucket", "start_time": bucket_start, "end_time": bucket_end,
                        "results": results(lines)})
        bucket_start = bucket_end
    has_more = bucket_start < end
    return json_response({"object": "page", "data": buckets, "has_more": has_more,
                          "next_page": str(bucket_start) if has_more else None})


async def costs(request: Request) -> Response:
    by_line_item = "line_item" in _group_by(request)

    def results(lines: list[UsageLine]) -> list[dict[str, Any]]:
        sums: dict[str | None, Decimal] = {}
        for line in lines:
            for item, amount in line.costs().items():
                key = f"{line.model}, {item}" if by_line_item else None
                sums[key] = sums.get(key, Decimal(0)) + amount
        return [{"object": "organization.costs.result", "amount": {"value": float(amount), "currency": "usd"},
                 "line_item": item, "project_id": None, "api_key_id": None,
                 "quantity": None, "quantity_unit": None}
                for item, amount in sums.items() if amount or not by_line_item]

    return _page(request, max_limit=180, kind=None, results=results)


async def usage_completions(request: Request) -> Response:
    by_model = "model" in _group_by(request)

    def results(lines: list[UsageLine]) -> list[dict[str, Any]]:
        sums: dict[str | None, dict[str, Any]] = {}
        for line in lines:
            key = line.model if by_model else None
            entry = sums.setdefault(key, {
                "object": "organization.usage.completions.result", "input_tokens": 0, "input_cached_tokens": 0,
                "output_tokens": 0, "input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests": 0,
                "project_id": None, "user_id": None, "api_key_id": None, "model": key, "batch": None,
                "service_tier": None})
            entry["input_tokens"] += line.input_tokens
            entry["input_cached_tokens"] += line.cached_tokens
            entry["output_tokens"] += line.output_tokens
            entry["num_model_requests"] += 1
        return list(sums.values())

    return _page(request, max_limit=31, kind="completions", results=results)


routes = [
    Route("/v1/organization/costs", costs, methods=["GET"]),
    Route("/v1/organization/usage/completions", usage_completions, methods=["GET"]),
]

"""Small request/response helpers shared by the route modules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .errors import ApiError, invalid

BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have "
    "trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"
)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status_code=status, media_type="application/json")


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, BAD_JSON, param=None, code=None) from None
    if not isinstance(data, dict):
        raise ApiError(400, BAD_JSON, param=None, code=None)
    return data


def int_query(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"Invalid '{name}': expected an integer, but got '{raw}' instead.", param=name) from None
    if not lo <= value <= hi:
        raise invalid(
            f"Invalid '{name}': expected a value between {lo} and {hi}, but got {value} instead.", param=name
        )
    return value


def page(items: Sequence[dict[str, Any]], after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Cursor paging over an already ordered list: items after the one whose id is `after`."""
    start = 0
    if after:
        for i, item in enumerate(items):
            if item["id"] == after:
                start = i + 1
                break
    chunk = list(items[start : start + limit])
    return chunk, start + limit < len(items)


def list_body(data: list[dict[str, Any]], has_more: bool, cursors: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": data, "has_more": has_more}
    if cursors:
        body["first_id"] = data[0]["id"] if data else None
        body["last_id"] = data[-1]["id"] if data else None
    return body

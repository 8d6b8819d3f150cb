"""A Responses API request for a /v1/responses batch line: the same engine as the live endpoint.

A batch line has no stored responses to refer to (no previous_response_id or item
references) and is never streamed or run in the background.
"""

from __future__ import annotations

from typing import Any

from .chat_simulator import ChatSimulator
from .models_data import ModelSpec
from .responses_engine import generate


def respond(simulator: ChatSimulator, body: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    line = {k: v for k, v in body.items() if k not in ("stream", "stream_options", "background")}
    response, _ = generate(simulator, line, spec)
    return response

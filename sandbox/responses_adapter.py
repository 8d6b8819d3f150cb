"""A Responses API request run through the chat simulator, for /v1/responses batch lines.

Only text (and image) input and text output: instructions and input items become chat
messages; the reply becomes one assistant message with an output_text part.
"""

from __future__ import annotations

import time
from typing import Any

from .chat_simulator import ChatOutcome, ChatSimulator
from .errors import invalid, missing_param
from .ids import stable_id
from .models_data import ModelSpec


def _content_parts(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url",
                          "image_url": {"url": part["image_url"], "detail": part.get("detail", "auto")}})
    return parts


def to_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    if "input" not in body:
        raise missing_param("input")
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "developer", "content": str(body["instructions"])})
    raw = body["input"]
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict) and item.get("role") in ("user", "assistant", "system", "developer"):
                messages.append({"role": item["role"], "content": _content_parts(item.get("content"))})
    if not messages:
        raise invalid("Invalid 'input': expected a string or a list of messages.", param="input")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort:
        chat["reasoning_effort"] = effort
    for name in ("temperature", "top_p", "metadata"):
        if body.get(name) is not None:
            chat[name] = body[name]
    return chat


def to_response(outcome: ChatOutcome, body: dict[str, Any]) -> dict[str, Any]:
    choice = outcome.choices[0]
    now = int(time.time())
    incomplete = choice.finish_reason == "length"
    text = choice.content or ""
    return {
        "id": "resp_" + outcome.id.removeprefix("chatcmpl-"),
        "object": "response",
        "created_at": outcome.created,
        "completed_at": None if incomplete else now,
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": outcome.model,
        "output": [{
            "type": "message",
            "id": stable_id("msg_", outcome.id),
            "status": "incomplete" if incomplete else "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "service_tier": "default",
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": outcome.prompt_tokens,
            "input_tokens_details": {"cached_tokens": outcome.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": outcome.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": outcome.reasoning_tokens},
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
        },
        "metadata": body.get("metadata") or {},
    }


def respond(simulator: ChatSimulator, body: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    outcome = simulator.complete(to_chat_request(body), spec, str(body.get("model")))
    return to_response(outcome, body)

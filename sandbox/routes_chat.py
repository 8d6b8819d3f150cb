"""POST /v1/chat/completions (plain and streamed) and POST /v1/embeddings.

Streams are shaped like the recordings of the real API: a role chunk, content or
tool_call deltas, a finish chunk, the usage chunk with empty choices when
stream_options.include_usage is set, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .chat_simulator import ChatOutcome
from .embeddings import embed
from .errors import ApiError
from .http import json_body, json_response
from .sse import ARG_PIECES, pieces, start, watch_disconnect
from .state import api_key_of, state_of


def stream_events(outcome: ChatOutcome, include_usage: bool) -> list[bytes]:
    head = json.dumps(
        {
            "id": outcome.id,
            "object": "chat.completion.chunk",
            "created": outcome.created,
            "model": outcome.model,
            "service_tier": outcome.service_tier,
            "system_fingerprint": outcome.system_fingerprint,
        },
        separators=(",", ":"),
    )[:-1]
    usage_tail = ',"usage":null' if include_usage else ""

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = json.dumps(
            {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}, separators=(",", ":")
        )
        return f'data: {head},"choices":[{choice}]{usage_tail}}}\n\n'.encode()

    events: list[bytes] = []
    for index, c in enumerate(outcome.choices):
        if c.tool_calls:
            first = c.tool_calls[0]
            events.append(chunk(index, {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": first["id"], "type": "function",
                 "function": {"name": first["function"]["name"], "arguments": ""}}], "refusal": None}))
            for k, call in enumerate(c.tool_calls):
                if k:
                    events.append(chunk(index, {"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                                "function": {"name": call["function"]["name"],
                                                                             "arguments": ""}}]}))
                for piece in pieces(call["function"]["arguments"], ARG_PIECES):
                    events.append(chunk(index, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]}))
        else:
            events.append(chunk(index, {"role": "assistant", "content": "", "refusal": None}))
            if c.content:
                for piece in pieces(c.content):
                    events.append(chunk(index, {"content": piece}))
        events.append(chunk(index, {}, c.finish_reason))
    if include_usage:
        usage = json.dumps(outcome.usage(), separators=(",", ":"))
        events.append(f'data: {head},"choices":[],"usage":{usage}}}\n\n'.encode())
    events.append(b"data: [DONE]\n\n")
    return events


class SSEResponse:
    """A raw ASGI streamed response: paced, cheap, and able to break off on purpose."""

    def __init__(self, events: list[bytes], ttft_ms: float, tokens_per_second: float, break_after: int | None) -> None:
        self.events = events
        self.ttft = ttft_ms / 1000.0
        self.gap = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0
        self.break_after = break_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        events = self.events if self.break_after is None else self.events[: self.break_after]
        # A paced stream can run for a minute; stop it as soon as the client leaves.
        gone, watcher = watch_disconnect(receive) if self.ttft or self.gap else (asyncio.Event(), None)
        try:
            if self.ttft:
                await asyncio.sleep(self.ttft)
            if not self.gap:
                await send({"type": "http.response.body", "body": b"".join(events), "more_body": True})
            else:
                for i, event in enumerate(events):
                    if i > 1:  # the role chunk and first token arrive together, after TTFT
                        await asyncio.sleep(self.gap)
                    if gone.is_set():
                        return
                    await send({"type": "http.response.body", "body": event, "more_body": True})
        except OSError:
            return  # the client went away
        finally:
            if watcher is not None:
                watcher.cancel()
        if self.break_after is not None:
            # Returning without the final body message makes uvicorn drop the
            # connection mid-stream: the client sees a broken stream, no [DONE].
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def chat_completions(request: Request) -> Response | SSEResponse:
    state = state_of(request)
    body = await json_body(request)
    if "model" not in body:
        raise ApiError(400, "you must provide a model parameter", param=None, code=None)
    spec = state.resolve_model(body.get("model"), api_key_of(request))
    outcome = state.simulator.complete(body, spec, body["model"])
    state.limiter.take_tokens(api_key_of(request), outcome.prompt_tokens + outcome.completion_tokens)
    # Billed when answered, as the provider bills it: a stream broken later is still paid for.
    state.usage.record(api_key=api_key_of(request), at=state.clock.now(), model=str(body["model"]),
                       input_tokens=outcome.prompt_tokens, cached_tokens=outcome.cached_tokens,
                       output_tokens=outcome.completion_tokens)
    if not body.get("stream"):
        return json_response(outcome.to_completion())
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    fault, _, after = str(request.scope["state"].get("fault", "")).partition(":")
    events = stream_events(outcome, include_usage)
    break_after = None
    if fault == "cut-stream" and after.isdigit():
        # The body ends cleanly after n events, never reaching a finish_reason or [DONE]: a stream cut short.
        finish = next(i for i, event in enumerate(events) if b'"finish_reason":"' in event)
        events = events[: min(int(after), finish)]
    if fault in ("break-stream", "stream-error") and after.isdigit():
        break_after = int(after)
        if fault == "stream-error":
            # OpenAI's shape for a failure after the reply has begun: an error object as data.
            error = {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                               "type": "server_error", "param": None, "code": None}}
            events = [*events[:break_after], f"data: {json.dumps(error)}\n\n".encode()]
            break_after = None
    cfg = state.config
    return SSEResponse(events, cfg.ttft_ms, cfg.tokens_per_second, break_after)


async def embeddings(request: Request) -> Response:
    state = state_of(request)
    body = await json_body(request)
    spec = state.resolve_model(body.get("model"), api_key_of(request))
    result = embed(body, spec, body["model"])
    state.limiter.take_tokens(api_key_of(request), result["usage"]["prompt_tokens"])
    state.usage.record(api_key=api_key_of(request), at=state.clock.now(), model=str(body["model"]),
                       input_tokens=int(result["usage"]["prompt_tokens"]), kind="embeddings")
    return json_response(result)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
]

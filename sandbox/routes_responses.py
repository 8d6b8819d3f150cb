"""POST /v1/responses, GET/DELETE /v1/responses/{id}, POST /v1/responses/{id}/cancel, and
GET /sandbox/responses/stats (how many responses this API key had generated).

Streams are server-sent events as the real API sends them (`event: <type>` then
`data: <json>`), each event with its sequence_number. A foreground stream is paced like
a chat stream (SANDBOX_TTFT_MS before the first output event, SANDBOX_TOKENS_PER_SECOND
between deltas); a background one follows the sandbox clock, so a client that reconnects
with ?stream=true&starting_after=N gets the events after N that have happened, then the
rest as they happen. X-Sandbox-Fault break-stream:<n> / stream-error:<n> work as for chat.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .errors import invalid
from .http import json_body, json_response
from .responses_engine import FAIL_MESSAGE
from .responses_service import ResponsesService
from .sse import start, watch_disconnect
from .state import api_key_of, state_of

_PACED = ("response.output_text.delta", "response.function_call_arguments.delta",
          "response.reasoning_summary_text.delta")


def service_of(request: Request) -> ResponsesService:
    service: ResponsesService = request.app.state.responses
    return service


def encode(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


class EventStream:
    """A raw ASGI SSE response that sends each event at its due time (time.time() clock).

    cut_off() is asked before each send: events due after the time it returns are not sent
    (a background response cancelled while someone follows it). break_after drops the
    connection after that many events; error_after sends an `error` event there instead.
    """

    def __init__(
        self,
        events: list[tuple[float, bytes]],
        *,
        cut_off: Callable[[], float | None] = lambda: None,
        break_after: int | None = None,
        error_after: int | None = None,
        error_sequence: int = 0,
    ) -> None:
        self.events = events
        self.cut_off = cut_off
        self.break_after = break_after
        self.error_after = error_after
        self.error_sequence = error_sequence

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await start(send)
        events = self.events
        limit = self.break_after if self.break_after is not None else self.error_after
        if limit is not None:
            events = events[:limit]
        gone, watcher = watch_disconnect(receive)
        try:
            i = 0
            while i < len(events):
                due = events[i][0]
                wait = due - time.time()
                if wait > 0:
                    with_timeout = asyncio.ensure_future(gone.wait())
                    done, _ = await asyncio.wait({with_timeout}, timeout=wait)
                    with_timeout.cancel()
                    if done:
                        return
                cut = self.cut_off()
                if cut is not None and due > cut:
                    break
                now = time.time()
                chunk = []
                while i < len(events) and events[i][0] <= now and (cut is None or events[i][0] <= cut):
                    chunk.append(events[i][1])
                    i += 1
                if gone.is_set():
                    return
                if chunk:
                    await send({"type": "http.response.body", "body": b"".join(chunk), "more_body": True})
        except OSError:
            return  # the client went away
        finally:
            watcher.cancel()
        if self.break_after is not None:
            return  # no final body message: uvicorn drops the connection mid-stream
        if self.error_after is not None:
            error = {"type": "error", "code": "server_error", "message": FAIL_MESSAGE, "param": None,
                     "sequence_number": self.error_sequence}
            await send({"type": "http.response.body", "body": encode(error), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _faults(request: Request) -> tuple[int | None, int | None]:
    fault, _, after = str(request.scope.get("state", {}).get("fault", "")).partition(":")
    if fault in ("break-stream", "stream-error") and after.isdigit():
        return (int(after), None) if fault == "break-stream" else (None, int(after))
    return None, None


def _paced(events: list[dict[str, Any]], ttft_ms: float, tokens_per_second: float) -> list[tuple[float, bytes]]:
    """Due times for a foreground stream: lifecycle events now, output after TTFT, deltas paced."""
    due = time.time()
    gap = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0
    started, first_delta, out = False, True, []
    for event in events:
        if not started and event["type"] not in ("response.created", "response.in_progress"):
            due, started = due + ttft_ms / 1000.0, True
        if event["type"] in _PACED:
            if not first_delta:
                due += gap
            first_delta = False
        out.append((due, encode(event)))
    return out


def _stream(
    request: Request, timed: list[tuple[float, bytes]], first_sequence: int,
    cut_off: Callable[[], float | None] = lambda: None,
) -> EventStream:
    break_after, error_after = _faults(request)
    error_sequence = first_sequence + (error_after or 0)
    return EventStream(timed, cut_off=cut_off, break_after=break_after, error_after=error_after,
                       error_sequence=error_sequence)


def _follow(request: Request, service: ResponsesService, doc: dict[str, Any], starting_after: int) -> EventStream:
    """The events of a background response after starting_after: those that happened, then live ones."""
    events = service.events(doc)
    due = service.due_times(doc, len(events))
    timed = [(due[i], encode(e)) for i, e in enumerate(events) if e["sequence_number"] > starting_after]

    def cut_off() -> float | None:
        cancelled_at: float | None = doc["cancelled_at"]
        return cancelled_at

    return _stream(request, timed, starting_after + 1, cut_off)


async def create_response(request: Request) -> Response | EventStream:
    state, service = state_of(request), service_of(request)
    body = await json_body(request)
    key = api_key_of(request)
    service.count(key, "create_requests")
    if "model" not in body:
        raise invalid("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    spec = state.resolve_model(body.get("model"), key)  # fine-tuned models of this key only
    created = service.create(body, spec, key)
    usage = created.response.get("usage") or {}
    state.limiter.take_tokens(key, int(usage.get("total_tokens", 0)))
    state.usage.record(api_key=key, at=state.clock.now(), model=str(body["model"]),
                       input_tokens=int(usage.get("input_tokens", 0)),
                       cached_tokens=int((usage.get("input_tokens_details") or {}).get("cached_tokens", 0)),
                       output_tokens=int(usage.get("output_tokens", 0)))
    if created.doc is not None and created.doc["background"]:
        if body.get("stream"):
            return _follow(request, service, created.doc, -1)
        return json_response(service.view(created.doc))
    if not body.get("stream"):
        return json_response(created.response)
    cfg = state.config
    return _stream(request, _paced(created.events, cfg.ttft_ms, cfg.tokens_per_second), 0)


def _starting_after(request: Request) -> int:
    raw = request.query_params.get("starting_after")
    if raw is None:
        return -1
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"Invalid 'starting_after': expected an integer, but got '{raw}' instead.",
                      param="starting_after", code="invalid_type") from None
    if value < -1:
        raise invalid(f"Invalid 'starting_after': expected a value >= -1, but got {value} instead.",
                      param="starting_after")
    return value


async def get_response(request: Request) -> Response | EventStream:
    service = service_of(request)
    key = api_key_of(request)
    doc = service.get(request.path_params["response_id"], key)
    if request.query_params.get("stream", "").lower() == "true":
        if not doc["background"]:
            raise invalid("Only responses created with background=true can be streamed from a retrieve call.",
                          param="stream")
        service.count(key, "stream_resumes")
        return _follow(request, service, doc, _starting_after(request))
    return json_response(service.view(doc))


async def cancel_response(request: Request) -> Response:
    service = service_of(request)
    key = api_key_of(request)
    doc = service.get(request.path_params["response_id"], key)
    return json_response(service.cancel(doc, key))


async def delete_response(request: Request) -> Response:
    service = service_of(request)
    doc = service.get(request.path_params["response_id"], api_key_of(request))
    service.delete(doc)
    return json_response({"id": doc["id"], "object": "response", "deleted": True})


async def stats(request: Request) -> Response:
    """GET /sandbox/responses/stats: this key's create calls and generated responses (a response is
    generated once, at create; retrieving or resuming its stream never generates it again)."""
    return json_response({"object": "sandbox.responses.stats", **service_of(request).stats(api_key_of(request))})


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
    Route("/sandbox/responses/stats", stats, methods=["GET"]),
]

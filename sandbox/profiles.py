"""Profiles: the sandbox behaving like other OpenAI-compatible servers, not like OpenAI.

A request is served by a profile when
  * its path starts with the profile's name: ``/llamacpp/v1/chat/completions``, optionally with
    ``name=value`` segments before ``/v1`` (``/llamacpp/n_ctx=512/keepalive=2/v1/...``), so a
    connection's base URL alone picks the profile and its settings; or
  * it carries ``X-Sandbox-Profile: llamacpp``; or
  * SANDBOX_PROFILE names a profile (every request then gets it).

``llamacpp`` is llama-cpp-python 0.3.36's server (as seen serving SmolLM2-135M-Instruct):
one model whatever the name asked for; no usage in streams (include_usage ignored);
max_completion_tokens ignored (only max_tokens); ``: ping`` SSE comments while it reads the
prompt; over its context a 400 (or, streamed, a 200 with an empty body); json_schema is a 500
with a Python dump; tools ignored unless tool_choice forces one; ``{"detail": ...}`` errors;
no files, uploads, batches, fine-tuning or responses routes.

``vllm`` is vLLM's OpenAI server: one model that must be named, ``max_model_len`` in the
model list, usage in streams only when asked, ``{"object": "error", "message", "type",
"code"}`` errors, the same missing routes, no comments before the first token.

The handlers here use the same chat simulator as the OpenAI routes and never touch the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .chat_simulator import KNOWN_PARAMS, ChatOutcome
from .config import non_negative
from .errors import ApiError
from .models_data import BASE_MODELS, ModelSpec
from .profile_specs import OPENAI, PROFILES, Profile
from .sse import pieces, start, watch_disconnect
from .state import SandboxState

PROFILE_HEADER = b"x-sandbox-profile"
KEEPALIVE_HEADER = b"x-sandbox-keepalive"
PING_HEADER = b"x-sandbox-ping"
FAULT_HEADER = b"x-sandbox-fault"


# What llama-cpp-python answers for a json_schema response format it cannot turn into a grammar.
JSON_SCHEMA_DUMP = """Exception: 1 validation error for ChatCompletionRequestResponseFormat
Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/llama_cpp/server/errors.py", line 173, in custom_route_handler
    response = await original_route_handler(request)
  File "/usr/lib/python3/site-packages/llama_cpp/server/app.py", line 513, in create_chat_completion
    ] = await run_in_threadpool(llama.create_chat_completion, **kwargs)
  File "/usr/lib/python3/site-packages/llama_cpp/llama_chat_format.py", line 634, in chat_completion_handler
    grammar = _grammar_for_response_format(response_format)
  File "/usr/lib/python3/site-packages/pydantic/main.py", line 627, in model_validate
    return cls.__pydantic_validator__.validate_python(
pydantic_core._pydantic_core.ValidationError: 1 validation error for ChatCompletionRequestResponseFormat
json_schema
  Extra inputs are not permitted [type=extra_forbidden, input_value={json_schema}, input_type=dict]
    For further information visit https://errors.pydantic.dev/2.11/v/extra_forbidden
"""


@dataclasses.dataclass
class Settings:
    """One request's profile settings: config, then base-URL segments, then headers."""

    profile: Profile
    n_ctx: int
    keepalive: float
    ping: float
    api_key: str | None
    model: str
    fault: str = ""
    # llama-cpp-python's interrupt_requests: a new chat request ends the one streaming ([DONE], no finish).
    interrupt: bool = False


def split_path(path: str) -> tuple[str, dict[str, str], str] | None:
    """"/llamacpp/n_ctx=512/v1/models" -> ("llamacpp", {"n_ctx": "512"}, "/v1/models").

    Everything under a profile's prefix is that profile's (what it lacks is its 404).
    """
    parts = path.split("/")
    if len(parts) < 2 or parts[1] not in PROFILES:
        return None
    options: dict[str, str] = {}
    for i in range(2, len(parts)):
        name, eq, value = parts[i].partition("=")
        if parts[i] == "v1" or not eq:
            return parts[1], options, "/" + "/".join(parts[i:])
        options[name] = value
    return parts[1], options, "/"


class ProfileMiddleware:
    """Outermost layer: requests for a profile are answered here, the rest pass through."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state
        # Interrupt flags of the streams now open with interrupt on, for the next request to set.
        self.streaming: set[asyncio.Event] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path: str = scope["path"]
        split = split_path(path)
        options: dict[str, str] = {}
        if split is not None:
            name, options, path = split
        else:
            name = headers.get(PROFILE_HEADER, b"").decode("latin-1").strip().lower() or self.state.config.profile
        if name not in PROFILES:
            if name not in ("", OPENAI):
                await _detail(400, f"Unknown sandbox profile {name!r}; known: {', '.join(PROFILES)}")(
                    scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        try:
            settings = self._settings(PROFILES[name], options, headers)
        except ValueError as exc:
            await _detail(400, str(exc))(scope, receive, send)
            return
        server = ProfileServer(self.state, settings, self.streaming)
        await server.handle({**scope, "path": path, "raw_path": path.encode()}, receive, send)

    def _settings(self, profile: Profile, options: dict[str, str], headers: dict[bytes, bytes]) -> Settings:
        cfg = self.state.config
        settings = Settings(profile, cfg.profile_n_ctx or profile.n_ctx, cfg.keepalive_seconds, cfg.ping_seconds,
                            cfg.api_key, profile.model)
        for key, value in options.items():
            if key == "n_ctx":
                settings.n_ctx = int(non_negative(value, "n_ctx"))
            elif key == "keepalive":
                settings.keepalive = non_negative(value, "keepalive")
            elif key == "ping":
                settings.ping = non_negative(value, "ping")
            elif key == "api_key":
                settings.api_key = value
            elif key == "model":
                settings.model = value
            elif key == "fault":
                settings.fault = value.lower()
            elif key == "interrupt":
                settings.interrupt = value.lower() in ("1", "true", "yes", "on")
            else:
                raise ValueError(f"Unknown profile setting {key!r} "
                                 "(n_ctx, keepalive, ping, api_key, model, fault, interrupt)")
        if KEEPALIVE_HEADER in headers:
            settings.keepalive = non_negative(headers[KEEPALIVE_HEADER].decode("latin-1"), "X-Sandbox-Keepalive")
        if PING_HEADER in headers:
            settings.ping = non_negative(headers[PING_HEADER].decode("latin-1"), "X-Sandbox-Ping")
        if FAULT_HEADER in headers:
            settings.fault = headers[FAULT_HEADER].decode("latin-1").strip().lower()
        if settings.fault.startswith("slow:"):
            non_negative(settings.fault[5:], "slow")
        if settings.n_ctx < 16:
            raise ValueError("n_ctx must be at least 16")
        return settings


def _detail(status: int, detail: Any) -> Response:
    """FastAPI's error shape, which both llama-cpp-python and vLLM use for routing and auth."""
    return JSONResponse({"detail": detail}, status_code=status)


class ProfileServer:
    def __init__(self, state: SandboxState, settings: Settings, streaming: set[asyncio.Event]) -> None:
        self.state = state
        self.streaming = streaming
        self.settings = settings
        self.profile = settings.profile
        self.llama = settings.profile.name == "llamacpp"

    # -- errors in each server's own shape ---------------------------------------------------
    def _error(self, status: int, message: str, kind: str | None = None) -> Response:
        if self.llama:
            return JSONResponse({"error": {"message": message, "type": kind or "internal_server_error",
                                           "param": None, "code": None}}, status_code=status)
        names = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}
        return JSONResponse({"object": "error", "message": message, "type": kind or names.get(status, "Error"),
                             "param": None, "code": status}, status_code=status)

    def _invalid(self, exc: ApiError) -> Response:
        if self.llama:  # pydantic validation of the request body
            loc = ["body", *(exc.param or "").replace("[", ".").replace("]", "").split(".")]
            return _detail(422, [{"type": "value_error", "loc": [p for p in loc if p], "msg": exc.message,
                                  "input": None}])
        return self._error(400 if exc.status < 500 else exc.status, exc.message)

    # -- routing ------------------------------------------------------------------------------
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        key = request.headers.get("authorization", "")
        key = key[7:].strip() if key[:7].lower() == "bearer " else ""
        path, method = scope["path"], scope["method"]
        routes: dict[str, tuple[str, Callable[[Request], Any]]] = {
            "/v1/models": ("GET", self.models),
            "/v1/chat/completions": ("POST", self.chat),
        }
        route = routes.get(path)
        if route is None:
            response: Any = _detail(404, "Not Found")
        elif route[0] != method:
            response = _detail(405, "Method Not Allowed")
        elif self.settings.api_key is not None and key != self.settings.api_key:
            response = (_detail(401, "Invalid API key") if self.llama
                        else JSONResponse({"error": "Unauthorized"}, status_code=401))
        else:
            response = await self._faulted(request) or await route[1](request)
        await response(scope, receive, send)

    async def _faulted(self, request: Request) -> Any:
        fault = self.settings.fault
        if fault == "timeout":
            return _Hang()
        if fault.startswith("slow:"):
            await asyncio.sleep(float(fault[5:]))
        if fault == "500":
            return self._error(500, "Internal Server Error")
        return None

    async def models(self, request: Request) -> Response:
        entry: dict[str, Any] = {"id": self.settings.model, "object": "model"}
        if not self.llama:
            entry["created"] = int(time.time())
        entry.update(self.profile.model_facts)
        if not self.llama:
            entry["root"] = self.settings.model
            entry["max_model_len"] = self.settings.n_ctx
            entry["permission"] = [{"id": f"modelperm-{uuid.uuid4().hex}", "object": "model_permission",
                                    "created": entry["created"], "allow_create_engine": False,
                                    "allow_sampling": True, "allow_logprobs": True,
                                    "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                                    "organization": "*", "group": None, "is_blocking": False}]
        return JSONResponse({"object": "list", "data": [entry]})

    # -- chat ---------------------------------------------------------------------------------
    def _spec(self) -> ModelSpec:
        # A plain chat model with no limits of its own: the profile applies n_ctx itself.
        base = next(m for m in BASE_MODELS if m.kind == "chat" and not m.reasoning)
        return dataclasses.replace(base, id=self.settings.model, context_window=10**9, max_output_tokens=10**9)

    def _request_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request as this server understands it, for the simulator."""
        body = {k: v for k, v in body.items() if k in KNOWN_PARAMS}
        body.pop("stream", None)
        body.pop("n", None)
        if self.llama:
            body.pop("stream_options", None)
            body.pop("max_completion_tokens", None)  # not a field of llama-cpp-python's request model
            choice = body.get("tool_choice")
            if not (isinstance(choice, dict) and choice.get("type", "function") == "function"):
                for name in ("tools", "tool_choice", "parallel_tool_calls"):
                    body.pop(name, None)
            fmt = body.get("response_format")
            if isinstance(fmt, dict) and fmt.get("type") == "json_object":
                body.pop("response_format")  # a grammar, not OpenAI's "must mention json" rule
        else:
            body.pop("stream_options", None)
        return body

    async def chat(self, request: Request) -> Any:
        if self.settings.interrupt:  # this request takes the model from whatever streams now
            for flag in list(self.streaming):
                flag.set()
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return _detail(422, [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                                  "input": {}, "ctx": {"error": str(exc)}}])
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _detail(422, [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required",
                                  "input": body}])
        stream = bool(body.get("stream"))
        model = str(body.get("model") or self.settings.model)
        if not self.llama and model != self.settings.model:
            return self._error(404, f"The model `{model}` does not exist.")
        if self.llama and any(isinstance(m, dict) and m.get("content") is None and not m.get("tool_calls")
                              for m in body["messages"]):
            # The chat template concatenates the content: an empty reply sent back as null breaks it.
            return self._error(500, 'can only concatenate str (not "NoneType") to str')
        fmt = body.get("response_format")
        if self.llama and isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return PlainTextResponse(JSON_SCHEMA_DUMP, status_code=500)
        wants_json_object = self.llama and isinstance(fmt, dict) and fmt.get("type") == "json_object"
        include_usage = not self.llama and bool((body.get("stream_options") or {}).get("include_usage"))
        simulated = self._request_body(body)
        try:
            outcome = self.state.simulator.complete(simulated, self._spec(), model)
            n_ctx = self.settings.n_ctx
            max_tokens = simulated.get("max_tokens") if self.llama else (
                simulated.get("max_completion_tokens") or simulated.get("max_tokens"))
            # llama.cpp refuses a prompt that fills its context (and clamps max_tokens); vLLM refuses
            # prompt + max_tokens over max_model_len.
            needed = outcome.prompt_tokens + (0 if self.llama else (max_tokens or 0))
            if needed >= n_ctx + (0 if self.llama else 1):
                return self._over_context(outcome.prompt_tokens, max_tokens, stream)
            if outcome.completion_tokens > n_ctx - outcome.prompt_tokens:
                # The server stops where its context ends.
                outcome = self.state.simulator.complete({**simulated, "max_tokens": n_ctx - outcome.prompt_tokens},
                                                        self._spec(), model)
        except ApiError as exc:
            return self._invalid(exc)
        if wants_json_object:
            for choice in outcome.choices:
                choice.content = json.dumps({"reply": choice.content})
        if self.llama:
            for choice in outcome.choices:
                if choice.tool_calls:
                    choice.finish_reason = "tool_calls"
        if not stream:
            await self._wait_for_prompt()
            return JSONResponse(self._completion(outcome))
        return _ProfileStream(self, self._chunks(outcome, include_usage))

    def _over_context(self, prompt_tokens: int, max_tokens: Any, stream: bool) -> Any:
        n_ctx = self.settings.n_ctx
        message = (f"This model's maximum context length is {n_ctx} tokens. However, you requested "
                   f"{prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the messages, {max_tokens} in "
                   "the completion). Please reduce the length of the messages or completion.")
        if self.llama:
            if stream:
                # The error is raised inside the stream's generator, after the 200 went out.
                return _ProfileStream(self, [], empty=True)
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": "messages",
                                           "code": "context_length_exceeded"}}, status_code=400)
        return self._error(400, message)

    async def _wait_for_prompt(self) -> None:
        if self.settings.keepalive:
            await asyncio.sleep(self.settings.keepalive)

    def _completion(self, outcome: ChatOutcome) -> dict[str, Any]:
        choices = []
        for i, c in enumerate(outcome.choices[:1]):
            message: dict[str, Any] = {"role": "assistant", "content": c.content}
            if c.tool_calls:
                message["tool_calls"] = c.tool_calls
            choices.append({"index": i, "message": message, "logprobs": None, "finish_reason": c.finish_reason})
        body: dict[str, Any] = {"id": outcome.id, "object": "chat.completion", "created": outcome.created,
                                "model": outcome.model, "choices": choices}
        usage = outcome.usage()
        body["usage"] = {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return body

    def _chunks(self, outcome: ChatOutcome, include_usage: bool) -> list[bytes]:
        """Data events; the chunk with finish_reason and [DONE] are the last two (usage before [DONE])."""
        base = {"id": outcome.id, "object": "chat.completion.chunk", "created": outcome.created,
                "model": outcome.model}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            body = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                body["usage"] = None
            return f"data: {json.dumps(body)}\n\n".encode()

        c = outcome.choices[0]
        events = [chunk({"role": "assistant"} if self.llama else {"role": "assistant", "content": ""})]
        if c.tool_calls:
            for k, call in enumerate(c.tool_calls):
                events.append(chunk({"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                     "function": {"name": call["function"]["name"],
                                                                  "arguments": call["function"]["arguments"]}}]}))
        elif c.content:
            events += [chunk({"content": piece}) for piece in pieces(c.content)]
        events.append(chunk({}, c.finish_reason))
        if include_usage:
            usage = outcome.usage()
            tail = {**base, "choices": [],
                    "usage": {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}}
            events.append(f"data: {json.dumps(tail)}\n\n".encode())
        events.append(b"data: [DONE]\n\n")
        return events


class _Hang:
    """Never answers; the client's timeout ends it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass


class _ProfileStream:
    """A 200 event stream: headers at once, pings (llamacpp) while "reading the prompt", then the events.

    Faults: ``cut-stream:<n>`` ends the body cleanly after n events, before the finish_reason chunk
    and [DONE]; ``break-stream:<n>`` drops the connection after n events.
    """

    def __init__(self, server: ProfileServer, events: list[bytes], empty: bool = False) -> None:
        self.server = server
        self.events = events
        self.empty = empty
        cfg = server.state.config
        self.ttft = cfg.ttft_ms / 1000.0
        self.gap = 1.0 / cfg.tokens_per_second if cfg.tokens_per_second > 0 else 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await start(send, [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
                           (b"x-accel-buffering", b"no")])
        if self.empty:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        fault, _, count = self.server.settings.fault.partition(":")
        events, drop = self.events, False
        if fault in ("cut-stream", "break-stream") and count.isdigit():
            limit = int(count)
            if fault == "cut-stream":
                limit = min(limit, len(events) - 2)  # never the finish_reason chunk or [DONE]
            events, drop = events[:limit], fault == "break-stream"
        gone, watcher = watch_disconnect(receive)
        interrupted = asyncio.Event()
        if self.server.settings.interrupt:
            self.server.streaming.add(interrupted)
        try:
            await self._keepalive(send, gone)
            if self.ttft and not gone.is_set():
                await asyncio.sleep(self.ttft)
            for i, event in enumerate(events):
                if gone.is_set():
                    return
                if self.gap and i > 1:
                    await asyncio.sleep(self.gap)
                await send({"type": "http.response.body", "body": event, "more_body": True})
                if interrupted.is_set() and event != events[-1]:
                    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
                    break
        except OSError:
            return
        finally:
            watcher.cancel()
            self.server.streaming.discard(interrupted)
        if drop:
            return  # uvicorn drops the connection: no end of the chunked body
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _keepalive(self, send: Callable[[Message], Any], gone: asyncio.Event) -> None:
        """Wait out the time to read the prompt; llamacpp sends sse-starlette's ping comments meanwhile,
        one every `ping` seconds strictly before the wait ends."""
        settings = self.server.settings
        started = time.monotonic()
        deadline = started + settings.keepalive
        pings = self.server.profile.pings and settings.ping > 0
        sent = 0

        def next_ping() -> float:
            due = (sent + 1) * settings.ping
            return started + due if pings and due < settings.keepalive - 1e-6 else deadline

        while not gone.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            try:
                await asyncio.wait_for(gone.wait(), timeout=min(deadline, next_ping()) - now)
                return
            except TimeoutError:
                pass
            if next_ping() < deadline and time.monotonic() >= next_ping():
                stamp = datetime.now(UTC).isoformat(sep=" ")
                await send({"type": "http.response.body", "body": f": ping - {stamp}\n\n".encode(),
                            "more_body": True})
                sent += 1

"""One pure-ASGI layer in front of every route: request id, bearer auth, rate limits, faults.

Pure ASGI rather than BaseHTTPMiddleware so streamed responses pass through untouched
and the hot path stays cheap.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import SandboxConfig
from .errors import ApiError, server_error, unauthorized
from .ids import request_id
from .ratelimit import RateLimiter

FAULT_HEADER = b"x-sandbox-fault"
# A drawn mid-stream fault strikes after this many events: the role chunk and a few tokens.
STREAM_FAULT_AFTER_EVENTS = 4
RETRY_HEADER = b"x-stainless-retry-count"
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer "
    "auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're "
    "accessing the API from your browser and are prompted for a username and password. You can obtain an API "
    "key from https://platform.openai.com/account/api-keys."
)


def _masked(key: str) -> str:
    return key[:3] + "*" * 10 + key[-4:] if len(key) > 8 else "*" * len(key)


class SandboxMiddleware:
    def __init__(self, app: ASGIApp, config: SandboxConfig, limiter: RateLimiter) -> None:
        self.app = app
        self.config = config
        self.limiter = limiter
        self.random = random.Random(1234)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        rid = request_id()
        key = ""
        fault = ""
        retry_count = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                raw = value.decode("latin-1")
                key = raw[7:].strip() if raw[:7].lower() == "bearer " else ""
            elif name == FAULT_HEADER:
                fault = value.decode("latin-1").strip().lower()
            elif name == RETRY_HEADER:
                retry_count = int(value) if value.isdigit() else 0
        # "<fault>:<n>" (500, 503, 429) applies only to the first n attempts, counted by the
        # SDK's own x-stainless-retry-count header: the way to see a retry succeed.
        head, _, times = fault.partition(":")
        if head in ("500", "503", "429") and times.isdigit():
            fault = head if retry_count < int(times) else ""

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                headers.append((b"openai-organization", self.config.organization.encode()))
                headers.append((b"openai-version", b"2020-10-01"))
                ms = int((time.monotonic() - started) * 1000)
                headers.append((b"openai-processing-ms", str(ms).encode()))
                headers += self.limiter.headers(key)
                message = {**message, "headers": headers}
            await send(message)

        state: dict[str, Any] = scope.setdefault("state", {})
        state["api_key"] = key
        state["request_id"] = rid
        state["fault"] = fault
        path: str = scope["path"]
        if not (path.startswith("/v1/") or path.startswith("/sandbox/")):
            await self.app(scope, receive, send_with_headers)
            return
        try:
            if not key:
                raise unauthorized(NO_KEY)
            if self.config.api_key is not None and key != self.config.api_key:
                raise unauthorized(
                    f"Incorrect API key provided: {_masked(key)}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys."
                )
            if path.startswith("/v1/"):
                if fault == "timeout":
                    await self._hold_until_disconnect(receive)
                    return
                await self._faults(fault)
                if path in ("/v1/chat/completions", "/v1/responses"):
                    state["fault"] = self._stream_fault(fault)
                self.limiter.take_request(key)
        except ApiError as exc:
            await exc.response()(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _hold_until_disconnect(receive: Receive) -> None:
        # Never answer: the client's own timeout is what this fault exercises.
        while (await receive())["type"] != "http.disconnect":
            pass

    def _stream_fault(self, fault: str) -> str:
        """A drawn mid-stream fault for this request, or the one asked for."""
        if fault:
            return fault
        if self.config.fault_rate_break_stream and self.random.random() < self.config.fault_rate_break_stream:
            return f"break-stream:{STREAM_FAULT_AFTER_EVENTS}"
        if self.config.fault_rate_stream_error and self.random.random() < self.config.fault_rate_stream_error:
            return f"stream-error:{STREAM_FAULT_AFTER_EVENTS}"
        return ""

    async def _faults(self, fault: str) -> None:
        if fault == "500" or (self.config.fault_rate_500 and self.random.random() < self.config.fault_rate_500):
            raise server_error()
        if fault == "429" or (self.config.fault_rate_429 and self.random.random() < self.config.fault_rate_429):
            raise ApiError(
                429,
                "Rate limit reached for requests (injected by X-Sandbox-Fault). Please try again in 1s.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": "1", "retry-after-ms": "1000"},
            )
        if fault == "503":
            raise ApiError(503, "The engine is currently overloaded, please try again later.", type="server_error")
        if fault.startswith("slow:"):
            await asyncio.sleep(float(fault[5:] or 0))

"""The sandbox ASGI app: routes, the auth/limits/faults layer and the error envelope."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from . import (
    routes_batches,
    routes_chat,
    routes_files,
    routes_fine_tuning,
    routes_models,
    routes_responses,
    routes_sandbox,
    routes_usage,
)
from .config import SandboxConfig
from .errors import ApiError, server_error
from .middleware import SandboxMiddleware
from .profiles import ProfileMiddleware
from .responses_service import ResponsesService
from .state import SandboxState

log = logging.getLogger("sandbox")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        # The real API answers unknown routes and methods alike with this 404.
        return ApiError(404, f"Invalid URL ({request.method} {request.url.path})", param=None).response()
    return ApiError(exc.status_code, str(exc.detail)).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in sandbox", exc_info=exc)
    return server_error().response()


def create_app(config: SandboxConfig | None = None) -> Starlette:
    config = config or SandboxConfig.from_env()
    state = SandboxState(config)
    responses = ResponsesService(state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = Starlette(
        routes=[
            *routes_models.routes,
            *routes_files.routes,
            *routes_chat.routes,
            *routes_responses.routes,
            *routes_batches.routes,
            *routes_fine_tuning.routes,
            *routes_sandbox.routes,
            *routes_usage.routes,
        ],
        middleware=[
            # Outermost: requests for a compatible-server profile (llamacpp, vllm) are answered there.
            Middleware(ProfileMiddleware, state=state),
            Middleware(SandboxMiddleware, config=config, limiter=state.limiter),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.sandbox = state
    app.state.responses = responses
    return app

"""Sandbox-only endpoints (not under /v1): webhook registration per API key, health, deliveries."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import invalid
from .http import json_body, json_response
from .state import api_key_of, state_of


async def register_webhook(request: Request) -> Response:
    """POST /sandbox/webhooks {"url", "secret"}: events for jobs this key creates go there.

    An empty or missing url removes the registration (the environment's endpoint applies again).
    """
    state = state_of(request)
    body = await json_body(request)
    url, secret = body.get("url"), body.get("secret")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise invalid("url must be an http(s) URL.", param="url")
    if url and not (isinstance(secret, str) and secret):
        raise invalid("secret is required with a url (whsec_<base64> as OpenAI issues them).", param="secret")
    state.webhooks.register(api_key_of(request), url or None, secret)
    return json_response({"url": url or None, "registered": bool(url)})


async def webhook_deliveries(request: Request) -> Response:
    """GET /sandbox/webhooks/deliveries: what was sent for this key's jobs, with attempts and last status."""
    return json_response({"object": "list", "data": state_of(request).webhooks.deliveries_for(api_key_of(request))})


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


routes = [
    Route("/sandbox/webhooks", register_webhook, methods=["POST"]),
    Route("/sandbox/webhooks/deliveries", webhook_deliveries, methods=["GET"]),
    Route("/healthz", health, methods=["GET"]),
]

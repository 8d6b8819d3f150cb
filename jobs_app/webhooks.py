"""Signed webhooks from a provider (batch.*, fine_tuning.job.*).

One endpoint per connection: /webhooks/<connection public id>/. The signature is
checked by the SDK's `client.webhooks.unwrap()` with the connection's secret; a
delivery already seen (same webhook-id) is acknowledged and ignored, so replays
change nothing twice. Features register a handler per event-type prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import openai
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from jobs_app.models import WebhookDelivery
from project.providers.client import client_for
from project.providers.models import ProviderConnection
from project.providers.selectors import connection_by_public_id

logger = logging.getLogger(__name__)

WebhookHandler = Callable[[ProviderConnection, Any], None]
_handlers: dict[str, WebhookHandler] = {}


def register_webhook_handler(prefix: str, handler: WebhookHandler) -> None:
    """`prefix` is matched against the event type, e.g. "batch." or "fine_tuning.job."."""
    _handlers[prefix] = handler


def _handler_for(event_type: str) -> WebhookHandler | None:
    for prefix, handler in _handlers.items():
        if event_type.startswith(prefix):
            return handler
    return None


@csrf_exempt  # Signed by the provider; there is no session or CSRF token.
@require_POST
def webhook_receive(request: HttpRequest, public_id: UUID) -> HttpResponse:
    connection = connection_by_public_id(public_id=public_id)
    if connection is None or not connection.has_webhook_secret:
        return JsonResponse({"error": "unknown webhook endpoint"}, status=404)
    try:
        event = client_for(connection).webhooks.unwrap(request.body, dict(request.headers))
    except openai.InvalidWebhookSignatureError:
        return JsonResponse({"error": "invalid signature"}, status=400)
    except ValueError as error:
        return JsonResponse({"error": f"invalid webhook: {error}"}, status=400)
    webhook_id = request.headers.get("webhook-id", event.id)
    object_id = str(getattr(getattr(event, "data", None), "id", ""))
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(
                connection=connection, webhook_id=webhook_id, event_type=event.type, object_id=object_id,
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate ignored"})
    handler = _handler_for(event.type)
    if handler is None:
        logger.info("webhook %s of type %s has no handler", webhook_id, event.type)
        return JsonResponse({"status": "ignored"})
    handler(connection, event)
    return JsonResponse({"status": "accepted"})

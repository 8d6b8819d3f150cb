"""Signed webhooks from a provider (batch.*, fine_tuning.job.*).

One endpoint per connection: /webhooks/<connection public id>/. The signature is
checked by the SDK's `client.webhooks.unwrap()` with the connection's secret; a
delivery already seen (same webhook-id) is acknowledged and ignored, so replays
change nothing twice. Features register a handler per event-type prefix
(project.webhooks.registry).
"""

from __future__ import annotations

import logging
from uuid import UUID

import openai
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from project.providers.client import client_for
from project.providers.selectors import connection_by_public_id
from project.webhooks.models import WebhookDelivery
from project.webhooks.registry import webhook_handler_for

logger = logging.getLogger(__name__)

WEBHOOK_ID_MAX = 200  # WebhookDelivery.webhook_id


def _bad(reason: str) -> JsonResponse:
    return JsonResponse({"error": reason}, status=400)


def _signed_headers(request: HttpRequest) -> dict[str, str] | None:
    """The request's headers, or None when a signature header is not plain ASCII (the
    SDK's comparison raises a TypeError on such text rather than saying no)."""
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        value = request.headers.get(name, "")  # case-insensitive
        if not value.isascii() or not value.isprintable():
            return None
    return dict(request.headers)


def _event_fields(event: object) -> tuple[str, str] | None:
    """(id, type) of a verified event, or None when the body is not an event object
    (a list, an empty object, a type that is not text)."""
    event_id, event_type = getattr(event, "id", None), getattr(event, "type", None)
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not event_id or not event_type:
        return None
    return event_id, event_type


@csrf_exempt  # Signed by the provider; there is no session or CSRF token.
@require_POST
def webhook_receive(request: HttpRequest, public_id: UUID) -> HttpResponse:
    connection = connection_by_public_id(public_id=public_id)
    if connection is None or not connection.has_webhook_secret:
        return JsonResponse({"error": "unknown webhook endpoint"}, status=404)
    headers = _signed_headers(request)
    if headers is None:
        return _bad("invalid signature headers")
    try:
        event = client_for(connection).webhooks.unwrap(request.body, headers)
    except openai.InvalidWebhookSignatureError:
        return _bad("invalid signature")
    except (ValueError, TypeError, AttributeError) as error:
        # Signed, but not an event the SDK can read (the body is not a JSON object, …).
        logger.info("webhook on connection %s: unreadable body: %s", connection.pk, error)
        return _bad("invalid webhook body")
    fields = _event_fields(event)
    if fields is None:
        return _bad("invalid webhook body: not an event with an id and a type")
    event_id, event_type = fields
    webhook_id = request.headers.get("webhook-id", event_id)
    if len(webhook_id) > WEBHOOK_ID_MAX:
        return _bad(f"webhook-id longer than {WEBHOOK_ID_MAX} characters")
    object_id = str(getattr(getattr(event, "data", None), "id", "") or "")[:200]
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(
                connection=connection, webhook_id=webhook_id, event_type=event_type[:100], object_id=object_id,
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate ignored"})
    handler = webhook_handler_for(event_type)
    if handler is None:
        logger.info("webhook %s of type %s has no handler", webhook_id, event_type)
        return JsonResponse({"status": "ignored"})
    handler(connection, event)
    return JsonResponse({"status": "accepted"})

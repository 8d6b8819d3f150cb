"""Features register a handler per webhook event-type prefix ("batch.", "fine_tuning.job.")
from their AppConfig.ready(); the platform's endpoint calls it. The platform never
imports a feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from project.providers.models import ProviderConnection

WebhookHandler = Callable[[ProviderConnection, Any], None]
_handlers: dict[str, WebhookHandler] = {}


def register_webhook_handler(prefix: str, handler: WebhookHandler) -> None:
    """`prefix` is matched against the event type, e.g. "batch." or "fine_tuning.job."."""
    _handlers[prefix] = handler


def webhook_handler_for(event_type: str) -> WebhookHandler | None:
    for prefix, handler in _handlers.items():
        if event_type.startswith(prefix):
            return handler
    return None

"""Signed webhook delivery (standard-webhooks, as client.webhooks.unwrap() verifies).

Endpoints come from SANDBOX_WEBHOOK_URL/SECRET or are registered at runtime per API
key through POST /sandbox/webhooks; a registration for the key that created a job
wins over the environment's. Each state change is delivered once, retried with
backoff when the receiver fails.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx2

from .store import Store

log = logging.getLogger("sandbox.webhooks")
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Endpoint:
    url: str
    secret: str


def key_fingerprint(api_key: str) -> str:
    # Registrations are stored by a hash of the key, never the key itself.
    return hashlib.sha256(api_key.encode()).hexdigest()


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookSender:
    def __init__(self, store: Store, default: Endpoint | None) -> None:
        self.store = store
        self.default = default
        self.deliveries: list[dict[str, Any]] = []  # a log for tests and the curious
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx2.AsyncClient | None = None

    def register(self, api_key: str, url: str | None, secret: str | None) -> None:
        doc = self.store.setting("webhooks")
        registry = dict(doc.get("by_key", {}))
        if url:
            registry[key_fingerprint(api_key)] = {"url": url, "secret": secret or ""}
        else:
            registry.pop(key_fingerprint(api_key), None)
        doc["by_key"] = registry
        self.store.settings.put(doc)

    def endpoint_for(self, api_key: str) -> Endpoint | None:
        entry = self.store.setting("webhooks").get("by_key", {}).get(key_fingerprint(api_key))
        if entry:
            return Endpoint(entry["url"], entry["secret"])
        return self.default

    def emit(self, api_key: str, event_type: str, object_id: str) -> None:
        endpoint = self.endpoint_for(api_key)
        if endpoint is None:
            return
        event = {
            "id": "evt_" + secrets.token_hex(16),
            "object": "event",
            "created_at": int(time.time()),
            "type": event_type,
            "data": {"id": object_id},
        }
        task = asyncio.get_running_loop().create_task(self._deliver(endpoint, event, key_fingerprint(api_key)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def deliveries_for(self, api_key: str) -> list[dict[str, Any]]:
        key_hash = key_fingerprint(api_key)
        return [{k: v for k, v in r.items() if k != "_key"} for r in self.deliveries if r["_key"] == key_hash]

    async def _deliver(self, endpoint: Endpoint, event: dict[str, Any], key_hash: str) -> None:
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=10.0)
        body = json.dumps(event)
        webhook_id = "wh_" + secrets.token_hex(16)
        record: dict[str, Any] = {"event": event, "url": endpoint.url, "attempts": 0, "status": None,
                                  "_key": key_hash}
        self.deliveries.append(record)
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay)
            timestamp = int(time.time())
            headers = {
                "content-type": "application/json",
                "user-agent": "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(endpoint.secret, webhook_id, timestamp, body),
            }
            record["attempts"] += 1
            try:
                response = await self._client.post(endpoint.url, content=body, headers=headers)
                record["status"] = response.status_code
                if 200 <= response.status_code < 300:
                    return
            except httpx2.HTTPError as exc:
                record["status"] = f"error: {exc.__class__.__name__}"
            log.info("webhook %s to %s failed (%s); retrying", event["type"], endpoint.url, record["status"])

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

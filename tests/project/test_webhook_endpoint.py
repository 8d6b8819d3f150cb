"""The webhook endpoint answers every malformed delivery with a 400 and a reason,
never an error page (which, under DEBUG, would show the settings), and records a
delivery only when it is a signed event with an id and a type."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from django.test import Client
from django.urls import reverse

from project.providers.models import ProviderConnection
from project.webhooks.models import WebhookDelivery
from sandbox.webhooks import sign
from tests.factories import make_connection

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(b"a-secret-for-the-endpoint-tests").decode()


def _post(client: Client, team, body: str, *, webhook_id: str | None = None, signature: str | None = None,
          connection: ProviderConnection | None = None):
    connection = connection or make_connection(team, webhook_secret=SECRET, name=f"hooks {secrets.token_hex(3)}")
    webhook_id = webhook_id or "wh_" + secrets.token_hex(8)
    stamp = int(time.time())
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(stamp),
               "webhook-signature": signature or sign(SECRET, webhook_id, stamp, body)}
    return client.post(reverse("webhook_receive", args=[connection.public_id]), body,
                       content_type="application/json", headers=headers)


def _event(**fields: object) -> str:
    return json.dumps({"id": "evt_1", "object": "event", "created_at": int(time.time()), "type": "batch.completed",
                       "data": {"id": "batch_1"}, **fields})


def test_a_signature_header_that_is_not_ascii_is_a_400_without_logging_in(client: Client, team) -> None:
    response = _post(client, team, _event(), signature="v1,\xff\xfe")
    assert response.status_code == 400 and "signature" in response.json()["error"]


@pytest.mark.parametrize("body", ["[]", "{}", '"text"', json.dumps({"id": "evt_2", "type": 7})])
def test_a_signed_body_that_is_not_an_event_is_a_400_and_records_nothing(client: Client, team, body: str) -> None:
    response = _post(client, team, body)
    assert response.status_code == 400, response.content
    assert "invalid webhook" in response.json()["error"]
    assert not WebhookDelivery.objects.exists()


def test_a_webhook_id_longer_than_stored_ids_is_a_400(client: Client, team) -> None:
    response = _post(client, team, _event(), webhook_id="w" * 300)
    assert response.status_code == 400 and "webhook-id" in response.json()["error"]
    assert not WebhookDelivery.objects.exists()


def test_a_signed_event_is_recorded_once(client: Client, team) -> None:
    connection = make_connection(team, webhook_secret=SECRET, name="hooks")
    first = _post(client, team, _event(), webhook_id="wh_same", connection=connection)
    assert first.status_code == 200 and first.json()["status"] in ("accepted", "ignored")
    assert WebhookDelivery.objects.get().event_type == "batch.completed"
    again = _post(client, team, _event(), webhook_id="wh_same", connection=connection)  # a replay
    assert again.status_code == 200 and again.json()["status"] == "duplicate ignored"
    assert WebhookDelivery.objects.count() == 1

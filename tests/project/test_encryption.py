from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db_connection
from django.test import Client, override_settings

from project import crypto
from project.providers.models import ProviderConnection
from tests.factories import make_connection


def test_a_secret_round_trips_and_is_not_stored_in_clear() -> None:
    token = crypto.encrypt("sk-live-abcdef")
    assert "sk-live" not in token
    assert crypto.decrypt(token) == "sk-live-abcdef"


def test_the_api_key_is_encrypted_in_the_database(team) -> None:
    connection = make_connection(team, api_key="sk-proj-SECRET-9876", webhook_secret="whsec_c2VjcmV0")
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted, webhook_secret_encrypted FROM providers_providerconnection WHERE id = %s",
                       [connection.pk])
        stored_key, stored_secret = cursor.fetchone()
    assert "SECRET" not in stored_key and "c2VjcmV0" not in stored_secret
    fresh = ProviderConnection.objects.get(pk=connection.pk)
    assert fresh.get_api_key() == "sk-proj-SECRET-9876"
    assert fresh.get_webhook_secret() == "whsec_c2VjcmV0"
    assert fresh.masked_api_key == "••••9876"


def test_rotation_keeps_old_secrets_readable_and_the_command_reencrypts_them(team, settings) -> None:
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    connection = make_connection(team, api_key="sk-rotate-me-1111")
    new_key = Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        assert ProviderConnection.objects.get(pk=connection.pk).get_api_key() == "sk-rotate-me-1111"
        call_command("rotate_encryption_keys")
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert ProviderConnection.objects.get(pk=connection.pk).get_api_key() == "sk-rotate-me-1111"
    with override_settings(FIELD_ENCRYPTION_KEYS=[old_key]), pytest.raises(crypto.DecryptionError):
        ProviderConnection.objects.get(pk=connection.pk).get_api_key()


def test_a_saved_key_is_never_rendered_back(owner_client: Client, team) -> None:
    connection = make_connection(team, api_key="sk-proj-NEVER-SHOW-ME-4321")
    for url in ("/settings/connections/", f"/settings/connections/{connection.pk}/"):
        body = owner_client.get(url).content.decode()
        assert "NEVER-SHOW-ME" not in body
        assert "4321" in body

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from project import crypto
from project.providers.models import ProviderConnection


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first key in FIELD_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            for connection in ProviderConnection.objects.select_for_update().all():
                fields = []
                if connection.api_key_encrypted:
                    connection.api_key_encrypted = crypto.reencrypt(connection.api_key_encrypted)
                    fields.append("api_key_encrypted")
                if connection.webhook_secret_encrypted:
                    connection.webhook_secret_encrypted = crypto.reencrypt(connection.webhook_secret_encrypted)
                    fields.append("webhook_secret_encrypted")
                if fields:
                    connection.save(update_fields=fields)
                    count += len(fields)
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secrets with the newest key."))

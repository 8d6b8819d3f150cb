"""Webhook deliveries are recorded so a replayed delivery changes nothing twice."""

from __future__ import annotations

from django.db import models

from project.providers.models import ProviderConnection


class WebhookDelivery(models.Model):
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="webhook_deliveries")
    webhook_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        db_table = "jobs_app_webhookdelivery"  # made before the platform owned webhooks
        constraints = [
            models.UniqueConstraint(fields=["connection", "webhook_id"], name="webhook_delivery_once"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.webhook_id}"

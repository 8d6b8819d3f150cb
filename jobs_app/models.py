"""Job data. Webhook deliveries are recorded so a replayed delivery changes nothing twice."""

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
        constraints = [
            models.UniqueConstraint(fields=["connection", "webhook_id"], name="webhook_delivery_once"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.webhook_id}"
from jobs_app import models_finetune  # noqa: E402,F401 - registers the fine-tuning models (own module, by concept)
from jobs_app.models_batches import Batch, BatchBuild, BatchGroup, BatchRequest  # noqa: E402, F401

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "project.webhooks"
    label = "webhooks"
    verbose_name = "Provider webhooks"

from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "project.providers"
    label = "providers"
    verbose_name = "Provider connections"

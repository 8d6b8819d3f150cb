from django.apps import AppConfig


class AssistantsAppConfig(AppConfig):
    name = "assistants_app"
    verbose_name = "Assistants and threads"

    def ready(self) -> None:
        from assistants_app import images  # noqa: F401 - its post_delete receiver removes a picture's files

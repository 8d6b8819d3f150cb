from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "project.teams"
    label = "teams"
    verbose_name = "Teams"

    def ready(self) -> None:
        # Load the Celery app in every Django process so shared tasks use its settings.
        import project.celery  # noqa: F401

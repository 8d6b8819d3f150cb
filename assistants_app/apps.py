from django.apps import AppConfig


class AssistantsAppConfig(AppConfig):
    name = "assistants_app"
    verbose_name = "Assistants and threads"

    def ready(self) -> None:
        # Imported here, once the models are loaded: images' post_delete receiver removes
        # a picture's files; the tasks module registers chat's tasks with Celery in every
        # process, so services can send them by name (project.queue).
        from assistants_app import images, tasks  # noqa: F401
        from project.periodic import periodic_task_register

        # A chat run whose worker died is re-queued or failed within about a minute and a half.
        periodic_task_register("chat-recover-stale-runs", task="assistants_app.runs_recover_stale", seconds=30.0)

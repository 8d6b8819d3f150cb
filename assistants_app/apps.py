from django.apps import AppConfig


class AssistantsAppConfig(AppConfig):
    name = "assistants_app"
    verbose_name = "Assistants and threads"

    def ready(self) -> None:
        # Imported here, once the models are loaded: images' post_delete receiver removes
        # a picture's files; the tasks module registers chat's tasks with Celery in every
        # process, so services can send them by name (project.queue).
        from assistants_app import images, tasks  # noqa: F401
        from assistants_app.services import response_webhook_received
        from project.periodic import periodic_task_register
        from project.webhooks.registry import register_webhook_handler

        # A chat run whose worker died is re-queued or failed within about a minute and a half.
        periodic_task_register("chat-recover-stale-runs", task="assistants_app.runs_recover_stale", seconds=30.0)
        # Background responses whose stream could not be followed are fetched when due; the
        # ticks are short because the first looks come a second apart (responses_poll).
        periodic_task_register("chat-poll-background-responses", task="assistants_app.responses_poll_due",
                               seconds=2.0)
        # A background response that ended: the run polling it is fetched at once.
        register_webhook_handler("response.", response_webhook_received)

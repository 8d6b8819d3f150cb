from django.apps import AppConfig


class JobsAppConfig(AppConfig):
    name = "jobs_app"
    verbose_name = "Fine-tuning and batch jobs"

    def ready(self) -> None:
        from jobs_app.batches import tasks  # noqa: F401 - registers the batch tasks with Celery
        from jobs_app.batches.sync import batch_webhook_received
        from jobs_app.webhooks import register_webhook_handler

        register_webhook_handler("batch.", batch_webhook_received)

from django.apps import AppConfig


class JobsAppConfig(AppConfig):
    name = "jobs_app"
    verbose_name = "Fine-tuning and batch jobs"

    def ready(self) -> None:
        from jobs_app.batches import tasks as batch_tasks  # noqa: F401 - registers the batch tasks with Celery
        from jobs_app.batches.sync import batch_webhook_received
        from jobs_app.finetune import tasks as finetune_tasks  # noqa: F401 - registers the fine-tuning tasks with Celery
        from jobs_app.finetune.usage import finetune_file_usages
        from jobs_app.finetune.webhooks import handle_fine_tuning_event
        from jobs_app.webhooks import register_webhook_handler
        from project.files.usage import register_file_usage

        register_webhook_handler("batch.", batch_webhook_received)
        register_webhook_handler("fine_tuning.job.", handle_fine_tuning_event)
        register_file_usage(finetune_file_usages)

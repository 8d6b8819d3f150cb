from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "jobs_app.batches"
    label = "batches"
    verbose_name = "Batch API jobs"

    def ready(self) -> None:
        # Imported here, once the models are loaded: the tasks module registers the
        # batch tasks with Celery in every process, so services can send them by name.
        from jobs_app.batches import tasks  # noqa: F401
        from jobs_app.batches.sync import batch_webhook_received
        from jobs_app.batches.usage import batch_file_usages
        from project.files.usage import register_file_usage
        from project.periodic import periodic_task_register
        from project.webhooks.registry import register_webhook_handler

        register_webhook_handler("batch.", batch_webhook_received)
        register_file_usage(batch_file_usages)
        # One list call per connection with active batches; finished batches are not polled.
        periodic_task_register("batches-sync", task="jobs_app.batches.tasks.batches_sync_tick", seconds=15.0)

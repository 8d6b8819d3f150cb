from django.apps import AppConfig


class JobsHistoryConfig(AppConfig):
    """Only the migration history of the tables that batches and fine-tuning were made
    with, when they were one app. The models now belong to jobs_app.batches,
    jobs_app.finetune and the platform (webhooks, notifications), on the same tables;
    this app stays installed so a database migrated before the split moves on cleanly."""

    name = "jobs_app"
    label = "jobs_app"
    verbose_name = "Fine-tuning and batch jobs (migration history)"

from django.apps import AppConfig


class FinetuneConfig(AppConfig):
    name = "jobs_app.finetune"
    label = "finetune"
    verbose_name = "Fine-tuning jobs"

    def ready(self) -> None:
        # Imported here, once the models are loaded: the tasks module registers the
        # fine-tuning tasks with Celery in every process, so services can send them by name.
        from jobs_app.finetune import tasks  # noqa: F401
        from jobs_app.finetune.selectors import finetune_team_model, finetune_team_models
        from jobs_app.finetune.usage import finetune_file_usages
        from jobs_app.finetune.webhooks import handle_fine_tuning_event
        from project.files.usage import register_file_usage
        from project.periodic import periodic_task_register
        from project.providers.team_models import register_team_model_source, register_team_models_lister
        from project.webhooks.registry import register_webhook_handler

        register_webhook_handler("fine_tuning.job.", handle_fine_tuning_event)
        register_file_usage(finetune_file_usages)
        register_team_model_source(finetune_team_model)
        register_team_models_lister(finetune_team_models)
        # One list call per connection with active fine-tune jobs; backoff is per connection.
        periodic_task_register("finetune-sync", task="jobs_app.finetune.tasks.finetune_sync_tick_task", seconds=30.0)
        # Job creations whose worker died: adopted when the provider made the job, else sent again.
        periodic_task_register("finetune-submissions-recover",
                               task="jobs_app.finetune.tasks.finetune_submissions_recover_task", seconds=60.0)

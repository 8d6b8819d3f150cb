from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals_app"
    verbose_name = "Evals"

    def ready(self) -> None:
        # The tasks module registers the eval tasks with Celery in every process, so
        # services can send them by name.
        from evals_app import tasks  # noqa: F401
        from evals_app.selectors import version_eval_results
        from evals_app.usage import eval_file_usages
        from project.files.usage import register_file_usage
        from project.periodic import periodic_task_register
        from project.version_results import register_version_results_source

        register_version_results_source(version_eval_results)
        register_file_usage(eval_file_usages)
        periodic_task_register("evals-recover-stale-runs", task="evals_app.runs_recover_stale", seconds=60.0)
        # Runs sent through the Batch API: one retrieve per running batch; finished ones are collected.
        periodic_task_register("evals-batch-runs-sync", task="evals_app.batch_runs_sync_tick", seconds=15.0)

from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals_app"
    verbose_name = "Evals"

    def ready(self) -> None:
        # The tasks module registers the eval tasks with Celery in every process, so
        # services can send them by name.
        from evals_app import tasks  # noqa: F401
        from evals_app.selectors import team_eval_spend, version_eval_results
        from project.periodic import periodic_task_register
        from project.spend.registry import register_spend_source
        from project.version_results import register_version_results_source

        register_spend_source("evals", team_eval_spend, order=30)
        register_version_results_source(version_eval_results)
        periodic_task_register("evals-recover-stale-runs", task="evals_app.runs_recover_stale", seconds=60.0)

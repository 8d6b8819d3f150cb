from django.apps import AppConfig


class SpendConfig(AppConfig):
    name = "project.spend"
    label = "spend"
    verbose_name = "Spend: the cost ledger, budgets"

    def ready(self) -> None:
        # Imported here, once the models are loaded: registers the sweep with Celery.
        from project.periodic import periodic_task_register
        from project.spend import tasks  # noqa: F401

        # Work whose worker died for good stops holding budget soon after its reservation ends.
        periodic_task_register("spend-reservations-expire", task="project.spend.tasks.reservations_expire_task",
                               seconds=5 * 60)

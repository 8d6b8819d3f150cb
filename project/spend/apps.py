from django.apps import AppConfig


class SpendConfig(AppConfig):
    name = "project.spend"
    label = "spend"
    verbose_name = "Spend: the cost ledger, budgets"

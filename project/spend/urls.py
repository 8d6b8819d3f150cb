from django.urls import path

from project.spend import views

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("usage/export.csv", views.usage_export, name="usage_export"),
    path("usage/reconciliation/", views.reconciliation, name="usage_reconciliation"),
    path("usage/budgets/", views.budget_save_view, name="budget_save"),
    path("usage/budgets/<int:budget_id>/delete/", views.budget_delete_view, name="budget_delete"),
]

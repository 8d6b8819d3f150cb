from django.urls import include, path

from jobs_app import views, webhooks

urlpatterns = [
    path("fine-tuning/", views.finetune_list, name="finetune_list"),
    path("", include("jobs_app.batches.urls")),
    path("webhooks/<uuid:public_id>/", webhooks.webhook_receive, name="webhook_receive"),
]

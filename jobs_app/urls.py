from django.urls import include, path

from jobs_app import webhooks

urlpatterns = [
    path("", include("jobs_app.finetune.urls")),
    path("", include("jobs_app.batches.urls")),
    path("webhooks/<uuid:public_id>/", webhooks.webhook_receive, name="webhook_receive"),
]

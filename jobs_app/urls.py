from django.urls import include, path

from jobs_app import views, webhooks

urlpatterns = [
    path("", include("jobs_app.finetune.urls")),
    path("batches/", views.batch_list, name="batch_list"),
    path("webhooks/<uuid:public_id>/", webhooks.webhook_receive, name="webhook_receive"),
]

from django.urls import path

from jobs_app import views, webhooks

urlpatterns = [
    path("fine-tuning/", views.finetune_list, name="finetune_list"),
    path("batches/", views.batch_list, name="batch_list"),
    path("webhooks/<uuid:public_id>/", webhooks.webhook_receive, name="webhook_receive"),
]

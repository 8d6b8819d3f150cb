from django.urls import path

from jobs_app.finetune import views

urlpatterns = [
    path("fine-tuning/", views.finetune_list, name="finetune_list"),
    path("fine-tuning/datasets/new/", views.dataset_upload_view, name="finetune_dataset_upload"),
    path("fine-tuning/datasets/<int:dataset_id>/", views.dataset_detail, name="finetune_dataset_detail"),
    path("fine-tuning/new/", views.job_create, name="finetune_job_create"),
    path("fine-tuning/import/", views.job_import, name="finetune_job_import"),
    path("fine-tuning/jobs/<int:job_id>/", views.job_detail, name="finetune_job_detail"),
    path("fine-tuning/jobs/<int:job_id>/cancel/", views.job_action, {"action": "cancel"}, name="finetune_job_cancel"),
    path("fine-tuning/jobs/<int:job_id>/pause/", views.job_action, {"action": "pause"}, name="finetune_job_pause"),
    path("fine-tuning/jobs/<int:job_id>/resume/", views.job_action, {"action": "resume"}, name="finetune_job_resume"),
]

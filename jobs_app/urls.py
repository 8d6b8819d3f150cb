from django.urls import path

from jobs_app import views

urlpatterns = [
    path("fine-tuning/", views.finetune_list, name="finetune_list"),
    path("batches/", views.batch_list, name="batch_list"),
]

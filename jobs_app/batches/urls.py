from django.urls import path

from jobs_app.batches import views

urlpatterns = [
    path("batches/", views.batch_list, name="batch_list"),
    path("batches/new/", views.batch_new, name="batch_new"),
    path("batches/from-threads/", views.batch_from_threads, name="batch_from_threads"),
    path("batches/checks/<int:build_id>/", views.batch_build_detail, name="batch_build_detail"),
    path("batches/<int:group_id>/", views.batch_detail, name="batch_detail"),
    path("batches/<int:group_id>/submit/", views.batch_submit, name="batch_submit"),
    path("batches/<int:group_id>/check-submit/", views.batch_check_submit, name="batch_check_submit"),
    path("batches/<int:group_id>/discard/", views.batch_discard, name="batch_discard"),
    path("batches/<int:group_id>/cancel/", views.batch_cancel, name="batch_cancel"),
    path("batches/<int:group_id>/retry-failed/", views.batch_retry_failed, name="batch_retry_failed"),
    path("batches/<int:group_id>/results/", views.batch_results, name="batch_results"),
    path("batches/<int:group_id>/results.csv", views.batch_download_csv, name="batch_download_csv"),
    path("batches/<int:group_id>/results.jsonl", views.batch_download_jsonl, name="batch_download_jsonl"),
]

from django.urls import path

from evals_app import views

urlpatterns = [
    path("evals/", views.eval_home, name="eval_home"),
    path("evals/shutdowns/", views.eval_shutdowns, name="eval_shutdowns"),
    path("evals/sets/<int:set_id>/", views.eval_set_detail, name="eval_set_detail"),
    path("evals/sets/<int:set_id>/from-threads/", views.eval_set_threads, name="eval_set_threads"),
    path("evals/sets/<int:set_id>/upload/", views.eval_set_upload, name="eval_set_upload"),
    path("evals/sets/<int:set_id>/cases/remove/", views.eval_case_remove, name="eval_case_remove"),
    path("evals/sets/<int:set_id>/graders/add/", views.eval_grader_add, name="eval_grader_add"),
    path("evals/sets/<int:set_id>/graders/remove/", views.eval_grader_remove, name="eval_grader_remove"),
    path("evals/sets/<int:set_id>/threshold/", views.eval_threshold, name="eval_threshold"),
    path("evals/sets/<int:set_id>/run/", views.eval_run_new, name="eval_run_new"),
    path("evals/runs/<int:run_id>/", views.eval_run_detail, name="eval_run_detail"),
    path("evals/runs/<int:run_id>/results.csv", views.eval_run_csv, name="eval_run_csv"),
    path("evals/runs/<int:run_id>/results.jsonl", views.eval_run_jsonl, name="eval_run_jsonl"),
    path("evals/runs/<int:run_id>/rerun-failed/", views.eval_run_rerun, name="eval_run_rerun"),
    path("evals/targets/<int:target_id>/switch/", views.eval_switch, name="eval_switch"),
    path("evals/migrate/<int:assistant_id>/", views.eval_migrate, name="eval_migrate"),
]

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from project.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("project.teams.urls")),
    path("", include("project.providers.urls")),
    path("", include("project.files.urls")),
    path("", include("project.webhooks.urls")),
    path("", include("project.notifications.urls")),
    path("", include("project.spend.urls")),
    path("", include("assistants_app.urls")),
    path("", include("jobs_app.finetune.urls")),
    path("", include("jobs_app.batches.urls")),
    path("", include("evals_app.urls")),
    path("", include("search_app.urls")),
]

# A page that fails because PostgreSQL is out of reach says so (503), not "something went wrong".
handler500 = "project.outages.server_error"

from django.urls import path

from search_app import views

urlpatterns = [
    path("search/", views.message_search, name="message_search"),
    path("search/similar/<int:message_id>/", views.message_similar, name="message_similar"),
    path("settings/search/", views.search_settings, name="search_settings"),
    path("settings/search/backfill/", views.backfill_start, name="search_backfill_start"),
    path("settings/search/backfill/<int:backfill_id>/", views.backfill_progress, name="search_backfill_progress"),
    path("settings/search/backfill/<int:backfill_id>/pause/", views.backfill_pause, name="search_backfill_pause"),
    path("settings/search/backfill/<int:backfill_id>/resume/", views.backfill_resume, name="search_backfill_resume"),
]

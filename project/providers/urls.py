from __future__ import annotations

from django.urls import path

from project.providers import views, views_server

urlpatterns = [
    path("settings/connections/", views.connection_list, name="connection_list"),
    path("settings/connections/new/", views.connection_create, name="connection_create"),
    path("settings/connections/<int:connection_id>/", views.connection_edit, name="connection_edit"),
    path("settings/connections/<int:connection_id>/delete/", views.connection_delete, name="connection_delete"),
    path("settings/connections/<int:connection_id>/test/", views.connection_test, name="connection_test"),
    path("settings/connections/<int:connection_id>/server/", views_server.connection_server, name="connection_server"),
    path("settings/connections/<int:connection_id>/model-facts/", views_server.connection_model_facts,
         name="connection_model_facts"),
]

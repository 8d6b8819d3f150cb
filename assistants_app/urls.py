from django.urls import path

from assistants_app import views

urlpatterns = [
    path("assistants/", views.assistant_list, name="assistant_list"),
    path("threads/", views.thread_list, name="thread_list"),
    path("usage/", views.usage, name="usage"),
]

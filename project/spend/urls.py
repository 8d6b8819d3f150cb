from django.urls import path

from project.spend import views

urlpatterns = [
    path("usage/", views.usage, name="usage"),
]

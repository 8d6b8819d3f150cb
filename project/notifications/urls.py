from django.urls import path

from project.notifications import views

urlpatterns = [
    path("notifications/", views.notification_list, name="notification_list"),
]

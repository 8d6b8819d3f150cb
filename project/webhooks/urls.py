from django.urls import path

from project.webhooks import views

urlpatterns = [
    path("webhooks/<uuid:public_id>/", views.webhook_receive, name="webhook_receive"),
]

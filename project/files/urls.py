from django.urls import path

from project.files import views

urlpatterns = [path("files/", views.file_list, name="file_list")]

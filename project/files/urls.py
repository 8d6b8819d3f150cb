from django.urls import path

from project.files import views

urlpatterns = [
    path("files/", views.file_list, name="file_list"),
    path("files/upload/", views.file_upload_view, name="file_upload"),
    path("files/sync/", views.file_sync, name="file_sync"),
    path("files/sync/status/", views.file_sync_status, name="file_sync_status"),
    path("files/uploads/<int:request_id>/", views.upload_request_status, name="upload_request_status"),
    path("files/<int:file_id>/", views.file_detail, name="file_detail"),
    path("files/<int:file_id>/fetch/", views.file_fetch_view, name="file_fetch"),
    path("files/<int:file_id>/image/", views.file_image, name="file_image"),
    path("files/<int:file_id>/download/", views.file_download, name="file_download"),
    path("files/<int:file_id>/delete/", views.file_delete_view, name="file_delete"),
]

from django.urls import path

from assistants_app import views, views_compare, views_models, views_stream

urlpatterns = [
    path("assistants/", views.assistant_list, name="assistant_list"),
    path("assistants/new/", views.assistant_create, name="assistant_create"),
    path("assistants/guide/", views.model_guide, name="model_guide"),
    path("assistants/models/", views_models.assistant_model_picker, name="assistant_model_picker"),
    path("assistants/<int:assistant_id>/", views.assistant_detail, name="assistant_detail"),
    path("assistants/<int:assistant_id>/edit/", views.assistant_edit, name="assistant_edit"),
    path("assistants/<int:assistant_id>/duplicate/", views.assistant_duplicate, name="assistant_duplicate"),
    path("assistants/<int:assistant_id>/archive/", views.assistant_archive, name="assistant_archive"),
    path("assistants/<int:assistant_id>/threads/new/", views.thread_start, name="thread_start"),
    path("versions/<int:version_id>/diff/", views.version_diff, name="version_diff"),
    path("versions/<int:version_id>/rollback/", views.version_rollback, name="version_rollback"),
    path("threads/", views.thread_list, name="thread_list"),
    path("threads/new/", views_compare.thread_start_with_model, name="thread_start_with_model"),
    path("threads/<int:thread_id>/compare/", views_compare.thread_compare, name="thread_compare"),
    path("threads/<int:thread_id>/", views.thread_detail, name="thread_detail"),
    path("threads/<int:thread_id>/messages/", views.thread_post, name="thread_post"),
    path("threads/<int:thread_id>/export/", views.thread_export, name="thread_export"),
    path("threads/<int:thread_id>/delete/", views.thread_delete, name="thread_delete"),
    path("threads/<int:thread_id>/events/", views_stream.thread_events, name="thread_events"),
    path("runs/<int:run_id>/stop/", views.run_stop, name="run_stop"),
    path("tool-results/<int:message_id>/", views.tool_answer, name="tool_answer"),
    path("images/<int:image_id>/", views.chat_image, name="chat_image"),
]

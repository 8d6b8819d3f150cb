from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "project.files"
    label = "files"
    verbose_name = "Files"

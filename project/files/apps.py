from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "project.files"
    label = "files"
    verbose_name = "Files"

    def ready(self) -> None:
        # Imported here, once the models are loaded: registers the file tasks with Celery
        # in every process, so services can send them by name (project.queue).
        from project.files import tasks  # noqa: F401
        from project.periodic import periodic_task_register

        # Files made or deleted elsewhere show up (imported / missing) within the hour.
        periodic_task_register("files-sync-all", task="project.files.tasks.files_sync_all_task", seconds=60 * 60)
        periodic_task_register("files-reap-uploads", task="project.files.tasks.files_reap_uploads_task", seconds=30 * 60)

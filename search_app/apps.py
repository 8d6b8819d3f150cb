from django.apps import AppConfig


class SearchAppConfig(AppConfig):
    name = "search_app"
    verbose_name = "Search by meaning"

    def ready(self) -> None:
        # The tasks module registers the feature's tasks in every process; the signal queues
        # each saved message for embedding (chat does not know this feature exists); the
        # thread list and the built-in tool find the searches through the platform's registry.
        from django.db.models.signals import post_save

        from assistants_app.conversation import Message
        from project.message_search import register_message_search
        from search_app import tasks  # noqa: F401
        from search_app.search import team_search_modes, tool_search
        from search_app.signals import message_saved_receiver

        post_save.connect(message_saved_receiver, sender=Message, dispatch_uid="search_app.message_saved")
        register_message_search(modes=team_search_modes, tool_search=tool_search)

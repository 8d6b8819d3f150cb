from __future__ import annotations

from typing import Any

from assistants_app.conversation import Message
from search_app.services import message_saved


def message_saved_receiver(sender: type[Message], instance: Message, raw: bool = False, **kwargs: Any) -> None:
    if not raw:  # fixtures load rows as they are
        message_saved(instance)

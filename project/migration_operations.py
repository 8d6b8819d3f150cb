"""Operations that migrations share. Migrations are history: change nothing here that an
applied migration relies on; add a new function instead."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import migrations


def _content_types_mover(models: Sequence[str], source: str, target: str) -> Callable[[Any, Any], None]:
    def move(apps: Any, schema_editor: Any) -> None:
        content_type = apps.get_model("contenttypes", "ContentType")
        taken = set(content_type.objects.filter(app_label=target).values_list("model", flat=True))
        content_type.objects.filter(app_label=source, model__in=[m for m in models if m not in taken]).update(
            app_label=target)

    return move


def content_types_moved(models: Sequence[str], *, from_label: str, to_label: str) -> migrations.RunPython:
    """Models moved to another app on the same tables: their content types follow (and go
    back when the migration is reversed), so admin history and permissions stay attached.
    A content type the new app already has (made by post_migrate) is left where it is."""
    return migrations.RunPython(_content_types_mover(models, from_label, to_label),
                                _content_types_mover(models, to_label, from_label))

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe
from jsonschema import Draft202012Validator

from assistants_app.rendering import pretty_json, render_markdown
from project.user_input import loads_user_json

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    return mark_safe(render_markdown(text or ""))  # noqa: S308 - sanitised by nh3 in render_markdown


@register.filter
def as_json(text: str) -> str | None:
    return pretty_json(text or "")


@register.filter
def schema_problem(text: str, schema: dict[str, Any]) -> str:
    """Why a structured reply does not follow its schema ("" when it does)."""
    try:
        value = loads_user_json(text)
    except ValueError:
        return "The reply is not valid JSON."
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    return errors[0].message if errors else ""

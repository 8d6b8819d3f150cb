"""Showing a case's input on a page: the last user message as text, other parts named."""

from __future__ import annotations

from typing import Any

from django import template

from evals_app import graders

register = template.Library()


@register.filter
def case_question(messages: Any) -> str:
    return graders.case_question(messages)

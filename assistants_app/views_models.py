"""The assistant form's model picker: the chosen connection's models, swapped in when the
connection changes (so a llama.cpp connection never offers the sandbox's models)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render

from assistants_app.model_catalog import ModelChoice, model_choices
from project.providers.models import ProviderConnection
from project.providers.selectors import team_connection_get
from project.teams.access import TeamRequest, team_view
from project.user_input import parse_id

# What a new assistant starts with when its connection serves it.
PREFERRED_MODEL = "gpt-4.1-mini"


def picker_model(choices: list[ModelChoice], typed: str) -> str:
    """The model the picker shows: the one typed when the connection serves it (or when the
    list is unknown), else the preferred default if served, else the connection's first."""
    ids = [choice.id for choice in choices]
    if typed and (typed in ids or not ids or typed.startswith("ft:")):
        return typed
    if PREFERRED_MODEL in ids:
        return PREFERRED_MODEL
    return ids[0] if ids else typed


def picker_context(connection: ProviderConnection | None, typed: str) -> dict[str, Any]:
    choices, models_error = model_choices(connection)
    return {"choices": choices, "models_error": models_error, "picker_connection": connection,
            "model_value": picker_model(choices, typed) if not models_error else typed}


@team_view()
def assistant_model_picker(request: TeamRequest) -> HttpResponse:
    connection_id = parse_id(request.GET.get("connection"))
    connection = team_connection_get(team=request.team, connection_id=connection_id) if connection_id else None
    context = picker_context(connection, request.GET.get("model", "").strip())
    return render(request, "assistants_app/_model_picker.html", {**context, "oob": True})

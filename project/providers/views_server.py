"""A connection's server: what it was probed to support, its models with their facts, and
the admin's form to set a model's facts for this connection."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from project.providers.capabilities import capability_rows, connection_capabilities
from project.providers.client import ProviderError
from project.providers.connection_facts import connection_model, connection_model_facts_save, connection_model_list
from project.providers.model_facts_form import ModelFactsForm
from project.providers.remote_models import connection_models
from project.providers.selectors import team_connection_get
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role


@team_view()
def connection_server(request: TeamRequest, connection_id: int) -> HttpResponse:
    connection = team_connection_get(team=request.team, connection_id=connection_id)
    capabilities = connection_capabilities(connection)
    models_error = ""
    try:
        remote = connection_models(connection)
    except ProviderError as error:
        remote, models_error = [], error.message
    models = connection_model_list(connection, remote)
    return render(request, "providers/connection_server.html", {
        "connection": connection, "capabilities": capabilities, "rows": capability_rows(capabilities),
        "models": models, "models_error": models_error})


@team_view(Role.ADMIN)
def connection_model_facts(request: TeamRequest, connection_id: int) -> HttpResponse:
    connection = team_connection_get(team=request.team, connection_id=connection_id)
    model_id = (request.GET.get("model") or request.POST.get("model") or "").strip()[:200]
    if not model_id:
        raise Http404("Which model? Open this page from the connection's model list.")
    current = connection_model(connection, model_id)
    form = ModelFactsForm(request.POST or None, initial=ModelFactsForm.initial_from(current.saved))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        connection_model_facts_save(
            connection=connection, actor=request.user, model_id=model_id, context_window=data["context_window"],
            max_output_tokens=data["max_output_tokens"], input_price=data["input_price"],
            cached_input_price=data["cached_input_price"], output_price=data["output_price"], free=data["free"],
            encoding=data["encoding"])
        messages.success(request, f"Saved the facts of {model_id} on {connection.name}.")
        return redirect(reverse("connection_server", args=[connection.pk]))
    return render(request, "providers/connection_model_facts.html",
                  {"connection": connection, "model": current, "form": form})

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from project.providers import selectors, services
from project.providers.capabilities import capability_rows, connection_capabilities
from project.providers.forms import ConnectionForm
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role


@team_view()
def connection_list(request: TeamRequest) -> HttpResponse:
    return render(request, "providers/connection_list.html", {"connections": selectors.team_connections(team=request.team)})


@team_view(Role.ADMIN)
def connection_create(request: TeamRequest) -> HttpResponse:
    form = ConnectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        connection = services.connection_save(team=request.team, actor=request.user, **form.cleaned_data)
        messages.success(request, f"Connection {connection.name} saved. Test it to check the key and URL.")
        return redirect("connection_list")
    return render(request, "providers/connection_form.html", {"form": form})


@team_view(Role.ADMIN)
def connection_edit(request: TeamRequest, connection_id: int) -> HttpResponse:
    connection = selectors.team_connection_get(team=request.team, connection_id=connection_id)
    form = ConnectionForm(request.POST or None, instance=connection)
    if request.method == "POST" and form.is_valid():
        services.connection_save(team=request.team, actor=request.user, connection=connection, **form.cleaned_data)
        messages.success(request, f"Connection {connection.name} updated.")
        return redirect("connection_list")
    return render(request, "providers/connection_form.html", {"form": form, "connection": connection})


@team_view(Role.ADMIN)
@require_POST
def connection_delete(request: TeamRequest, connection_id: int) -> HttpResponse:
    connection = selectors.team_connection_get(team=request.team, connection_id=connection_id)
    services.connection_delete(connection=connection, actor=request.user)
    messages.success(request, f"Connection {connection.name} deleted.")
    return redirect("connection_list")


@team_view(Role.MEMBER)
@require_POST
def connection_test(request: TeamRequest, connection_id: int) -> HttpResponse:
    connection = selectors.team_connection_get(team=request.team, connection_id=connection_id)
    result = services.connection_test(connection=connection)
    rows = capability_rows(connection_capabilities(connection)) if result.ok else []
    context = {"connection": connection, "result": result, "lacking": [row.label for row in rows if row.ok is False]}
    if request.htmx:
        return render(request, "providers/connection_list.html#test_result", context)
    if result.ok:
        messages.success(request, f"{connection.name}: {result.message}")
    else:
        messages.error(request, f"{connection.name}: {result.message}")
    return redirect("connection_server" if request.POST.get("next") == "server" else "connection_list", *(
        [connection.pk] if request.POST.get("next") == "server" else []))

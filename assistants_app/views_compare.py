"""Chat with a given model, e.g. one a fine-tuning job made, and compare it side by side
with another (its base model): two threads that get the same messages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import reswap

from assistants_app import selectors, services
from assistants_app.model_catalog import model_choices
from assistants_app.models import Thread
from assistants_app.view_helpers import thread_view_context
from project.providers.models import ProviderConnection
from project.providers.selectors import team_connection_get, team_connections, team_default_connection
from project.providers.team_models import TeamModel, team_model_lookup
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role as TeamRole
from project.user_input import parse_id


def _id_param(data: QueryDict, name: str) -> int | None:
    raw = data.get(name, "")
    if not raw:
        return None
    value = parse_id(raw)  # "²" and ids past the database's range are not ids
    if value is None:
        raise Http404(f"Bad {name}.")
    return value


def _target(request: TeamRequest, data: QueryDict, model: str) -> tuple[TeamModel | None, ProviderConnection | None]:
    """Who made the model (when the team did) and the connection to chat on: the one asked
    for, else the one where the team made the model (a fine-tuned model lives only there),
    else the team's default. Another team's connection is a 404."""
    connection_id = _id_param(data, "connection")
    if connection_id is not None:
        connection = team_connection_get(team=request.team, connection_id=connection_id)
        return team_model_lookup(team=request.team, model=model, connection=connection), connection
    made = team_model_lookup(team=request.team, model=model)
    if made is not None:
        return made, made.connection
    return None, team_default_connection(team=request.team)


def _assistant_plans(request: TeamRequest, connection: ProviderConnection, models: list[str]) -> list[dict[str, Any]]:
    """For each model, the assistant a start would use: the one made for it before (reused),
    or the name of the one it would create. The confirm page says which, so nothing is
    made silently."""
    plans = []
    for model in models:
        name = services.model_assistant_name(team=request.team, connection=connection, model=model)
        existing = services.model_assistant_find(team=request.team, connection=connection, model=model, name=name)
        plans.append({"model": model, "name": name, "existing": existing})
    return plans


@team_view(TeamRole.MEMBER)
def thread_start_with_model(request: TeamRequest) -> HttpResponse:
    """GET asks for confirmation (a link never creates anything), or, without a model, offers
    a model (and one to compare it with) to pick; POST starts the thread(s)."""
    data = request.POST if request.method == "POST" else request.GET
    model, compare = data.get("model", "").strip()[:300], data.get("compare", "").strip()[:300]
    made, connection = _target(request, data, model)
    error = ""
    picking = False
    if connection is None:
        error = "This team has no provider connection; add one in Settings first."
    elif request.method == "POST":
        try:
            started = services.model_threads_start(team=request.team, actor=request.user, connection=connection,
                                                   model=model, compare_model=compare,
                                                   instructions=data.get("instructions", "").strip()[:20_000])
        except services.ChatError as failure:
            error = str(failure)
        else:
            if started.compare is None:
                return redirect("thread_detail", started.thread.pk)
            return redirect(compare_url(started.thread, started.compare))
    elif model:
        # Say now, not after the click, when the model cannot be used here.
        try:
            for wanted in filter(None, (model, compare)):
                services.chat_model_check(team=request.team, connection=connection, model=wanted)
        except services.ChatError as failure:
            error = str(failure)
    else:
        picking = True
    show_form = connection is not None and not error and not picking
    plans = _assistant_plans(request, connection, [m for m in (model, compare) if m]) \
        if show_form and connection is not None else []
    instructions = data.get("instructions")
    if instructions is None and plans and (existing := plans[0]["existing"]) and existing.current_version:
        # Starting again with the same model keeps what its assistant was told last time.
        instructions = existing.current_version.instructions
    choices = model_choices(connection)[0] if connection is not None and (picking or (show_form and not compare)) \
        else []
    context = {"model": model, "compare": compare, "made": made, "connection": connection, "error": error,
               "instructions": instructions or "", "picking": picking, "choices": choices,
               "connections": team_connections(team=request.team) if picking else [], "plans": plans}
    return render(request, "assistants_app/thread_start_model.html", context, status=400 if error else 200)


def compare_url(thread: Thread, other: Thread) -> str:
    return reverse("thread_compare", args=[thread.pk]) + "?" + urlencode({"with": other.pk})


@team_view()
def thread_compare(request: TeamRequest, thread_id: int) -> HttpResponse:
    """Two threads side by side; a POST sends one message to both (two runs, or none)."""
    thread = selectors.team_thread_get(team=request.team, thread_id=thread_id)
    data = request.POST if request.method == "POST" else request.GET
    other_id = parse_id(data.get("with"))
    if other_id is None or other_id == thread.pk:
        raise Http404("Compare with which thread?")
    other = selectors.team_thread_get(team=request.team, thread_id=other_id)
    error = ""
    if request.method == "POST":
        try:
            services.threads_post_message(threads=[thread, other], actor=request.user, text=data.get("text", ""))
        except services.ChatError as failure:
            error = str(failure)
            if request.htmx:
                return reswap(render(request, "assistants_app/_post_error.html", {"error": error}), "none")
        else:
            if not request.htmx:
                return redirect(compare_url(thread, other))
            # Each column's event stream brings the message and its live reply (the
            # "run" event), so the columns, and the connections they hold, stay as they
            # are; the answer only clears an earlier error.
            return reswap(HttpResponse('<div id="post-error" hx-swap-oob="true" aria-live="polite"></div>'), "none")
    context = {"thread": thread, "other": other, "error": error,
               "columns": [thread_view_context(thread), thread_view_context(other)]}
    return render(request, "assistants_app/thread_compare.html", context, status=400 if error else 200)

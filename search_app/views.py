from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from django.contrib import messages as flash
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from assistants_app.conversation import ThreadFilters, team_assistants
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role as TeamRole
from project.teams.selectors import team_members
from project.user_input import parse_id
from search_app import selectors, services
from search_app.forms import EmbeddingSettingsForm
from search_app.search import search_messages, similar_messages, team_search_modes
from search_app.vector_schema import MISSING_MESSAGE, vectors_ready

MAX_QUERY = 200


def _date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _filters(request: TeamRequest) -> ThreadFilters:
    return ThreadFilters(query=request.GET.get("q", "").strip()[:MAX_QUERY],
                         assistant_id=parse_id(request.GET.get("assistant")),
                         author_id=parse_id(request.GET.get("author")), since=_date(request.GET.get("since", "")),
                         until=_date(request.GET.get("until", "")))


def _results_page(request: TeamRequest, context: dict[str, object]) -> HttpResponse:
    context |= {"assistants": team_assistants(team=request.team), "members": team_members(team=request.team),
                "search": team_search_modes(request.team)}
    return render(request, "search_app/results.html", context)


@team_view()
def message_search(request: TeamRequest) -> HttpResponse:
    filters = _filters(request)
    if not filters.query:
        # Filters without words are the thread list's own listing.
        kept = {k: v for k, v in request.GET.items() if k in ("assistant", "author", "since", "until") and v}
        return redirect(reverse("thread_list") + (f"?{urlencode(kept)}" if kept else ""))
    outcome = search_messages(team=request.team, text=filters.query, mode=request.GET.get("mode", ""), filters=filters)
    return _results_page(request, {"filters": filters, "outcome": outcome, "similar_to": None})


@team_view()
def message_similar(request: TeamRequest, message_id: int) -> HttpResponse:
    message = selectors.team_message_get(team=request.team, message_id=message_id)
    filters = _filters(request)
    outcome = similar_messages(team=request.team, message=message, filters=filters)
    return _results_page(request, {"filters": filters, "outcome": outcome, "similar_to": message})


def _settings_context(request: TeamRequest, form: EmbeddingSettingsForm | None = None) -> dict[str, object]:
    team = request.team
    config = selectors.team_embedding_config(team=team)
    saved = selectors.team_embedding_settings(team=team)
    if form is None:
        initial = {"enabled": config.enabled, "connection": saved.connection_id if saved else None,
                   "model": config.model, "dimensions": config.dimensions}
        form = EmbeddingSettingsForm(initial=initial, connections=selectors.team_embedding_connections(team=team))
    return {"form": form, "config": config, "vectors_ready": vectors_ready(), "missing_message": MISSING_MESSAGE,
            "estimate": selectors.backfill_estimate(team=team, config=config),
            "embedded": selectors.embedded_message_count(team=team, config=config),
            "backfill": selectors.team_backfill_latest(team=team)}


@team_view()
def search_settings(request: TeamRequest) -> HttpResponse:
    form = None
    if request.method == "POST":
        if not request.membership.can_manage:
            raise PermissionDenied("Changing the search settings needs the admin role or higher.")
        form = EmbeddingSettingsForm(request.POST, connections=selectors.team_embedding_connections(team=request.team))
        if form.is_valid():
            data = form.cleaned_data
            changed = services.embedding_settings_save(team=request.team, actor=request.user, connection=data["connection"],
                                                       model=data["model"], dimensions=data["dimensions"],
                                                       enabled=data["enabled"])
            flash.success(request, "Saved. The model or size changed: messages need embedding again, see the new "
                                   "estimate below." if changed else "Saved.")
            return redirect("search_settings")
    return render(request, "search_app/settings.html", _settings_context(request, form))


@require_POST
@team_view(TeamRole.ADMIN)
def backfill_start(request: TeamRequest) -> HttpResponse:
    try:
        services.backfill_start(team=request.team, actor=request.user)
    except services.SearchSettingsError as error:
        flash.error(request, str(error))
    return redirect("search_settings")


@team_view()
def backfill_progress(request: TeamRequest, backfill_id: int) -> HttpResponse:
    backfill = selectors.team_backfill_get(team=request.team, backfill_id=backfill_id)
    return render(request, "search_app/_backfill.html", {"backfill": backfill})


@require_POST
@team_view(TeamRole.ADMIN)
def backfill_pause(request: TeamRequest, backfill_id: int) -> HttpResponse:
    backfill = selectors.team_backfill_get(team=request.team, backfill_id=backfill_id)
    if not services.backfill_pause(backfill=backfill, actor=request.user):
        flash.error(request, "Only a running backfill can be paused.")
    return redirect("search_settings")


@require_POST
@team_view(TeamRole.ADMIN)
def backfill_resume(request: TeamRequest, backfill_id: int) -> HttpResponse:
    backfill = selectors.team_backfill_get(team=request.team, backfill_id=backfill_id)
    if not services.backfill_resume(backfill=backfill, actor=request.user):
        flash.error(request, "Only a paused or failed backfill can be resumed (a superseded one: start a new one).")
    return redirect("search_settings")

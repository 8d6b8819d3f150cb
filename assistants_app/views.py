from __future__ import annotations

import difflib
import json
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages as flash
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from assistants_app import selectors, services
from assistants_app.exports import export_json, export_jsonl, export_markdown
from assistants_app.forms import AssistantForm
from assistants_app.model_catalog import TASKS, Retirement, model_choices, model_retirement, recommend
from assistants_app.models import Assistant, AssistantVersion
from assistants_app.view_helpers import PostedRunBlock, live_updates_paused, run_group_context, thread_view_context
from assistants_app.views_models import picker_context
from project.files.responses import picture_response
from project.files.services import FileRejected
from project.message_search import search_modes
from project.outages import REDIS
from project.providers.client import ProviderError
from project.providers.selectors import team_connections, team_default_connection
from project.server_timing import server_timing, timed
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role as TeamRole
from project.teams.selectors import team_members
from project.user_input import parse_id
from project.version_results import version_results

# -- assistants -----------------------------------------------------------------------------

@team_view()
def assistant_list(request: TeamRequest) -> HttpResponse:
    archived = request.GET.get("archived") == "1"
    assistants = selectors.team_assistants(team=request.team, archived=archived)
    rows = [(assistant, _retiring(assistant)) for assistant in assistants]
    return render(request, "assistants_app/assistant_list.html", {"rows": rows, "archived": archived})


def _retiring(assistant: Assistant) -> Retirement | None:
    """The current version's model shutdown when it is past or within 90 days, for a mark or a banner."""
    version = assistant.current_version
    retirement = model_retirement(version.model) if version is not None else None
    return retirement if retirement is not None and retirement.soon else None


def _form_page(request: TeamRequest, form: AssistantForm, assistant: Any = None) -> HttpResponse:
    connection = form.chosen_connection() or (assistant.connection if assistant else None) or team_default_connection(
        team=request.team)
    typed = str(form["model"].value() or "").strip()
    # A new assistant starts on a model its connection serves; otherwise what was typed or saved shows.
    context = picker_context(connection, typed)
    if form.is_bound or assistant is not None:
        context["model_value"] = typed
    return render(request, "assistants_app/assistant_form.html",
                  {"form": form, "assistant": assistant, "model_errors": form["model"].errors, **context})


@team_view(TeamRole.MEMBER)
def assistant_create(request: TeamRequest) -> HttpResponse:
    connections = team_connections(team=request.team)
    if request.method == "POST":
        form = AssistantForm(request.POST, connections=connections)
        if form.is_valid():
            assistant = services.assistant_create(
                team=request.team, actor=request.user, name=form.cleaned_data["name"],
                description=form.cleaned_data["description"], connection=form.cleaned_data["connection"],
                config=form.config())
            flash.success(request, f"Assistant {assistant.name} created (version 1).")
            return redirect("assistant_detail", assistant.pk)
    else:
        default = team_default_connection(team=request.team) or connections.first()
        form = AssistantForm(connections=connections, initial={"connection": default.pk if default else None,
                                                                "model": request.GET.get("model", "")})
    return _form_page(request, form)


@team_view()
def assistant_detail(request: TeamRequest, assistant_id: int) -> HttpResponse:
    assistant = selectors.team_assistant_get(team=request.team, assistant_id=assistant_id)
    versions = list(selectors.assistant_versions(assistant=assistant))
    # Other features' figures per version (evals' pass rates), through the platform's registry.
    results = version_results(team=request.team, version_ids=[v.pk for v in versions])
    rows = [(version, results.get(version.pk, [])) for version in versions]
    return render(request, "assistants_app/assistant_detail.html",
                  {"assistant": assistant, "version_rows": rows, "retiring": _retiring(assistant)})


@team_view(TeamRole.MEMBER)
def assistant_edit(request: TeamRequest, assistant_id: int) -> HttpResponse:
    assistant = selectors.team_assistant_get(team=request.team, assistant_id=assistant_id)
    connections = team_connections(team=request.team)
    if request.method == "POST":
        form = AssistantForm(request.POST, connections=connections)
        if form.is_valid():
            version = services.assistant_update(
                assistant=assistant, actor=request.user, name=form.cleaned_data["name"],
                description=form.cleaned_data["description"], connection=form.cleaned_data["connection"],
                config=form.config())
            flash.success(request, f"Saved as version {version.number}." if version else "Saved (no new version: "
                          "the model settings did not change).")
            return redirect("assistant_detail", assistant.pk)
    else:
        form = AssistantForm(connections=connections, initial=AssistantForm.initial_for(assistant))
    return _form_page(request, form, assistant)


@require_POST
@team_view(TeamRole.MEMBER)
def assistant_duplicate(request: TeamRequest, assistant_id: int) -> HttpResponse:
    assistant = selectors.team_assistant_get(team=request.team, assistant_id=assistant_id)
    copy = services.assistant_duplicate(assistant=assistant, actor=request.user)
    flash.success(request, f"Duplicated as {copy.name}.")
    return redirect("assistant_detail", copy.pk)


@require_POST
@team_view(TeamRole.MEMBER)
def assistant_archive(request: TeamRequest, assistant_id: int) -> HttpResponse:
    assistant = selectors.team_assistant_get(team=request.team, assistant_id=assistant_id)
    archive = assistant.archived_at is None
    services.assistant_archive(assistant=assistant, actor=request.user, archived=archive)
    flash.success(request, f"{assistant.name} {'archived' if archive else 'restored'}.")
    return redirect("assistant_detail", assistant.pk)


def _version_lines(version: AssistantVersion) -> list[str]:
    def shown(value: object) -> str:
        return "not set" if value is None or value == "" else str(value)

    lines = [f"model: {version.model}", f"temperature: {shown(version.temperature)}", f"top_p: {shown(version.top_p)}",
             f"reasoning_effort: {shown(version.reasoning_effort)}",
             f"max_output_tokens: {shown(version.max_output_tokens)}", "instructions:"]
    lines += [f"  {line}" for line in version.instructions.splitlines()]
    lines += ["tools:"] + [f"  {line}" for line in json.dumps(version.tools, indent=2).splitlines()]
    lines += ["response_schema:"] + [f"  {line}" for line in json.dumps(version.response_schema, indent=2).splitlines()]
    lines.append(f"long_running: {'yes' if version.long_running else 'no'}")
    return lines


@team_view()
def version_diff(request: TeamRequest, version_id: int) -> HttpResponse:
    version = selectors.team_version_get(team=request.team, version_id=version_id)
    previous = version.assistant.versions.filter(number__lt=version.number).order_by("-number").first()
    before = _version_lines(previous) if previous else []
    diff = list(difflib.unified_diff(before, _version_lines(version), lineterm="", n=2,
                                     fromfile=f"v{previous.number}" if previous else "(nothing)",
                                     tofile=f"v{version.number}"))
    rows = [("add" if line.startswith("+") else "del" if line.startswith("-") else "ctx", line) for line in diff]
    results = version_results(team=request.team, version_ids=[version.pk]).get(version.pk, [])
    return render(request, "assistants_app/version_diff.html",
                  {"version": version, "previous": previous, "rows": rows, "assistant": version.assistant,
                   "results": results})


@require_POST
@team_view(TeamRole.MEMBER)
def version_rollback(request: TeamRequest, version_id: int) -> HttpResponse:
    version = selectors.team_version_get(team=request.team, version_id=version_id)
    new = services.assistant_rollback(assistant=version.assistant, version=version, actor=request.user)
    flash.success(request, f"Rolled back: version {new.number} is a copy of version {version.number}.")
    return redirect("assistant_detail", version.assistant_id)


@team_view()
def model_guide(request: TeamRequest) -> HttpResponse:
    choices, models_error = model_choices(team_default_connection(team=request.team))
    result = None
    errors: list[str] = []
    params = {"task": request.GET.get("task", "chat"), "latency": request.GET.get("latency", "medium"),
              "budget": request.GET.get("budget", "50"), "input": request.GET.get("input", "20000000"),
              "output": request.GET.get("output", "5000000")}
    if "task" in request.GET:
        try:
            budget = Decimal(params["budget"])
            input_tokens, output_tokens = int(params["input"]), int(params["output"])
            if budget < 0 or input_tokens < 0 or output_tokens < 0:
                raise ValueError
        except (InvalidOperation, ValueError):
            errors.append("Budget and token counts must be positive numbers.")
        else:
            result = recommend(choices=choices, task=params["task"], latency=params["latency"], budget_usd=budget,
                               input_tokens=input_tokens, output_tokens=output_tokens)
    return render(request, "assistants_app/model_guide.html",
                  {"tasks": TASKS, "params": params, "result": result, "errors": errors, "models_error": models_error})


# -- threads ------------------------------------------------------------------------------------

def _parse_date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@team_view()
def thread_list(request: TeamRequest) -> HttpResponse:
    filters = selectors.ThreadFilters(
        query=request.GET.get("q", "").strip()[:200], assistant_id=parse_id(request.GET.get("assistant")),
        author_id=parse_id(request.GET.get("author")), since=_parse_date(request.GET.get("since", "")),
        until=_parse_date(request.GET.get("until", "")))
    page = selectors.thread_list_page(team=request.team, filters=filters, cursor=request.GET.get("cursor", ""))
    # Headlines are escaped message text with <mark> added by the selector.
    rows = [(thread, mark_safe(page.headlines.get(thread.pk, ""))) for thread in page.threads]  # noqa: S308
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {"rows": rows, "page": page, "filters": filters, "next_query": query.urlencode(),
               "assistants": selectors.team_assistants(team=request.team),
               "members": team_members(team=request.team),
               # The search feature, when installed, answers the search box (modes: keyword, semantic, hybrid).
               "search": search_modes(team=request.team)}
    fragment = "#thread_rows" if request.htmx and request.GET.get("cursor") else ""
    return render(request, "assistants_app/thread_list.html" + fragment, context)


@require_POST
@team_view(TeamRole.MEMBER)
def thread_start(request: TeamRequest, assistant_id: int) -> HttpResponse:
    assistant = selectors.team_assistant_get(team=request.team, assistant_id=assistant_id)
    try:
        thread = services.thread_create(team=request.team, assistant=assistant, actor=request.user)
    except services.ChatError as error:
        flash.error(request, str(error))
        return redirect("assistant_detail", assistant.pk)
    return redirect("thread_detail", thread.pk)


@team_view()
def thread_detail(request: TeamRequest, thread_id: int) -> HttpResponse:
    thread = selectors.team_thread_get(team=request.team, thread_id=thread_id)
    before = parse_id(request.GET.get("before"))
    context = thread_view_context(thread, before=before)
    if request.htmx and before is not None:
        return render(request, "assistants_app/thread_detail.html#older", context)
    return render(request, "assistants_app/thread_detail.html", context)


@team_view()
def chat_image(request: TeamRequest, image_id: int) -> HttpResponse:
    """A chat picture, inline; ?size=thumb for the thumbnail the thread page shows."""
    image = selectors.team_chat_image_get(team=request.team, image_id=image_id)
    thumb = request.GET.get("size") == "thumb"
    stored = image.thumbnail if thumb else image.image
    content_type = ("image/png" if (stored.name or "").endswith(".png") else "image/jpeg") if thumb else image.mime
    # The same id always names the same bytes.
    return picture_response(stored.open("rb"), content_type=content_type, max_age=86400, immutable=True)


@require_POST
@team_view(TeamRole.MEMBER)
@server_timing
def thread_post(request: TeamRequest, thread_id: int) -> HttpResponse:
    with timed("authorise"):
        thread = selectors.team_thread_get(team=request.team, thread_id=thread_id)
    try:
        with timed("store"):
            block = PostedRunBlock()
            message, run = services.thread_post(thread=thread, actor=request.user, text=request.POST.get("text", ""),
                                                images=request.FILES.getlist("images"), files=request.FILES.getlist("files"),
                                                run_block=block)
    except (services.ChatError, FileRejected) as error:
        if request.htmx:
            return render(request, "assistants_app/_post_error.html", {"error": str(error)}, status=200)
        flash.error(request, str(error))
        return redirect("thread_detail", thread.pk)
    except ProviderError as error:
        flash.error(request, error.message)
        if request.htmx:
            return render(request, "assistants_app/_post_error.html", {"error": error.message})
        return redirect("thread_detail", thread.pk)
    if request.htmx:
        # The block its announcement carried (rendered once committed); a run just made
        # has no messages yet: no need to ask the database.
        with timed("render"):
            return render(request, "assistants_app/_posted.html", {
                "run_started": block.html or block(message, run), "live_paused": live_updates_paused(),
                "live_service": REDIS})
    return redirect("thread_detail", thread.pk)


@require_POST
@team_view(TeamRole.MEMBER)
def run_stop(request: TeamRequest, run_id: int) -> HttpResponse:
    run = selectors.team_run_get(team=request.team, run_id=run_id)
    try:
        services.run_cancel(run=run, actor=request.user)
    except services.ChatError as error:
        if request.htmx:
            return render(request, "assistants_app/_post_error.html", {"error": str(error)})
        flash.error(request, str(error))
    if request.htmx:
        return HttpResponse(status=204)
    return redirect("thread_detail", run.thread_id)


@require_POST
@team_view(TeamRole.MEMBER)
def tool_answer(request: TeamRequest, message_id: int) -> HttpResponse:
    message = selectors.team_message_get(team=request.team, message_id=message_id)
    if message.run is None:
        raise Http404("No run for this message.")
    try:
        run = services.tool_answer(run=message.run, message=message, actor=request.user,
                                   answer=request.POST.get("answer", ""))
    except services.ChatError as error:
        flash.error(request, str(error))
        return redirect("thread_detail", message.thread_id)
    if request.htmx:
        return render(request, "assistants_app/_run_group.html", run_group_context(run))
    return redirect("thread_detail", message.thread_id)


@team_view()
def thread_export(request: TeamRequest, thread_id: int) -> HttpResponse:
    thread = selectors.team_thread_get(team=request.team, thread_id=thread_id)
    kind = request.GET.get("format", "md")
    messages = list(selectors.thread_all_messages(thread=thread))
    runs = list(selectors.thread_all_runs(thread=thread))
    exporters = {"md": (export_markdown, "text/markdown", "md"), "json": (export_json, "application/json", "json"),
                 "jsonl": (export_jsonl, "application/jsonl", "jsonl")}
    if kind not in exporters:
        raise Http404("Unknown export format.")
    exporter, content_type, extension = exporters[kind]
    response = HttpResponse(exporter(thread, messages, runs), content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="thread-{thread.pk}.{extension}"'
    return response


@team_view(TeamRole.MEMBER)
def thread_delete(request: TeamRequest, thread_id: int) -> HttpResponse:
    thread = selectors.team_thread_get(team=request.team, thread_id=thread_id)
    if request.method == "POST":
        if request.POST.get("confirm") != thread.title and request.POST.get("confirm") != "delete":
            flash.error(request, "Type delete to confirm.")
            return redirect("thread_delete", thread.pk)
        services.thread_delete(thread=thread, actor=request.user)
        flash.success(request, f"Deleted the thread {thread.title}.")
        return redirect("thread_list")
    return render(request, "assistants_app/thread_delete.html", {"thread": thread,
                                                                  "count": thread.messages.count()})



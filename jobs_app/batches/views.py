"""Batch pages: build (with estimate and preview), watch, cancel, results, downloads, retry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from assistants_app import conversation as chat
from jobs_app.batches import selectors, services
from jobs_app.batches.forms import BatchBuildForm, ThreadsBatchForm
from jobs_app.batches.models import BatchSource, BatchStatus, BuildState, RequestStatus
from jobs_app.batches.threads import batch_group_build_from_threads
from jobs_app.batches.uploads import BuildOptions, batch_build_queue, batch_group_build_from_upload, inline_build_bytes
from jobs_app.batches.validation import BatchInputInvalid, InputProblems
from project.csv_export import csv_response
from project.providers.capabilities import connections_lacking
from project.providers.client import ProviderError
from project.providers.selectors import team_connections
from project.spend.budgets import BudgetExceeded
from project.spend.selectors import source_cost
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role
from project.upload_limits import upload_limit
from project.user_input import parse_id

PAGE_SIZE = 50


@team_view()
def batch_list(request: TeamRequest) -> HttpResponse:
    groups = list(selectors.team_batch_groups(team=request.team)[:100])
    rows = [(group, selectors.group_progress(group)) for group in groups]
    live = any(progress.live for _, progress in rows)
    if request.htmx and request.htmx.target == "batch-rows" and not live:
        response = render(request, "jobs_app/batches/batch_list.html#rows", {"rows": rows, "live": live})
        response.status_code = HttpResponseStopPolling.status_code
        return response
    template = "jobs_app/batches/batch_list.html#rows" if request.htmx else "jobs_app/batches/batch_list.html"
    builds = list(selectors.team_open_builds(team=request.team)) if not request.htmx else []
    return render(request, template, {"rows": rows, "live": live, "builds": builds})


def _lacking(request: TeamRequest) -> list[str]:
    return connections_lacking(team_connections(team=request.team), "batches")


@team_view(Role.MEMBER)
@upload_limit("FILES_MAX_BYTES", "Switchboard takes for a batch's source file")
def batch_new(request: TeamRequest) -> HttpResponse:
    problems: InputProblems | None = None
    if request.method == "POST":
        form = BatchBuildForm(request.POST, request.FILES, team=request.team)
        if form.is_valid():
            data = form.cleaned_data
            upload = data["file"]
            source = BatchSource.CSV if data["source"] == "csv" else BatchSource.JSONL
            if source == BatchSource.CSV and data["assistant"] is not None:
                options = BuildOptions.for_assistant(data["assistant"], template=data["template"])
            else:
                options = BuildOptions(template=data["template"], model=data["model"].strip(),
                                       instructions=data["instructions"].strip(), response_format=data["response_format"])
            arguments: dict[str, Any] = {
                "team": request.team, "connection": data["connection"], "actor": request.user,
                "name": data["name"].strip() or PurePath(upload.name or "batch").stem, "endpoint": data["endpoint"],
                "source": source, "options": options}
            if upload.size > inline_build_bytes():
                build = batch_build_queue(**arguments, upload=upload)
                return redirect("batch_build_detail", build.pk)
            try:
                group = batch_group_build_from_upload(**arguments, stream=upload.file)
            except BatchInputInvalid as invalid:
                problems = invalid.problems
            else:
                return redirect("batch_detail", group.pk)
    else:
        form = BatchBuildForm(team=request.team)
    status = 400 if problems else 200
    return render(request, "jobs_app/batches/batch_new.html", {"form": form, "problems": problems,
                                                               "lacking": _lacking(request)}, status=status)


@team_view(Role.MEMBER)
def batch_from_threads(request: TeamRequest) -> HttpResponse:
    """Pick threads to run again: a filterable, keyset-paged checkbox list; "Older threads"
    appends rows inside the same form, so choices made on earlier pages are kept."""
    problems: InputProblems | None = None
    if request.method == "POST":
        form = ThreadsBatchForm(request.POST, team=request.team)
        if form.is_valid():
            data = form.cleaned_data
            try:
                group = batch_group_build_from_threads(
                    team=request.team, connection=data["connection"], actor=request.user, name=data["name"].strip(),
                    threads=data["threads"].order_by("id"))
            except BatchInputInvalid as invalid:
                problems = invalid.problems
            else:
                return redirect("batch_detail", group.pk)
    else:
        form = ThreadsBatchForm(team=request.team)
    filters = chat.ThreadFilters(query=request.GET.get("q", "").strip()[:200],
                                 assistant_id=parse_id(request.GET.get("assistant")))
    page = chat.thread_list_page(team=request.team, filters=filters, cursor=request.GET.get("cursor", ""))
    counts = chat.thread_message_counts(team=request.team, thread_ids=[t.pk for t in page.threads])
    query = request.GET.copy()
    query.pop("cursor", None)
    chosen = {str(v) for v in request.POST.getlist("threads")} if request.method == "POST" else set()
    context = {"form": form, "problems": problems, "page": page, "filters": filters, "next_query": query.urlencode(),
               "rows": [(thread, counts.get(thread.pk, 0)) for thread in page.threads], "chosen": chosen,
               "assistants": chat.team_assistants(team=request.team), "lacking": _lacking(request)}
    if request.htmx and request.GET.get("cursor"):
        return render(request, "jobs_app/batches/batch_threads.html#thread_rows", context)
    status = 400 if problems or form.errors else 200
    return render(request, "jobs_app/batches/batch_threads.html", context, status=status)


@team_view()
def batch_build_detail(request: TeamRequest, build_id: int) -> HttpResponse:
    """A big input being checked on a worker: polls until it is a draft (then goes there) or refused."""
    build = selectors.team_batch_build_get(team=request.team, build_id=build_id)
    if build.state == BuildState.DONE and build.group_id:
        target = reverse("batch_detail", args=[build.group_id])
        if request.htmx:
            response = HttpResponse(status=HttpResponseStopPolling.status_code)
            response["HX-Redirect"] = target
            return response
        return redirect(target)
    template = "jobs_app/batches/batch_build.html#state" if request.htmx else "jobs_app/batches/batch_build.html"
    response = render(request, template, {"build": build})
    if request.htmx and build.state == BuildState.INVALID:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@team_view()
def batch_detail(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    progress = selectors.group_progress(group)
    # What the group cost is what the ledger holds for it: one row per billed line.
    context: dict[str, Any] = {"group": group, "progress": progress, "parts": list(group.parts.all()),
                               "cost": source_cost(team=request.team, source_kind="batch", source_id=group.pk),
                               "counts": selectors.group_status_counts(group)}
    if request.htmx and request.htmx.target == "batch-status":
        response = render(request, "jobs_app/batches/batch_detail.html#status", context)
        if not progress.live:
            response.status_code = HttpResponseStopPolling.status_code
            response["HX-Refresh"] = "true"  # the results table appears once polling ends
        return response
    if progress.status in (BatchStatus.DRAFT, BatchStatus.SUBMIT_FAILED):
        context["preview"] = selectors.group_preview_lines(group)
    context["has_results"] = any(p.results_state == "done" for p in context["parts"])
    context["retryable"] = context["counts"].get(RequestStatus.FAILED, 0) + context["counts"].get(RequestStatus.EXPIRED, 0)
    context["submit_stuck"] = selectors.group_submit_stuck(group, older_than_seconds=services.SUBMIT_CHECK_AFTER_SECONDS)
    return render(request, "jobs_app/batches/batch_detail.html", context)


@require_POST
@team_view(Role.MEMBER)
def batch_submit(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    try:
        if not services.batch_group_submit_request(group=group, actor=request.user):
            messages.info(request, "This batch was already submitted.")
    except BudgetExceeded as error:
        messages.error(request, str(error))
    return redirect("batch_detail", group.pk)


@require_POST
@team_view(Role.MEMBER)
def batch_check_submit(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    try:
        settled = services.batch_group_check_submit(group=group, actor=request.user)
    except ProviderError as error:
        messages.error(request, f"Could not ask {group.connection.name}: {error.message}")
    else:
        messages.info(request, "Checked with the provider: the batch is up to date." if settled else
                      "Nothing to check: the submit is still under way or has finished.")
    return redirect("batch_detail", group.pk)


@require_POST
@team_view(Role.MEMBER)
def batch_discard(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    if services.batch_group_discard(group=group, actor=request.user):
        messages.success(request, f"Draft {group.name} discarded.")
        return redirect("batch_list")
    messages.error(request, "Part of this batch was already sent; it cannot be discarded. Cancel it instead.")
    return redirect("batch_detail", group.pk)


@require_POST
@team_view(Role.MEMBER)
def batch_cancel(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    problems = services.batch_group_cancel(group=group, actor=request.user)
    for problem in problems:
        messages.error(request, problem)
    if not problems:
        messages.success(request, "Cancel requested.")
    return redirect("batch_detail", group.pk)


@require_POST
@team_view(Role.MEMBER)
def batch_retry_failed(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    try:
        retry = services.batch_group_retry_failed(group=group, actor=request.user)
    except BatchInputInvalid as error:
        for problem in error.problems.problems:
            messages.error(request, f"Nothing to retry: {problem}")
        return redirect("batch_detail", group.pk)
    messages.success(request, f"A new batch of the {retry.request_count} failed request(s) is ready to submit.")
    return redirect("batch_detail", retry.pk)


@team_view()
def batch_results(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    status = request.GET.get("status", "")
    query = request.GET.get("q", "").strip()[:200]
    rows = selectors.group_requests(group=group, status=status, query=query)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"group": group, "page": page, "status": status, "q": query,
               "counts": selectors.group_status_counts(group)}
    template = "jobs_app/batches/batch_results.html#table" if request.htmx else "jobs_app/batches/batch_results.html"
    return render(request, template, context)


def _output_value(row: Any) -> str:
    return json.dumps(row.output_json, ensure_ascii=False) if row.output_json is not None else row.output_text


@team_view()
def batch_download_csv(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    rows = selectors.group_export_rows(group, status=request.GET.get("status", ""), query=request.GET.get("q", ""))
    response = csv_response(
        filename=f"batch-{group.pk}-results.csv",
        header=["custom_id", "status", "input", "output", "error_code", "error", "input_tokens", "output_tokens"],
        rows=([row.custom_id, row.status, row.input_text, _output_value(row), row.error_code, row.error_message,
               row.input_tokens, row.output_tokens] for row in rows))
    return response  # type: ignore[return-value]  # streamed; the decorator only passes it through


@team_view()
def batch_download_jsonl(request: TeamRequest, group_id: int) -> HttpResponse:
    group = selectors.team_batch_group_get(team=request.team, group_id=group_id)
    rows = selectors.group_export_rows(group, status=request.GET.get("status", ""), query=request.GET.get("q", ""))

    def lines() -> Iterator[str]:
        for row in rows:
            yield json.dumps({
                "custom_id": row.custom_id, "status": row.status, "input": row.body, "output_text": row.output_text,
                "output_json": row.output_json, "error": {"code": row.error_code, "message": row.error_message}
                if row.error_code or row.error_message else None,
                "usage": {"input_tokens": row.input_tokens, "output_tokens": row.output_tokens},
            }, ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="batch-{group.pk}-results.jsonl"'
    return response  # type: ignore[return-value]

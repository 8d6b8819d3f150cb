"""File library pages. Thin: parse, authorize (team_view + team-scoped selectors), call a service, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from project.files.forms import FileFilterForm, UploadForm
from project.files.models import IMAGE_MIME_TYPES, FileState
from project.files.preview import build_preview, kind_for
from project.files.responses import download_response, picture_response
from project.files.selectors import (
    team_file_get,
    team_files,
    team_storage,
    team_upload_request_get,
    team_upload_requests_recent,
)
from project.files.services import FileInUse, FileRejected, file_blockers, file_delete, file_open, file_upload
from project.files.staging import upload_request_create
from project.files.sync_status import files_sync_enqueue, sync_status
from project.files.uploads import use_parts
from project.files.usage import file_usages
from project.providers.capabilities import connections_lacking
from project.providers.client import ProviderError
from project.providers.selectors import team_connections
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role
from project.upload_limits import upload_limit


def _wants_json(request: TeamRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@team_view()
@vary_on_headers("HX-Request")
def file_list(request: TeamRequest) -> HttpResponse:
    filters = FileFilterForm(request.GET or None, team=request.team)
    purpose, connection_id, sort = "", None, "-created"
    if filters.is_valid():
        purpose = filters.cleaned_data["purpose"] or ""
        connection_id = filters.cleaned_data["connection"].pk if filters.cleaned_data["connection"] else None
        sort = filters.cleaned_data["sort"] or sort
    files = team_files(team=request.team, purpose=purpose, connection_id=connection_id, sort=sort)
    page = Paginator(files, settings.FILES_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    usages = file_usages(team=request.team, files=rows, strict=False)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "rows": [(f, usages.get(f.pk, [])) for f in rows],
        "filters": filters,
        "query": query.urlencode(),
        "upload_form": UploadForm(team=request.team),
        "storage": team_storage(team=request.team),
        "sync": sync_status(request.team.pk),
        "upload_requests": team_upload_requests_recent(team=request.team),
        "max_bytes": settings.FILES_MAX_BYTES,
        "lacking": connections_lacking(team_connections(team=request.team), "files"),
    }
    return render(request, "files/file_list.html#file_table" if request.htmx else "files/file_list.html", context)


@require_POST
@team_view(Role.MEMBER)
@upload_limit("FILES_MAX_BYTES", "a provider accepts for a file", back="file_list")
def file_upload_view(request: TeamRequest) -> HttpResponse:
    as_json = _wants_json(request)

    def refuse(message: str, status: int = 400) -> HttpResponse:
        if as_json:
            return JsonResponse({"ok": False, "error": message}, status=status)
        messages.error(request, message)
        return redirect("file_list")

    form = UploadForm(request.POST, request.FILES, team=request.team)
    if not form.is_valid():
        return refuse(" ".join(f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in form.errors.items()))
    upload = form.cleaned_data["file"]
    if use_parts(upload.size or 0):
        # Minutes of sending in parts: a worker does it; the page follows the request's status.
        staged = upload_request_create(team=request.team, connection=form.cleaned_data["connection"],
                                       purpose=form.cleaned_data["purpose"], uploaded=upload, actor=request.user)
        status_url = reverse("upload_request_status", args=[staged.pk])
        if as_json:
            return JsonResponse({"ok": True, "pending": True, "status_url": status_url})
        messages.info(request, f"{staged.name} is here; it is being sent to the provider.")
        return redirect("file_list")
    try:
        record = file_upload(team=request.team, connection=form.cleaned_data["connection"],
                             purpose=form.cleaned_data["purpose"], name=upload.name, chunks=upload.chunks(),
                             actor=request.user)
    except FileRejected as error:
        return refuse(error.message)
    except ProviderError as error:
        return refuse(f"The provider did not take {upload.name}: {error.message}", 502)
    message = f"Uploaded {record.name} ({filesizeformat(record.bytes)}) as {record.remote_id}."
    if as_json:
        messages.success(request, message)
        return JsonResponse({"ok": True, "message": message, "file_id": record.pk,
                             "url": reverse("file_detail", args=[record.pk])})
    messages.success(request, message)
    return redirect("file_detail", record.pk)


@team_view()
def file_detail(request: TeamRequest, file_id: int) -> HttpResponse:
    file = team_file_get(team=request.team, file_id=file_id)
    preview, preview_error = None, ""
    if file.state != FileState.DELETED and file.has_local_copy:
        try:
            with file_open(file=file) as stream:
                preview = build_preview(name=file.name, mime_type=file.mime_type, stream=stream)
        except OSError:
            preview_error = "The local copy could not be read; download it from the provider instead."
    usages = file_usages(team=request.team, files=[file], strict=False)[file.pk]
    context = {"file": file, "preview": preview, "preview_error": preview_error, "usages": usages,
               "kind": kind_for(file.name, file.mime_type)}
    return render(request, "files/file_detail.html", context)


@team_view(Role.MEMBER)
def file_fetch_view(request: TeamRequest, file_id: int) -> HttpResponse:
    """POST: bring a copy of an imported or provider-made file here, for previews."""
    file = team_file_get(team=request.team, file_id=file_id)
    if request.method != "POST":
        return redirect("file_detail", file.pk)
    try:
        file_open(file=file).close()
        messages.success(request, f"Fetched {file.name} from the provider.")
    except ProviderError as error:
        messages.error(request, f"Could not fetch {file.name}: {error.message}")
    return redirect("file_detail", file.pk)


@team_view()
def file_image(request: TeamRequest, file_id: int) -> HttpResponse:
    """An image from the local copy, inline, only for the types sniffed at upload (never SVG or HTML)."""
    file = team_file_get(team=request.team, file_id=file_id)
    if file.mime_type not in IMAGE_MIME_TYPES or not file.has_local_copy or file.state == FileState.DELETED:
        raise Http404("No image for this file.")
    return picture_response(file_open(file=file), content_type=file.mime_type, max_age=3600)


@team_view()
def file_download(request: TeamRequest, file_id: int) -> HttpResponse:
    file = team_file_get(team=request.team, file_id=file_id)
    if file.state == FileState.DELETED:
        raise Http404("This file was deleted.")
    try:
        stream = file_open(file=file)
    except ProviderError as error:
        messages.error(request, f"Could not download {file.name}: {error.message}")
        return redirect("file_detail", file.pk)
    return download_response(stream, filename=file.name)


@team_view(Role.MEMBER)
def file_delete_view(request: TeamRequest, file_id: int) -> HttpResponse:
    """GET: a confirmation that says what uses the file. POST: delete it here and on the provider."""
    file = team_file_get(team=request.team, file_id=file_id)
    if file.state == FileState.DELETED:
        raise Http404("This file was already deleted.")
    if request.method == "POST":
        try:
            file_delete(team=request.team, file=file, actor=request.user)
        except FileInUse as error:
            messages.error(request, error.message)
            return redirect("file_delete", file.pk)
        except ProviderError as error:
            messages.error(request, f"The provider did not delete {file.name}: {error.message}")
            return redirect("file_delete", file.pk)
        messages.success(request, f"Deleted {file.name} here and on the provider.")
        return redirect("file_list")
    usages, active = file_blockers(file=file)
    return render(request, "files/file_confirm_delete.html", {"file": file, "usages": usages, "active": active})


@require_POST
@team_view(Role.MEMBER)
def file_sync(request: TeamRequest) -> HttpResponse:
    files_sync_enqueue(team=request.team)
    if request.htmx:
        return render(request, "files/file_list.html#sync_status", {"sync": sync_status(request.team.pk)})
    messages.info(request, "Sync with the provider started.")
    return redirect("file_list")


@team_view()
def file_sync_status(request: TeamRequest) -> HttpResponse:
    sync = sync_status(request.team.pk)
    response = render(request, "files/file_list.html#sync_status", {"sync": sync})
    if not sync or not sync.get("running"):
        # The sync ended: stop polling; the status fragment tells the user to reload for the new rows.
        stop = HttpResponseStopPolling(response.content)
        return stop
    return response


@team_view()
def upload_request_status(request: TeamRequest, request_id: int) -> HttpResponse:
    """Where a big upload is: JSON for the upload script, a fragment (polling until it ends) for htmx."""
    staged = team_upload_request_get(team=request.team, request_id=request_id)
    if _wants_json(request):
        return JsonResponse({"status": staged.status, "finished": staged.finished, "error": staged.error,
                             "url": reverse("file_detail", args=[staged.file_id]) if staged.file_id else None})
    response = render(request, "files/file_list.html#upload_request", {"staged": staged})
    return HttpResponseStopPolling(response.content) if staged.finished and request.htmx else response

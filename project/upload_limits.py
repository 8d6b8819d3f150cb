"""Uploads refused before they are kept, with a message in the page.

Under ASGI, Django reads a request's whole body into a temporary file before any
middleware or view runs (ASGIHandler.read_body), and the multipart parser then copies
each file into another: a size check in the view came after a 5 GB upload had been
written to disk twice. So the limits act where the bytes arrive:

- `BoundedBodyASGIHandler` (project/asgi.py) keeps at most a page's body limit of a
  request, for the page its address resolves to, and reads the rest without keeping it;
- `upload_limit` on a view refuses such a request (and, under WSGI or the test client,
  one whose Content-Length says it is too big) before anything parses it, and stops
  reading a file the moment it passes the per-file limit (`FileLimitHandler`): the person
  is sent back to the form with the reason, and nothing is saved.

An address without `upload_limit` keeps at most DEFAULT_LIMIT's body, and one over it is
answered 413 with one sentence (project/asgi.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.urls import Resolver404, resolve
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt, csrf_protect

# The ASGI scope key set when a request's body was cut at its limit.
BODY_REFUSED = "switchboard.body_refused"
# What a multipart body carries besides its files: the form's other fields (Django's own
# cap on them, DATA_UPLOAD_MAX_MEMORY_SIZE) and the parts' headers.
FORM_OVERHEAD_BYTES = 3 * 1024 * 1024

type View = Callable[..., HttpResponse]


@dataclass(frozen=True)
class UploadLimit:
    """How much a page takes: `files` files of at most `size` bytes each (a number, or the
    name of a setting, read at request time so tests can lower it), `reason` finishing
    "the most …"."""

    size: int | str
    reason: str
    files: int = 1
    back: str | None = None  # the URL name a refused POST returns to; None: the page it came from

    def per_file(self) -> int:
        return int(getattr(settings, self.size)) if isinstance(self.size, str) else self.size

    def body(self) -> int:
        return self.per_file() * self.files + FORM_OVERHEAD_BYTES

    def file_message(self, name: str) -> str:
        return f"{name} is larger than {filesizeformat(self.per_file())}, the most {self.reason}."

    def body_message(self) -> str:
        return (f"The upload is larger than {filesizeformat(self.body())}, so it was not kept: "
                f"{filesizeformat(self.per_file())} a file is the most {self.reason}.")


# The limit of every address that has none of its own: the largest a page takes.
DEFAULT_LIMIT = UploadLimit("FILES_MAX_BYTES", "Switchboard takes in one request")


def limit_of(path: str) -> UploadLimit | None:
    """The upload limit of the view at `path`, None for a view without one."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    limit: UploadLimit | None = getattr(match.func, "upload_limit", None)
    return limit


class FileLimitHandler(FileUploadHandler):
    """First of the upload handlers: counts each file's bytes and stops the upload as soon
    as one passes the limit, before the next handler (memory or a temporary file) keeps
    them."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.refused: str | None = None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.refused = self.file_name or "The file"
            # Not connection_reset: the rest of the body is read and dropped, so the
            # browser is there to be sent back to the form.
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def _refuse(request: HttpRequest, limit: UploadLimit, message: str) -> HttpResponse:
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"ok": False, "error": message}, status=413)
    messages.error(request, message)
    if limit.back:
        return redirect(limit.back)
    came_from = request.headers.get("Referer", "")
    if url_has_allowed_host_and_scheme(came_from, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(came_from)
    return redirect(request.get_full_path())


def _refusal(request: HttpRequest, limit: UploadLimit) -> HttpResponse | None:
    if request.method != "POST":
        return None
    scope: dict[str, Any] = getattr(request, "scope", {})
    length = str(request.META.get("CONTENT_LENGTH") or "")
    declared = int(length) if length.isdigit() else 0  # none, or not a number: the parser's to judge
    if scope.get(BODY_REFUSED) or declared > limit.body():
        return _refuse(request, limit, limit.body_message())
    checker = FileLimitHandler(request, limit.per_file())
    request.upload_handlers.insert(0, checker)
    request.POST  # noqa: B018 - parsed here, through the checker, before the view or CSRF reads it
    if checker.refused is not None:
        return _refuse(request, limit, limit.file_message(checker.refused))
    return None


def upload_limit(size: int | str, reason: str, *, files: int = 1, back: str | None = None) -> Callable[[View], View]:
    """The view takes at most `files` files of `size` bytes (or settings.<size>): a larger
    upload goes back to the form (or the `back` URL name) with a message, unkept. Put it
    below the access decorator (team_view), so only a person who may post is answered."""
    limit = UploadLimit(size, reason, files=files, back=back)

    def decorator(view: View) -> View:
        checked = csrf_protect(view)

        @wraps(view)
        def limited(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refusal = _refusal(request, limit)
            if refusal is not None:
                return refusal
            return checked(request, *args, **kwargs)

        # CSRF's check reads the form, which would parse the upload before the limit is
        # set; so the check runs after ours (a refusal changes nothing but a message).
        exempt = csrf_exempt(limited)
        exempt.upload_limit = limit  # type: ignore[attr-defined]
        return exempt

    return decorator


class BodyRefused(Exception):
    """A body over the limit of an address with no page to say it in."""


class BoundedReceive:
    """An ASGI `receive` that hands Django at most `limit` bytes of the body: past them
    (or at once, when Content-Length says so) the rest is read and dropped, the body
    ends there, and the scope is marked BODY_REFUSED for the view to refuse."""

    def __init__(self, receive: Callable[[], Any], scope: dict[str, Any], limit: int) -> None:
        self.receive, self.scope, self.limit = receive, scope, limit
        self.seen = 0
        self.ended = False
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        self.declared = int(declared) if declared.isdigit() else None

    @property
    def refused(self) -> bool:
        return bool(self.scope.get(BODY_REFUSED))

    async def __call__(self) -> Any:
        if self.ended:  # the body is read: what comes now is the disconnect Django listens for
            return await self.receive()
        if self.declared is not None and self.declared > self.limit:
            return await self._drop_the_rest()
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        self.seen += len(message.get("body", b""))
        if self.seen > self.limit:
            return await self._drop_the_rest(more=message.get("more_body", False))
        self.ended = not message.get("more_body", False)
        return message

    async def _drop_the_rest(self, more: bool = True) -> Any:
        self.scope[BODY_REFUSED] = True
        self.ended = True
        while more:
            message = await self.receive()
            if message["type"] != "http.request":
                return message  # the client left
            more = message.get("more_body", False)
        return {"type": "http.request", "body": b"", "more_body": False}


class BoundedBodyASGIHandler(ASGIHandler):
    """Django's ASGI handler, keeping no more of a request's body than its page takes."""

    async def handle(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[..., Any]) -> None:
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):  # no body to bound
            await super().handle(scope, receive, send)
            return
        root = scope.get("root_path", "")
        path = scope["path"].removeprefix(root) if root else scope["path"]
        limit = limit_of(path)  # as Django's own handler does, resolved on the event loop: no I/O
        bounded = BoundedReceive(receive, scope, (limit or DEFAULT_LIMIT).body())
        scope["switchboard.has_upload_limit"] = limit is not None
        try:
            await super().handle(scope, bounded, send)
        except BodyRefused:
            await _send_too_large(send, DEFAULT_LIMIT.body_message())

    async def read_body(self, receive: Callable[[], Any]) -> Any:
        body = await super().read_body(receive)
        if isinstance(receive, BoundedReceive) and receive.refused and not receive.scope["switchboard.has_upload_limit"]:
            body.close()
            raise BodyRefused
        return body


async def _send_too_large(send: Callable[..., Any], message: str) -> None:
    body = f"<!doctype html><title>Too large · Switchboard</title><p>{message}</p>\n".encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

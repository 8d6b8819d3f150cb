"""Serving bytes people uploaded, so that a browser can never run them as a page."""

from __future__ import annotations

from typing import IO, cast

from django.http import FileResponse, HttpResponse

# Nothing in an uploaded file may load, run or navigate, whatever it claims to be.
INERT_CSP = "default-src 'none'; sandbox"


def picture_response(stream: IO[bytes], *, content_type: str, max_age: int, immutable: bool = False) -> HttpResponse:
    """A picture shown inline: only for types sniffed when it was stored (never SVG or HTML)."""
    response = FileResponse(stream, content_type=content_type)
    response["Content-Disposition"] = "inline"
    response["Content-Security-Policy"] = INERT_CSP
    response["Cache-Control"] = f"private, max-age={max_age}" + (", immutable" if immutable else "")
    return cast(HttpResponse, response)  # views are typed for HttpResponse; a streamed one works the same


def download_response(stream: IO[bytes], *, filename: str) -> HttpResponse:
    """Always an attachment of an opaque type, so nothing uploaded is ever rendered as a page."""
    response = FileResponse(stream, as_attachment=True, filename=filename, content_type="application/octet-stream")
    response["Content-Security-Policy"] = INERT_CSP
    return cast(HttpResponse, response)

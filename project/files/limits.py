"""The provider's limits, checked here before a byte is sent, each with a message a person can act on."""

from __future__ import annotations

from typing import IO

from django.conf import settings
from django.template.defaultfilters import filesizeformat

from project.files.models import FilePurpose
from project.user_input import loads_user_json

# Leading bytes of each image type the provider accepts for vision. WebP is RIFF....WEBP.
_IMAGE_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
]
JSONL_PURPOSES = (FilePurpose.FINE_TUNE, FilePurpose.BATCH)


class FileRejected(Exception):
    """The file cannot be sent: wrong type, too big, empty. The message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sniff_image_type(head: bytes) -> str | None:
    """The image MIME type from the first bytes, or None when it is not png, jpeg, gif or webp."""
    for magic, mime in _IMAGE_MAGIC:
        if head.startswith(magic):
            return mime
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_size(*, name: str, size: int) -> None:
    if size == 0:
        raise FileRejected(f"{name} is empty.")
    limit: int = settings.FILES_MAX_BYTES
    if size > limit:
        raise FileRejected(f"{name} is {filesizeformat(size)}; the provider accepts files up to {filesizeformat(limit)}.")


def _check_jsonl(*, name: str, purpose: str, stream: IO[bytes]) -> None:
    # Line by line from the spooled copy: a 500 MB dataset is validated without being held in memory.
    label = "Fine-tuning" if purpose == FilePurpose.FINE_TUNE else "Batch"
    if not name.lower().endswith(".jsonl"):
        raise FileRejected(f"{label} files must be JSONL (a .jsonl file, one JSON object per line); {name} is not.")
    lines = 0
    for number, raw in enumerate(stream, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            value = loads_user_json(line)
        except ValueError as error:
            raise FileRejected(f"{name}, line {number}: not valid JSON ({error}).") from None
        if not isinstance(value, dict):
            raise FileRejected(f"{name}, line {number}: each line must be a JSON object, not {type(value).__name__}.")
        lines += 1
    if lines == 0:
        raise FileRejected(f"{name} has no JSON lines.")


def check_content(*, name: str, purpose: str, stream: IO[bytes]) -> str | None:
    """Check the bytes for the purpose; return the sniffed image type for vision files.
    The stream is left at its start."""
    try:
        if purpose in JSONL_PURPOSES:
            _check_jsonl(name=name, purpose=purpose, stream=stream)
            return None
        if purpose == FilePurpose.VISION:
            mime = sniff_image_type(stream.read(16))
            if mime is None:
                raise FileRejected(f"{name} is not an image the provider accepts for vision: use PNG, JPEG, GIF or WebP.")
            return mime
        return None
    finally:
        stream.seek(0)


def check_upload(*, name: str, purpose: str, size: int, stream: IO[bytes]) -> str | None:
    """Every check before sending, cheapest first."""
    if purpose not in {p.value for p in FilePurpose} or purpose in (FilePurpose.BATCH_OUTPUT, FilePurpose.FINE_TUNE_RESULTS):
        raise FileRejected(f"“{purpose}” is not a purpose files can be uploaded with.")
    check_size(name=name, size=size)
    return check_content(name=name, purpose=purpose, stream=stream)

"""Previews read only the head of the local copy: a 500 MB file costs the same as a small one."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import IO

from project.user_input import loads_user_json

PREVIEW_LINES = 10
# At most this much is read for a preview, however long the lines are.
PREVIEW_BYTES = 64 * 1024
LINE_CHARS = 400
TEXT_EXTENSIONS = (".txt", ".md", ".json", ".py", ".html", ".xml", ".yaml", ".yml", ".log", ".js", ".css", ".tsv")


@dataclass
class Preview:
    kind: str  # "jsonl", "csv", "text", "image", "none"
    lines: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # 1-based JSONL lines that do not parse
    truncated: bool = False


def _head(stream: IO[bytes]) -> tuple[bytes, bool]:
    head = stream.read(PREVIEW_BYTES + 1)
    return head[:PREVIEW_BYTES], len(head) > PREVIEW_BYTES


def _first_lines(head: bytes, more: bool) -> tuple[list[str], bool]:
    text = head.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if more and lines and not text.endswith("\n"):
        lines = lines[:-1] or [lines[0]]  # the last line was cut by the read limit
    return lines[:PREVIEW_LINES], more or len(lines) > PREVIEW_LINES


def kind_for(name: str, mime_type: str) -> str:
    lowered = name.lower()
    if mime_type.startswith("image/"):
        return "image"
    if lowered.endswith(".jsonl"):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith(TEXT_EXTENSIONS) or mime_type.startswith("text/"):
        return "text"
    return "none"


def build_preview(*, name: str, mime_type: str, stream: IO[bytes]) -> Preview:
    kind = kind_for(name, mime_type)
    if kind in ("image", "none"):
        return Preview(kind=kind)
    head, more = _head(stream)
    if kind == "text":
        text = head[:4096].decode("utf-8", errors="replace")
        return Preview(kind="text", lines=[text], truncated=more or len(head) > 4096)
    lines, truncated = _first_lines(head, more)
    if kind == "csv":
        rows = [[cell[:LINE_CHARS] for cell in row] for row in csv.reader(io.StringIO("\n".join(lines)))]
        return Preview(kind="csv", rows=rows, truncated=truncated)
    bad = []
    for number, line in enumerate(lines, start=1):
        try:
            loads_user_json(line)
        except ValueError:
            if line.strip():
                bad.append(number)
    shown = [line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + "…" for line in lines]
    return Preview(kind="jsonl", lines=shown, bad_lines=bad, truncated=truncated)

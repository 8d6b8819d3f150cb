"""What a batch input must satisfy, and how problems are reported: each with its
line (JSONL, CSV) or column (CSV), collected over the whole input so a person can
fix them all at once, and raised before anything is created or sent."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from jobs_app.batches.models import BatchEndpoint

# The provider's per-batch limits; input over them is split into several batches.
MAX_REQUESTS_PER_BATCH = 50_000
MAX_BYTES_PER_BATCH = 200 * 1024 * 1024
# A group is split into at most this many batches; beyond it the input is refused.
MAX_PARTS_PER_GROUP = 20
MAX_REPORTED_ERRORS = 100


def max_requests_per_batch() -> int:
    return int(getattr(settings, "BATCH_MAX_REQUESTS", MAX_REQUESTS_PER_BATCH))


def max_bytes_per_batch() -> int:
    return int(getattr(settings, "BATCH_MAX_BYTES", MAX_BYTES_PER_BATCH))


def max_parts_per_group() -> int:
    return int(getattr(settings, "BATCH_MAX_PARTS", MAX_PARTS_PER_GROUP))


@dataclass(frozen=True)
class InputProblem:
    message: str
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass
class InputProblems:
    problems: list[InputProblem] = field(default_factory=list)
    more: int = 0

    def add(self, message: str, *, line: int | None = None, column: str | None = None) -> None:
        if len(self.problems) >= MAX_REPORTED_ERRORS:
            self.more += 1
            return
        self.problems.append(InputProblem(message, line=line, column=column))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise BatchInputInvalid(self)


class BatchInputInvalid(Exception):
    def __init__(self, problems: InputProblems) -> None:
        super().__init__(f"{len(problems.problems) + problems.more} problem(s) in the batch input")
        self.problems = problems


JSON_OBJECT_PROBLEM = ("response_format json_object needs the word JSON somewhere in the messages "
                       "(the API refuses the request otherwise).")


def json_object_without_json(response_format: Any, text: str) -> bool:
    return (isinstance(response_format, dict) and response_format.get("type") == "json_object"
            and "json" not in text.lower())


def check_body(body: Any, endpoint: str, problems: InputProblems, line: int) -> bool:
    """The shape the endpoint needs; True when the body can be sent."""
    if not isinstance(body, dict):
        problems.add("'body' is missing or not a JSON object.", line=line)
        return False
    ok = True
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.add("body.model is missing.", line=line)
        ok = False
    if endpoint == BatchEndpoint.CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            problems.add("body.messages must be a non-empty list for /v1/chat/completions.", line=line)
            ok = False
        elif not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            problems.add("every message in body.messages needs a role.", line=line)
            ok = False
        elif json_object_without_json(body.get("response_format"), json.dumps(messages)):
            problems.add(JSON_OBJECT_PROBLEM, line=line)
            ok = False
    elif "input" not in body or body["input"] in ("", None, []):
        problems.add(f"body.input is missing for {endpoint}.", line=line)
        ok = False
    return ok

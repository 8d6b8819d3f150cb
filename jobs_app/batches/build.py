"""Turn an input into request lines, streaming: a JSONL in the Batch line format,
a CSV rendered through a prompt template, conversations (threads), or rows of an
earlier batch. Each source yields RequestItems and reports problems with their
line or column; nothing here writes to the database or the provider."""

from __future__ import annotations

import csv
import io
import json
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import tiktoken

from assistants_app.conversation import (
    RequestSpec,
    Thread,
    chat_request,
    responses_input,
    responses_request,
    thread_question,
)
from jobs_app.batches.estimate import body_input_tokens
from jobs_app.batches.models import BatchEndpoint
from jobs_app.batches.validation import JSON_OBJECT_PROBLEM, InputProblems, check_body, json_object_without_json
from project.tokens import REPLY_PRIMING, count_message, encoding_for_model
from project.user_input import UserJSONError, loads_user_json

INPUT_TEXT_LIMIT = 2000
# A prompt cell can be a whole document; the csv module's default cap (128 KB) is for safety
# against runaway quoting, and a single request is bounded by the batch byte limit anyway.
csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))


@dataclass(frozen=True)
class RequestItem:
    line_no: int
    custom_id: str
    body: dict[str, Any]
    input_text: str
    tokens: int


# What makes a request body besides the prompt: an assistant's current version (chat's
# conversation module builds it, as for a chat run), or the explicit fields of the CSV form.
BodySpec = RequestSpec


def thread_conversation(thread: Thread) -> tuple[str, list[dict[str, Any]]]:
    """A thread asked again (custom_id thread-<pk>): chat's conversation module says what
    its history is, trimmed as a chat run would trim it."""
    return f"thread-{thread.pk}", thread_question(thread)


def input_text_of(body: dict[str, Any], endpoint: str) -> str:
    """A short readable form of the request's input, for the results table and search."""
    if endpoint == BatchEndpoint.CHAT:
        for message in reversed(body.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
                return str(content or "")[:INPUT_TEXT_LIMIT]
        return ""
    value = body.get("input")
    if isinstance(value, list):
        # Input items: the last user message's text, as for a chat request.
        users = [item for item in value if isinstance(item, dict) and item.get("role") == "user"]
        content = users[-1].get("content") if users else ""
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return str(content or "")[:INPUT_TEXT_LIMIT]
    return (value if isinstance(value, str) else json.dumps(value))[:INPUT_TEXT_LIMIT]


# -- JSONL -------------------------------------------------------------------------------------------

def items_from_jsonl(lines: Iterable[bytes], *, endpoint: str, problems: InputProblems) -> Iterator[RequestItem]:
    """Validate each line of an uploaded JSONL: a JSON object with a unique custom_id,
    method POST, url equal to the endpoint, and a body the endpoint accepts."""
    seen: set[str] = set()
    encoding: tiktoken.Encoding | None = None
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = loads_user_json(raw)
        except UserJSONError as error:
            problems.add(f"not valid JSON ({error}).", line=line_no)
            continue
        if not isinstance(line, dict):
            problems.add("not a JSON object.", line=line_no)
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            problems.add("custom_id is missing.", line=line_no)
        elif custom_id in seen:
            problems.add(f"duplicate custom_id '{custom_id[:100]}'; each request needs its own.", line=line_no)
        else:
            seen.add(custom_id)
        if line.get("method") != "POST":
            problems.add(f"method must be POST, not {json.dumps(line.get('method'))}.", line=line_no)
        if line.get("url") != endpoint:
            problems.add(f"url {json.dumps(line.get('url'))} does not match the batch endpoint {endpoint}.", line=line_no)
        body = line.get("body")
        if not check_body(body, endpoint, problems, line_no) or problems:
            continue
        assert isinstance(body, dict) and isinstance(custom_id, str)
        encoding = encoding or encoding_for_model(body["model"])
        yield RequestItem(line_no, custom_id, body, input_text_of(body, endpoint),
                          body_input_tokens(body, endpoint, encoding))


# -- CSV + template ----------------------------------------------------------------------------------

Template = list[tuple[str, str | None]]


def compile_template(template: str, problems: InputProblems) -> Template:
    """{column} placeholders only: no attribute access, indexing or format specs, so a
    template cannot reach into Python objects."""
    parts: Template = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        problems.add(f"the template is not valid: {error} (write {{{{ and }}}} for literal braces).")
        return []
    for literal, name, spec, conversion in parsed:
        if name is not None and (not name.strip() or any(c in name for c in ".[]") or spec or conversion):
            problems.add(f"placeholder {{{name}}} must be a plain column name.", column=name or "")
            name = None
        parts.append((literal, name if name is None else name.strip()))
    if not any(name for _, name in parts):
        problems.add("the template has no {column} placeholder.")
    return parts


def template_columns(template: Template) -> list[str]:
    return list(dict.fromkeys(name for _, name in template if name))


def render_template(template: Template, row: dict[str, str]) -> str:
    return "".join(literal + (row[name] if name else "") for literal, name in template)


def body_for_prompt(spec: BodySpec, endpoint: str, prompt: str) -> dict[str, Any]:
    if endpoint == BatchEndpoint.EMBEDDINGS:
        return {"model": spec.model, "input": prompt, **spec.extra}
    if endpoint == BatchEndpoint.RESPONSES:
        return responses_request(spec, prompt)
    return chat_request(spec, [{"role": "user", "content": prompt}], stream=False)


def _fixed_tokens(spec: BodySpec, endpoint: str, encoding: tiktoken.Encoding) -> int:
    """Tokens every row shares, counted once rather than per row."""
    if endpoint == BatchEndpoint.CHAT:
        fixed = REPLY_PRIMING + 3 + len(encoding.encode("user"))  # the user message's overhead
        if spec.instructions:
            fixed += count_message({"role": "system", "content": spec.instructions}, encoding)
        if spec.tools:
            fixed += len(encoding.encode(json.dumps(spec.tools, separators=(",", ":")), disallowed_special=()))
        return fixed
    if endpoint == BatchEndpoint.RESPONSES and spec.instructions:
        return len(encoding.encode(spec.instructions, disallowed_special=()))
    return 0


def items_from_csv(stream: IO[str], *, template: str, spec: BodySpec, endpoint: str,
                   problems: InputProblems) -> Iterator[RequestItem]:
    """Each CSV row through the template; a `custom_id` column is used when present,
    otherwise row-<n>. A template column missing from the header is reported before any row."""
    compiled = compile_template(template, problems)
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        problems.add("the CSV is empty; it needs a header row.", line=1)
        return
    except csv.Error as error:
        problems.add(f"not readable as CSV: {error}.", line=1)
        return
    header = [name.strip() for name in header]
    if endpoint == BatchEndpoint.CHAT and json_object_without_json(spec.response_format, spec.instructions + template):
        problems.add(JSON_OBJECT_PROBLEM.replace("the messages", "the instructions or the template"))
    for name in template_columns(compiled):
        if name not in header:
            problems.add(f"the template uses {{{name}}} but the CSV has no such column "
                         f"(columns: {', '.join(header) or 'none'}).", column=name)
    if problems:
        return
    positions = {name: header.index(name) for name in template_columns(compiled)}
    id_position = header.index("custom_id") if "custom_id" in header else None
    encoding = encoding_for_model(spec.model)
    fixed = _fixed_tokens(spec, endpoint, encoding)
    encode = encoding.encode_ordinary
    seen: set[str] = set()
    width = len(header)
    row_no = 0
    try:
        for row in reader:
            line_no = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            row_no += 1
            if len(row) < width:
                missing = header[len(row)]
                problems.add(f"the row has {len(row)} value(s) but the header has {width}.", line=line_no,
                             column=missing)
                continue
            custom_id = row[id_position].strip() if id_position is not None else f"row-{row_no}"
            if not custom_id:
                problems.add("custom_id is empty.", line=line_no, column="custom_id")
                continue
            if custom_id in seen:
                problems.add(f"duplicate custom_id '{custom_id[:100]}'.", line=line_no, column="custom_id")
                continue
            seen.add(custom_id)
            if problems:
                continue  # keep reading to report every problem, but build nothing more
            prompt = render_template(compiled, {name: row[i] for name, i in positions.items()})
            body = body_for_prompt(spec, endpoint, prompt)
            yield RequestItem(line_no, custom_id, body, prompt[:INPUT_TEXT_LIMIT], fixed + len(encode(prompt)))
    except csv.Error as error:
        problems.add(f"not readable as CSV: {error}.", line=reader.line_num)


def text_stream(binary: IO[bytes]) -> IO[str]:
    """An uploaded file as text, without reading it all: UTF-8 (a BOM from spreadsheets is dropped)."""
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")


# -- conversations (threads) and earlier rows ---------------------------------------------------------

def items_from_conversations(conversations: Iterable[tuple[str, list[dict[str, Any]], BodySpec]], *,
                             endpoint: str, problems: InputProblems) -> Iterator[RequestItem]:
    """Run conversations again: each (custom_id, messages, spec) becomes one request for the
    endpoint (/v1/chat/completions or /v1/responses), with its spec's instructions (stored
    system messages are replaced)."""
    if endpoint not in (BatchEndpoint.CHAT, BatchEndpoint.RESPONSES):
        problems.add("threads can only be run again as /v1/chat/completions or /v1/responses requests.")
        return
    encodings: dict[str, tiktoken.Encoding] = {}
    for line_no, (custom_id, messages, spec) in enumerate(conversations, start=1):
        history = [m for m in messages if m.get("role") != "system"]
        if not any(m.get("role") == "user" for m in history):
            problems.add(f"{custom_id} has no user message to run again.")
            continue
        body = (responses_request(spec, responses_input(history)) if endpoint == BatchEndpoint.RESPONSES
                else chat_request(spec, history, stream=False))
        encoding = encodings.get(spec.model) or encodings.setdefault(spec.model, encoding_for_model(spec.model))
        yield RequestItem(line_no, custom_id, body, input_text_of(body, endpoint),
                          body_input_tokens(body, endpoint, encoding))


def items_from_rows(rows: Iterable[tuple[str, dict[str, Any], str]], *, endpoint: str) -> Iterator[RequestItem]:
    """Rows of an earlier batch (already validated when first built), for retry."""
    encoding: tiktoken.Encoding | None = None
    for line_no, (custom_id, body, input_text) in enumerate(rows, start=1):
        encoding = encoding or encoding_for_model(str(body.get("model", "")))
        yield RequestItem(line_no, custom_id, body, input_text, body_input_tokens(body, endpoint, encoding))


def request_line(custom_id: str, endpoint: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body},
                      ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

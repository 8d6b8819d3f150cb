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
from dataclasses import dataclass, field
from typing import IO, Any

import tiktoken

from assistants_app.run_loop import history_budget, user_content
from jobs_app.batches.estimate import body_input_tokens
from jobs_app.batches.validation import JSON_OBJECT_PROBLEM, InputProblems, check_body, json_object_without_json
from jobs_app.models_batches import BatchEndpoint
from project.providers.model_facts import model_facts
from project.tokens import REPLY_PRIMING, count_message, encoding_for_model

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


@dataclass(frozen=True)
class BodySpec:
    """What makes a request body besides the prompt: an assistant's current version,
    or the explicit fields of the CSV form."""

    model: str
    instructions: str = ""
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _api_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A stored assistant tool ({"name", "description", "parameters", "binding", "url", "timeout", ...})
    as a Chat Completions function definition: how it is bound (built-in, HTTP, a person) and
    its URL stay on the site; the model only sees the function."""
    return {"type": "function", "function": {
        "name": tool["name"], "description": str(tool.get("description") or ""),
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}}


def request_body_for_assistant(assistant: Any) -> BodySpec:
    """The seam to assistants_app: an Assistant's current AssistantVersion makes the body, the
    way its run loop builds a chat request (minus streaming): model, instructions, tools
    (function definitions only), response_schema as a strict json_schema response_format
    ({} means free text), max_output_tokens, and temperature/top_p or reasoning_effort by
    what the model supports. Read duck-typed so this module does not import assistants_app."""
    version = assistant.current_version
    if version is None:
        raise ValueError(f"{assistant} has no saved version yet.")
    model = str(version.model)
    extra: dict[str, Any] = {}
    if model_facts(model).supports("reasoning"):
        if version.reasoning_effort:
            extra["reasoning_effort"] = version.reasoning_effort
    else:
        for name in ("temperature", "top_p"):
            value = getattr(version, name)
            if value is not None:
                extra[name] = value
    if version.max_output_tokens:
        extra["max_completion_tokens"] = version.max_output_tokens
    schema = version.response_schema or None
    response_format = ({"type": "json_schema", "json_schema": {"name": "reply", "strict": True, "schema": schema}}
                       if schema else None)
    tools = [_api_tool(tool) for tool in (version.tools or [])] or None
    return BodySpec(model=model, instructions=str(version.instructions or ""), response_format=response_format,
                    tools=tools, extra=extra)


def _complete_tool_rounds(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API refuses an assistant tool call without its result (and a result without its
    call); a round left unanswered (a person never replied) is kept as text only."""
    answered = {m["tool_call_id"] for m in messages if m["role"] == "tool"}
    called: set[str] = set()
    out: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = {str(call.get("id")) for call in message["tool_calls"]}
            if ids <= answered:
                called |= ids
            else:
                message = {k: v for k, v in message.items() if k != "tool_calls"}
                if not message.get("content"):
                    continue
        elif message["role"] == "tool" and message["tool_call_id"] not in called:
            continue
        out.append(message)
    return out


def thread_conversation(thread: Any) -> tuple[str, list[dict[str, Any]]]:
    """The seam for "pick threads to run again": a Thread's stored messages as API messages
    (custom_id thread-<pk>), up to and including its last user message, so the batch asks
    that question again. Pending tool results are left out. Like a chat run, the oldest
    messages are left out when the conversation does not fit the current version's model
    (the last question is always kept)."""
    entries: list[tuple[dict[str, Any], int]] = []  # (API message, its tokens)
    last_user = -1
    for message in thread.messages.filter(pending=False).order_by("id"):
        if message.role == "tool":
            api: dict[str, Any] = {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
        elif message.role == "assistant":
            api = {"role": "assistant", "content": message.text or None}
            if message.tool_calls:
                api["tool_calls"] = message.tool_calls
        elif message.role == "user":
            api = {"role": "user", "content": user_content(message)}
            last_user = len(entries)
        else:
            continue
        entries.append((api, message.token_count))
    entries = entries[: last_user + 1]
    version = thread.assistant.current_version
    if version is not None and entries:
        encoding = encoding_for_model(version.model)
        budget = history_budget(version, model_facts(version.model))
        costs = [tokens or count_message(api, encoding) for api, tokens in entries]
        start, total = 0, sum(costs)
        while total > budget and start < len(entries) - 1:
            total -= costs[start]
            start += 1
        entries = entries[start:]
    return f"thread-{thread.pk}", _complete_tool_rounds([api for api, _ in entries])


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
            line = json.loads(raw)
        except json.JSONDecodeError as error:
            problems.add(f"not valid JSON ({error.msg} at column {error.colno}).", line=line_no)
            continue
        except RecursionError:
            problems.add("not valid JSON (too deeply nested).", line=line_no)
            continue
        except ValueError:
            problems.add("not valid JSON (not UTF-8 text).", line=line_no)
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
        extra = dict(spec.extra)
        # The assistant's settings are kept in Chat Completions terms; Responses names two differently.
        if "max_completion_tokens" in extra:
            extra["max_output_tokens"] = extra.pop("max_completion_tokens")
        if "reasoning_effort" in extra:
            extra["reasoning"] = {"effort": extra.pop("reasoning_effort")}
        body: dict[str, Any] = {"model": spec.model, "input": prompt, **extra}
        if spec.instructions:
            body["instructions"] = spec.instructions
        if spec.response_format and spec.response_format.get("type") == "json_schema":
            schema = spec.response_format.get("json_schema") or {}
            body["text"] = {"format": {"type": "json_schema", **schema}}
        if spec.tools:
            body["tools"] = [{"type": "function", **t.get("function", {})} for t in spec.tools]
        return body
    messages: list[dict[str, Any]] = []
    if spec.instructions:
        messages.append({"role": "system", "content": spec.instructions})
    messages.append({"role": "user", "content": prompt})
    body = {"model": spec.model, "messages": messages, **spec.extra}
    if spec.response_format:
        body["response_format"] = spec.response_format
    if spec.tools:
        body["tools"] = spec.tools
    return body


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
    """Run conversations again: each (custom_id, messages, spec) becomes one chat request, with
    its spec's instructions as the system message (stored system messages are replaced)."""
    if endpoint != BatchEndpoint.CHAT:
        problems.add("threads can only be run again as /v1/chat/completions requests.")
        return
    encodings: dict[str, tiktoken.Encoding] = {}
    for line_no, (custom_id, messages, spec) in enumerate(conversations, start=1):
        history = [m for m in messages if m.get("role") != "system"]
        if not any(m.get("role") == "user" for m in history):
            problems.add(f"{custom_id} has no user message to run again.")
            continue
        body = body_for_prompt(spec, endpoint, "")
        body["messages"] = body["messages"][:-1] + history
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

"""Cases as a team already has them: from a thread's turn, from a CSV through a prompt
template, from JSONL, or typed by hand. Each reader returns drafts (nothing is saved here)
or raises CasesInvalid with every problem it found, each naming its line, so a bad file
is refused whole with a message a person can act on.
"""

from __future__ import annotations

import csv
import io
import json
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from assistants_app.conversation import Thread, api_message

MAX_CASES = 10_000
MAX_PROBLEMS = 20
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class CasesInvalid(ValueError):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass
class CaseDraft:
    messages: list[dict[str, Any]]
    name: str = ""
    expected_text: str = ""
    expected_json: Any = None
    expected_tool_call: dict[str, Any] | None = None
    tool_results: dict[str, str] = field(default_factory=dict)
    rubric: str = ""
    source: str = "hand"
    source_ref: str = ""


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(text)
        elif len(self.items) == MAX_PROBLEMS:
            self.items.append("… and more; fix these first.")

    def raise_if_any(self) -> None:
        if self.items:
            raise CasesInvalid(self.items)


# -- by hand -------------------------------------------------------------------------------------------

def case_by_hand(*, question: str, expected_text: str = "", expected_json: Any = None,
                 expected_tool_call: dict[str, Any] | None = None, tool_results: dict[str, str] | None = None,
                 rubric: str = "", name: str = "") -> CaseDraft:
    if not question.strip():
        raise CasesInvalid(["Write the question the case asks."])
    return CaseDraft(messages=[{"role": "user", "content": question.strip()}], name=name.strip()[:200],
                     expected_text=expected_text.strip(), expected_json=expected_json,
                     expected_tool_call=(_check_tool_call(expected_tool_call, "the expected tool call")
                                         if expected_tool_call else None),
                     tool_results=tool_results or {}, rubric=rubric.strip())


def _check_tool_call(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        raise CasesInvalid([f"{where} must be an object with a name (and arguments)."])
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            raise CasesInvalid([f"{where}: the arguments are not JSON."]) from None
    if not isinstance(arguments, dict):
        raise CasesInvalid([f"{where}: the arguments must be an object."])
    return {"name": value["name"], "arguments": arguments}


# -- from threads --------------------------------------------------------------------------------------

def thread_turns(thread: Thread) -> list[tuple[int, str]]:
    """The thread's replies a case can be made from: (message id, a short label), oldest first."""
    turns = []
    for message in thread.messages.filter(role="assistant", pending=False).order_by("id"):
        if message.text or message.tool_calls:
            shown = message.text or "calls " + ", ".join(c.get("function", {}).get("name", "?") for c in message.tool_calls)
            turns.append((message.pk, shown[:80]))
    return turns


def case_from_thread(thread: Thread, turn_id: int | None = None) -> CaseDraft:
    """The history up to a reply is the input; the saved reply is the expected answer (its
    text, or the tool it called). Without a turn, the thread's last reply."""
    stored = list(thread.messages.filter(pending=False).order_by("id"))
    replies = [m for m in stored if m.role == "assistant" and (m.text or m.tool_calls)]
    if turn_id is not None:
        replies = [m for m in replies if m.pk == turn_id]
    if not replies:
        raise CasesInvalid([f"Thread “{thread.title}” has no reply to make a case from."])
    reply = replies[-1]
    history = [api_message(m) for m in stored if m.pk < reply.pk and not (m.role == "assistant" and not m.text
                                                                           and not m.tool_calls)]
    # The input ends at the question: a trailing reply or tool result of another round is not asked.
    while history and history[-1]["role"] != "user" and history[-1]["role"] != "tool":
        history.pop()
    if not any(m["role"] == "user" for m in history):
        raise CasesInvalid([f"Thread “{thread.title}”: no question comes before that reply."])
    draft = CaseDraft(messages=history, name=f"{thread.title} #{reply.pk}"[:200], source="thread",
                      source_ref=f"thread {thread.pk} message {reply.pk}")
    if reply.tool_calls:
        call = reply.tool_calls[0].get("function", {})
        try:
            arguments = json.loads(call.get("arguments") or "{}")
        except ValueError:
            arguments = {}
        draft.expected_tool_call = {"name": call.get("name", ""), "arguments": arguments if isinstance(arguments, dict) else {}}
        # What the tools answered in the thread is replayed when the model calls them again.
        ids = {c.get("id"): c.get("function", {}).get("name", "") for c in reply.tool_calls}
        draft.tool_results = {ids[m.tool_call_id]: m.text for m in stored if m.role == "tool" and m.tool_call_id in ids}
    else:
        draft.expected_text = reply.text
    return draft


# -- CSV through a template -----------------------------------------------------------------------------

Template = list[tuple[str, str | None]]


def _compile(template: str, problems: _Problems) -> Template:
    """{column} placeholders only (no attribute access or format specs: a template cannot
    reach into Python objects)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        problems.add(f"The template is not valid: {error} (write {{{{ and }}}} for literal braces).")
        return []
    parts: Template = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (not name.strip() or any(c in name for c in ".[]") or spec or conversion):
            problems.add(f"Placeholder {{{name}}} must be a plain column name.")
            name = None
        parts.append((literal, None if name is None else name.strip()))
    if not any(name for _, name in parts):
        problems.add("The template has no {column} placeholder.")
    return parts


def text_stream(binary: IO[bytes]) -> IO[str]:
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")


@dataclass(frozen=True)
class CsvMapping:
    template: str  # the question, with {column} placeholders
    expected_column: str = ""
    expected_json_column: str = ""
    rubric_column: str = ""
    name_column: str = ""


def cases_from_csv(stream: IO[str], mapping: CsvMapping) -> list[CaseDraft]:
    problems = _Problems()
    template = _compile(mapping.template, problems)
    problems.raise_if_any()
    try:
        reader = csv.reader(stream)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise CasesInvalid(["The CSV is empty: it needs a header row and at least one row."])
        wanted = [name for _, name in template if name] + [c for c in (mapping.expected_column, mapping.expected_json_column,
                                                                      mapping.rubric_column, mapping.name_column) if c]
        for name in dict.fromkeys(wanted):
            if name not in header:
                problems.add(f"The CSV has no column “{name}” (its columns: {', '.join(header)}).")
        problems.raise_if_any()
        at = {name: header.index(name) for name in wanted}
        drafts: list[CaseDraft] = []
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                problems.add(f"Line {line}: {len(row)} columns, the header has {len(header)}.")
                continue
            question = "".join(literal + (row[at[name]] if name else "") for literal, name in template).strip()
            draft = CaseDraft(messages=[{"role": "user", "content": question}], source="csv", source_ref=f"line {line}")
            if mapping.expected_column:
                draft.expected_text = row[at[mapping.expected_column]].strip()
            if mapping.expected_json_column and row[at[mapping.expected_json_column]].strip():
                try:
                    draft.expected_json = json.loads(row[at[mapping.expected_json_column]])
                except ValueError:
                    problems.add(f"Line {line}: the column {mapping.expected_json_column} is not JSON.")
            if mapping.rubric_column:
                draft.rubric = row[at[mapping.rubric_column]].strip()
            if mapping.name_column:
                draft.name = row[at[mapping.name_column]].strip()[:200]
            drafts.append(draft)
            if len(drafts) > MAX_CASES:
                problems.add(f"More than {MAX_CASES} rows: split the file.")
                break
    except UnicodeDecodeError:
        raise CasesInvalid(["The file is not UTF-8 text: save the CSV as UTF-8."]) from None
    except csv.Error as error:
        raise CasesInvalid([f"Not readable as CSV: {error}."]) from None
    problems.raise_if_any()
    if not drafts:
        raise CasesInvalid(["The CSV has a header but no rows."])
    return drafts


# -- JSONL ---------------------------------------------------------------------------------------------

JSONL_KEYS = frozenset({"input", "messages", "expected", "expected_text", "expected_json", "expected_tool_call",
                        "tool_results", "rubric", "name"})


def cases_from_jsonl(lines: Iterable[bytes]) -> list[CaseDraft]:
    """One case per line: {"input": "question" | [messages], "expected": "...", "expected_json": ...,
    "expected_tool_call": {"name", "arguments"}, "tool_results": {"tool": "result"}, "rubric": "...", "name": "..."}."""
    problems = _Problems()
    drafts: list[CaseDraft] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except UnicodeDecodeError:
            problems.add(f"Line {number}: not UTF-8 text.")
            continue
        except ValueError as error:
            problems.add(f"Line {number}: not JSON ({error.args[0].split(':')[0]}).")
            continue
        try:
            drafts.append(_jsonl_case(item, number))
        except CasesInvalid as invalid:
            for problem in invalid.problems:
                problems.add(problem)
        if len(drafts) > MAX_CASES:
            problems.add(f"More than {MAX_CASES} lines: split the file.")
            break
    problems.raise_if_any()
    if not drafts:
        raise CasesInvalid(["The file has no cases: write one JSON object per line."])
    return drafts


def _jsonl_case(item: Any, number: int) -> CaseDraft:
    where = f"Line {number}"
    if not isinstance(item, dict):
        raise CasesInvalid([f"{where}: each line must be a JSON object."])
    unknown = set(item) - JSONL_KEYS
    if unknown:
        raise CasesInvalid([f"{where}: unknown key {', '.join(sorted(unknown))} (keys: {', '.join(sorted(JSONL_KEYS))})."])
    given = item.get("input", item.get("messages"))
    if isinstance(given, str) and given.strip():
        messages = [{"role": "user", "content": given.strip()}]
    elif isinstance(given, list) and given:
        messages = given
        for index, message in enumerate(messages, start=1):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise CasesInvalid([f"{where}: message {index} needs a role ({', '.join(sorted(ROLES))})."])
            if not isinstance(message.get("content"), (str, list)) and not message.get("tool_calls"):
                raise CasesInvalid([f"{where}: message {index} has no content."])
        if not any(m["role"] == "user" for m in messages):
            raise CasesInvalid([f"{where}: the input has no user message."])
    else:
        raise CasesInvalid([f"{where}: give \"input\": a question, or a list of messages."])
    expected = item.get("expected", item.get("expected_text", ""))
    if not isinstance(expected, str):
        raise CasesInvalid([f"{where}: \"expected\" must be text (use \"expected_json\" for JSON)."])
    tool_results = item.get("tool_results") or {}
    if not isinstance(tool_results, dict) or not all(isinstance(v, str) for v in tool_results.values()):
        raise CasesInvalid([f"{where}: \"tool_results\" must map tool names to result text."])
    call = item.get("expected_tool_call")
    rubric = item.get("rubric", "")
    name = item.get("name", "")
    if not isinstance(rubric, str) or not isinstance(name, str):
        raise CasesInvalid([f"{where}: \"rubric\" and \"name\" must be text."])
    return CaseDraft(messages=messages, name=name[:200], expected_text=expected, expected_json=item.get("expected_json"),
                     expected_tool_call=_check_tool_call(call, f"{where}: expected_tool_call") if call is not None else None,
                     tool_results=tool_results, rubric=rubric, source="jsonl", source_ref=f"line {number}")

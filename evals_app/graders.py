"""Graders: each turns one output and its case into a verdict (passed, a score from 0 to 1,
a reason). The ones here are pure and fast (no provider call); the embeddings and judge
graders need a model, so the runner makes their calls and this module only builds the
request and reads the reply.

A set's graders are stored as a list of dicts on its version; `parse_graders` checks them
(and is what the grader form calls), so a run never meets a grader it cannot apply.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

NOT_JSON = object()


class GraderError(ValueError):
    """A grader's settings cannot be used; the message is shown on the page."""


class CaseExpectation(Protocol):
    expected_text: str
    expected_json: Any
    expected_tool_call: Any
    rubric: str


@dataclass(frozen=True)
class ModelOutput:
    text: str
    tool_calls: Sequence[dict[str, Any]] = ()

    @cached_property
    def document(self) -> Any:
        """The reply read as JSON once for every grader that needs it; NOT_JSON when it is not."""
        try:
            return output_json(self.text)
        except ValueError:
            return NOT_JSON


@dataclass(frozen=True)
class Verdict:
    kind: str
    weight: float
    passed: bool
    score: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "weight": self.weight, "passed": self.passed, "score": round(self.score, 4),
                "reason": self.reason}


@dataclass(frozen=True)
class Grader:
    kind: str
    weight: float = 1.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_model(self) -> bool:
        return self.kind in MODEL_KINDS

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "weight": self.weight, **self.settings}

    @cached_property
    def validator(self) -> Draft202012Validator:
        """The grader's schema (json_schema) or its tool arguments' schema, compiled once."""
        return Draft202012Validator(self.settings.get("schema") or self.settings.get("arguments_schema") or {})

    def describe(self) -> str:
        shown = ", ".join(f"{k}={json.dumps(v)[:60]}" for k, v in self.settings.items())
        return f"{KINDS[self.kind]}{f' ({shown})' if shown else ''}"


KINDS: dict[str, str] = {
    "exact": "Exact match",
    "contains": "Contains",
    "not_contains": "Does not contain",
    "regex": "Regular expression",
    "json_schema": "Valid against a JSON schema",
    "json_path": "JSON path equals",
    "number": "Number within tolerance",
    "tool_call": "Calls the expected tool",
    "embedding": "Similar meaning (embeddings)",
    "judge": "Model as judge",
}
MODEL_KINDS = frozenset({"embedding", "judge"})
# What each kind may be given (anything else is refused, so a typo is not silently ignored).
SETTINGS: dict[str, frozenset[str]] = {
    "exact": frozenset({"value", "ignore_case"}),
    "contains": frozenset({"value", "ignore_case"}),
    "not_contains": frozenset({"value", "ignore_case"}),
    "regex": frozenset({"pattern"}),
    "json_schema": frozenset({"schema"}),
    "json_path": frozenset({"path", "value"}),
    "number": frozenset({"path", "value", "tolerance"}),
    "tool_call": frozenset({"name", "arguments", "arguments_schema"}),
    "embedding": frozenset({"model", "threshold", "dimensions"}),
    "judge": frozenset({"model", "rubric"}),
}
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_JUDGE_MODEL = "gpt-4.1-mini"


def parse_graders(raw: object) -> list[Grader]:
    """Stored or submitted grader dicts as Graders; GraderError names the first bad one."""
    if not isinstance(raw, list):
        raise GraderError("Graders must be a list.")
    return [parse_grader(item, index) for index, item in enumerate(raw, start=1)]


def parse_grader(item: object, index: int = 1) -> Grader:
    where = f"Grader {index}"
    if not isinstance(item, dict):
        raise GraderError(f"{where}: must be an object with a kind.")
    kind = item.get("kind")
    if kind not in KINDS:
        raise GraderError(f"{where}: unknown kind {kind!r}; choose one of {', '.join(KINDS)}.")
    weight = item.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 100:
        raise GraderError(f"{where} ({kind}): the weight must be a number above 0, at most 100.")
    settings = {k: v for k, v in item.items() if k not in ("kind", "weight") and v not in (None, "")}
    unknown = set(settings) - SETTINGS[kind]
    if unknown:
        raise GraderError(f"{where} ({kind}): unknown setting {', '.join(sorted(unknown))}.")
    _check_settings(kind, settings, where)
    return Grader(kind=str(kind), weight=float(weight), settings=settings)


def _check_settings(kind: str, settings: dict[str, Any], where: str) -> None:
    if kind == "regex":
        pattern = settings.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise GraderError(f"{where} (regex): give a pattern.")
        try:
            _compiled(pattern)
        except re.error as error:
            raise GraderError(f"{where} (regex): the pattern is not valid: {error}.") from None
    if kind in ("json_schema",) or "arguments_schema" in settings:
        schema = settings.get("schema") if kind == "json_schema" else settings.get("arguments_schema")
        if not isinstance(schema, dict):
            raise GraderError(f"{where} ({kind}): the schema must be a JSON object.")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise GraderError(f"{where} ({kind}): the schema is not valid: {error.message}.") from None
    if "path" in settings:
        try:
            parse_json_path(str(settings["path"]))
        except GraderError as error:
            raise GraderError(f"{where} ({kind}): {error}") from None
    for number in ("tolerance", "threshold"):
        if number in settings and (isinstance(settings[number], bool) or not isinstance(settings[number], (int, float))):
            raise GraderError(f"{where} ({kind}): {number} must be a number.")
    if "threshold" in settings and not -1 <= settings["threshold"] <= 1:
        raise GraderError(f"{where} ({kind}): the threshold is a cosine similarity, from -1 to 1.")
    if "dimensions" in settings and (not isinstance(settings["dimensions"], int) or settings["dimensions"] < 1):
        raise GraderError(f"{where} ({kind}): dimensions must be a whole number above 0.")
    if kind == "tool_call" and "arguments" in settings and not isinstance(settings["arguments"], dict):
        raise GraderError(f"{where} (tool_call): the arguments must be a JSON object.")


# -- the fast graders ---------------------------------------------------------------------------------

@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _text_value(grader: Grader, case: CaseExpectation) -> str:
    value = grader.settings.get("value")
    return case.expected_text if value is None else str(value)


def _fold(text: str, grader: Grader) -> str:
    return text.casefold() if grader.settings.get("ignore_case") else text


_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```\s*$", re.DOTALL)


def output_json(text: str) -> Any:
    """The reply as JSON; a reply wrapped in a ```json fence is read inside it. ValueError otherwise."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    return json.loads(fenced.group(1) if fenced else stripped)


_PATH_PART = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]|\['([^']*)'\]")


@lru_cache(maxsize=256)
def parse_json_path(path: str) -> tuple[str | int, ...]:
    """A JSONPath of names and indexes: `$`, `$.a.b[0]`, `$["key with spaces"]`. No filters
    or wildcards: an eval compares one value."""
    if not path.startswith("$"):
        raise GraderError(f"the JSON path {path!r} must start with $.")
    parts: list[str | int] = []
    at = 1
    while at < len(path):
        match = _PATH_PART.match(path, at)
        if match is None:
            raise GraderError(f"the JSON path {path!r} cannot be read at {path[at:]!r} (use .name, [0] or [\"name\"]).")
        name, index, dq, sq = match.groups()
        parts.append(int(index) if index is not None else (name if name is not None else (dq if dq is not None else sq)))
        at = match.end()
    return tuple(parts)


_MISSING = object()


def json_path_get(document: Any, path: str) -> Any:
    value = document
    for part in parse_json_path(path):
        found_in_list = isinstance(part, int) and isinstance(value, list) and -len(value) <= part < len(value)
        found_in_object = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (found_in_list or found_in_object):
            return _MISSING
        value = value[part]
    return value


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?")


def _first_number(text: str) -> float | None:
    match = _NUMBER.search(text.replace(",", "") if re.search(r"\d,\d{3}", text) else text)
    return float(match.group().replace(",", ".")) if match else None


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verdict(grader: Grader, passed: bool, reason: str, score: float | None = None) -> Verdict:
    return Verdict(grader.kind, grader.weight, passed, (1.0 if passed else 0.0) if score is None else score, reason)


def _grade_exact(grader: Grader, case: CaseExpectation, output: ModelOutput) -> Verdict:
    expected = _text_value(grader, case)
    passed = _fold(output.text.strip(), grader) == _fold(expected.strip(), grader)
    return _verdict(grader, passed, "the reply is the expected text" if passed
                    else f"expected exactly {_short(expected)!s}, got {_short(output.text.strip())}")


def _grade_contains(grader: Grader, case: CaseExpectation, output: ModelOutput) -> Verdict:
    expected = _text_value(grader, case)
    found = _fold(expected, grader) in _fold(output.text, grader)
    if grader.kind == "contains":
        return _verdict(grader, found, f"{'contains' if found else 'does not contain'} {_short(expected)}")
    return _verdict(grader, not found, f"{'contains' if found else 'does not contain'} {_short(expected)}")


def _grade_regex(grader: Grader, case: CaseExpectation, output: ModelOutput) -> Verdict:
    pattern = str(grader.settings["pattern"])
    match = _compiled(pattern).search(output.text)
    return _verdict(grader, match is not None,
                    f"matches /{_short(pattern, 40)}/ at {_short(match.group(), 40)}" if match
                    else f"does not match /{_short(pattern, 40)}/")


def _grade_json_schema(grader: Grader, case: CaseExpectation, output: ModelOutput) -> Verdict:
    document = output.document
    if document is NOT_JSON:
        return _verdict(grader, False, "the reply is not JSON")
    error = next(iter(grader.validator.iter_errors(document)), None)
    if error is None:
        return _verdict(grader, True, "valid against the schema")
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return _verdict(grader, False, f"not valid at {where}: {_short(error.message, 120)}")


def _grade_json_path(grader: Grader, case: CaseExpectation, output: ModelOutput) -> Verdict:
    path = str(grader.settings.get("path", "$"))
    expected = grader.settings.get("value", case.expected_json)
    document = output.document
    if document is NOT_JSON:
        return _verdict(grader, False, "the reply is not JSON")
    found = json_path_get(document, path)
    if found is _MISSING:
        return _verdict(grader, False, f"{path} is not in the reply")
    passed = found == expected
    return _verdict(grader, passed, f"{path} is {_short(found)}" + ("" if passed else f", expected {_short(expected)}"))


def _grade_number(grader: Grader, case: CaseExpectation, output: ModelOutput) -> Verdict:
    raw_expected = grader.settings.get("value", case.expected_text)
    try:
        expected = float(raw_expected)
    except (TypeError, ValueError):
        return _verdict(grader, False, f"the expected value {_short(raw_expected)} is not a number")
    tolerance = float(grader.settings.get("tolerance", 0.0))
    got: float | None
    if "path" in grader.settings:
        if output.document is NOT_JSON:
            return _verdict(grader, False, "the reply is not JSON")
        found = json_path_get(output.document, str(grader.settings["path"]))
        got = float(found) if isinstance(found, (int, float)) and not isinstance(found, bool) else (
            _first_number(found) if isinstance(found, str) else None)
    else:
        got = _first_number(output.text)
    if got is None or math.isnan(got):
        return _verdict(grader, False, "no number in the reply")
    passed = abs(got - expected) <= tolerance
    return _verdict(grader, passed, f"{got:g} is {'within' if passed else 'not within'} {tolerance:g} of {expected:g}")


def _call_arguments(call: dict[str, Any]) -> Any:
    raw = (call.get("function") or {}).get("arguments", "{}")
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None


def _grade_tool_call(grader: Grader, case: CaseExpectation, output: ModelOutput) -> Verdict:
    expected = case.expected_tool_call if isinstance(case.expected_tool_call, dict) else {}
    name = grader.settings.get("name") or expected.get("name")
    if not name:
        return _verdict(grader, False, "the case names no expected tool")
    calls = [call for call in output.tool_calls if (call.get("function") or {}).get("name") == name]
    if not calls:
        called = ", ".join((call.get("function") or {}).get("name", "?") for call in output.tool_calls) or "no tool"
        return _verdict(grader, False, f"expected a call to {name}, the model called {called}")
    arguments = _call_arguments(calls[0])
    if arguments is None:
        return _verdict(grader, False, f"{name} was called with arguments that are not JSON", 0.5)
    schema = grader.settings.get("arguments_schema")
    if schema is not None:
        error = next(iter(grader.validator.iter_errors(arguments)), None)
        if error is not None:
            return _verdict(grader, False, f"{name} was called; its arguments do not fit: {_short(error.message, 100)}", 0.5)
    wanted = grader.settings.get("arguments", expected.get("arguments")) or {}
    wrong = [key for key, value in wanted.items() if not isinstance(arguments, dict) or arguments.get(key) != value]
    if wrong:
        shown = ", ".join(f"{key}={_short(arguments.get(key) if isinstance(arguments, dict) else None, 30)}" for key in wrong)
        return _verdict(grader, False, f"{name} was called with {shown}, not the expected values", 0.5)
    return _verdict(grader, True, f"{name} was called with the expected arguments")


FAST_GRADERS = {
    "exact": _grade_exact,
    "contains": _grade_contains,
    "not_contains": _grade_contains,
    "regex": _grade_regex,
    "json_schema": _grade_json_schema,
    "json_path": _grade_json_path,
    "number": _grade_number,
    "tool_call": _grade_tool_call,
}


def grade_fast(grader: Grader, case: CaseExpectation, output: ModelOutput) -> Verdict:
    return FAST_GRADERS[grader.kind](grader, case, output)


# -- combining ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    score: float
    passed: bool


def combine(verdicts: Sequence[Verdict | dict[str, Any]], threshold: float) -> Outcome:
    """The case's score is the weighted mean of its graders' scores; it passes at the threshold.
    With no grader at all there is nothing to pass."""
    pairs = [(v.weight, v.score) if isinstance(v, Verdict) else (float(v["weight"]), float(v["score"])) for v in verdicts]
    total = sum(weight for weight, _ in pairs)
    if not total:
        return Outcome(0.0, False)
    score = sum(weight * value for weight, value in pairs) / total
    return Outcome(score, score >= threshold - 1e-9)


# -- the model graders: requests and replies ------------------------------------------------------

def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def embedding_verdict(grader: Grader, similarity: float) -> Verdict:
    threshold = float(grader.settings.get("threshold", 0.8))
    passed = similarity >= threshold
    return _verdict(grader, passed, f"cosine {similarity:.3f} {'≥' if passed else '<'} {threshold:g}",
                    max(0.0, min(1.0, similarity)))


JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "pass": {"type": "boolean"},
        "reason": {"type": "string"},
    },
    "required": ["score", "pass", "reason"],
    "additionalProperties": False,
}
_JUDGE_VALIDATOR = Draft202012Validator(JUDGE_SCHEMA)
JUDGE_INSTRUCTIONS = (
    "You grade an assistant's reply against a rubric. Read the conversation, the reply and the rubric, "
    "then answer only with JSON: score from 0 (fails the rubric) to 1 (meets it fully), pass (true or false) "
    "and a one-sentence reason.")


def judge_request(grader: Grader, case: CaseExpectation, messages: Sequence[dict[str, Any]],
                  output: ModelOutput) -> dict[str, Any]:
    """A Chat Completions body asking the judge model for a strict {score, pass, reason}."""
    rubric = str(grader.settings.get("rubric") or case.rubric or "The reply answers the user's last message correctly.")
    conversation = "\n".join(f"{m.get('role')}: {content_text(m.get('content'))}" for m in messages)
    reply = output.text or json.dumps(list(output.tool_calls))
    parts = [f"Conversation:\n{conversation}", f"Reply to grade:\n{reply}", f"Rubric:\n{rubric}"]
    if case.expected_text:
        parts.append(f"A good answer (reference):\n{case.expected_text}")
    return {
        "model": str(grader.settings.get("model") or DEFAULT_JUDGE_MODEL),
        "messages": [{"role": "system", "content": JUDGE_INSTRUCTIONS}, {"role": "user", "content": "\n\n".join(parts)}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": JUDGE_SCHEMA}},
    }


def content_text(content: Any) -> str:
    """A message's content as text; an image or a file in it is named ([image], [file])."""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            parts.append(str(part.get("text", "")) if kind == "text" else
                         "[image]" if kind in ("image_url", "input_image") else f"[{kind or 'part'}]")
        return " ".join(p for p in parts if p)
    return "" if content is None else str(content)


def case_question(messages: Any) -> str:
    """The text of a case's last user message."""
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def judge_verdict(grader: Grader, reply: str) -> Verdict:
    """The judge's reply as a verdict; a reply that breaks the schema fails the case and says so."""
    try:
        data = json.loads(reply)
    except ValueError:
        return _verdict(grader, False, f"the judge's reply is not JSON: {_short(reply)}")
    error = next(iter(_JUDGE_VALIDATOR.iter_errors(data)), None)
    if error is not None:
        return _verdict(grader, False, f"the judge's reply does not fit the verdict schema: {_short(error.message)}")
    return Verdict(grader.kind, grader.weight, bool(data["pass"]), float(data["score"]), f"judge: {_short(data['reason'], 300)}")


def failure_verdict(grader: Grader, reason: str) -> Verdict:
    return _verdict(grader, False, reason)

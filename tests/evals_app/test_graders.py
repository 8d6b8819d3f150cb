"""Each grader's verdict on outputs a person can read: pass/fail, score, reason."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from evals_app import graders as g


@dataclass
class Case:
    expected_text: str = ""
    expected_json: Any = None
    expected_tool_call: Any = None
    rubric: str = ""


def grade(spec: dict[str, Any], text: str = "", case: Case | None = None, calls: list[dict[str, Any]] | None = None) -> g.Verdict:
    return g.grade_fast(g.parse_grader(spec), case or Case(), g.ModelOutput(text, calls or []))


def call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


def test_exact_compares_with_the_expected_text_ignoring_outer_spaces() -> None:
    assert grade({"kind": "exact"}, " Paris\n", Case("Paris")).passed
    verdict = grade({"kind": "exact"}, "paris", Case("Paris"))
    assert not verdict.passed and verdict.score == 0 and "expected exactly Paris, got paris" in verdict.reason
    assert grade({"kind": "exact", "ignore_case": True}, "paris", Case("Paris")).passed


def test_contains_and_does_not_contain() -> None:
    assert grade({"kind": "contains", "value": "refund"}, "We will refund you.").passed
    assert not grade({"kind": "contains", "value": "Refund"}, "We will refund you.").passed
    assert grade({"kind": "contains", "value": "Refund", "ignore_case": True}, "We will refund you.").passed
    verdict = grade({"kind": "not_contains", "value": "sorry"}, "I am sorry.")
    assert not verdict.passed and verdict.reason == "contains sorry"


def test_regex_searches_the_reply() -> None:
    verdict = grade({"kind": "regex", "pattern": r"order #\d{4}"}, "Your order #1234 ships today.")
    assert verdict.passed and "order #1234" in verdict.reason
    assert not grade({"kind": "regex", "pattern": r"^\d+$"}, "forty-two").passed


def test_json_schema_reads_a_fenced_reply_and_names_where_it_breaks() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    assert grade({"kind": "json_schema", "schema": schema}, '```json\n{"age": 3}\n```').passed
    verdict = grade({"kind": "json_schema", "schema": schema}, '{"age": "three"}')
    assert not verdict.passed and verdict.reason.startswith("not valid at age")
    assert grade({"kind": "json_schema", "schema": schema}, "no json here").reason == "the reply is not JSON"


def test_json_path_equals_a_value_or_the_expected_json() -> None:
    reply = '{"order": {"items": [{"sku": "A-1"}, {"sku": "B-2"}]}}'
    assert grade({"kind": "json_path", "path": "$.order.items[1].sku", "value": "B-2"}, reply).passed
    assert grade({"kind": "json_path", "path": "$", "value": None}, "null").passed
    assert grade({"kind": "json_path", "path": "$"}, '{"a": 1}', Case(expected_json={"a": 1})).passed
    missing = grade({"kind": "json_path", "path": "$.order.total", "value": 3}, reply)
    assert not missing.passed and missing.reason == "$.order.total is not in the reply"


def test_number_within_tolerance_from_text_or_a_json_path() -> None:
    assert grade({"kind": "number", "tolerance": 0.01}, "The total is 41.995 euros.", Case("42")).passed
    verdict = grade({"kind": "number", "value": 42, "tolerance": 0.5}, "about 43")
    assert not verdict.passed and verdict.reason == "43 is not within 0.5 of 42"
    assert grade({"kind": "number", "path": "$.total", "value": 1200}, '{"total": 1200}').passed
    assert grade({"kind": "number", "value": 1200}, "It costs 1,200 dollars").passed
    assert grade({"kind": "number", "value": 1}, "none").reason == "no number in the reply"


def test_tool_call_by_name_and_argument_values_or_schema() -> None:
    case = Case(expected_tool_call={"name": "lookup", "arguments": {"city": "Paris"}})
    assert grade({"kind": "tool_call"}, calls=[call("lookup", '{"city": "Paris", "units": "C"}'), ], case=case).passed
    wrong_args = grade({"kind": "tool_call"}, calls=[call("lookup", '{"city": "Lyon"}')], case=case)
    assert not wrong_args.passed and wrong_args.score == 0.5 and "city=Lyon" in wrong_args.reason
    other_tool = grade({"kind": "tool_call"}, "Paris is sunny.", case=case)
    assert not other_tool.passed and other_tool.reason == "expected a call to lookup, the model called no tool"
    schema = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}}, "required": ["city"]}
    spec = {"kind": "tool_call", "name": "lookup", "arguments_schema": schema, "arguments": {}}
    assert grade(spec, calls=[call("lookup", '{"city": "Paris"}')]).passed
    assert not grade(spec, calls=[call("lookup", '{"city": "Rome"}')]).passed


def test_weights_and_the_threshold_decide_the_case() -> None:
    verdicts = [g.Verdict("exact", 1.0, False, 0.0, ""), g.Verdict("contains", 3.0, True, 1.0, "")]
    outcome = g.combine(verdicts, threshold=0.75)
    assert outcome.score == pytest.approx(0.75) and outcome.passed
    assert not g.combine(verdicts, threshold=0.8).passed
    assert not g.combine([], threshold=0).passed


@pytest.mark.parametrize(("spec", "message"), [
    ({"kind": "fuzzy"}, "unknown kind 'fuzzy'"),
    ({"kind": "regex", "pattern": "("}, "the pattern is not valid"),
    ({"kind": "regex"}, "give a pattern"),
    ({"kind": "exact", "weight": 0}, "the weight must be a number above 0"),
    ({"kind": "json_schema", "schema": {"type": "nonsense"}}, "the schema is not valid"),
    ({"kind": "json_path", "path": "order.id"}, "must start with $"),
    ({"kind": "json_path", "path": "$.items[*]"}, "cannot be read at"),
    ({"kind": "embedding", "threshold": 3}, "the threshold is a cosine similarity"),
    ({"kind": "contains", "patern": "x"}, "unknown setting patern"),
])
def test_bad_grader_settings_are_refused_with_a_reason(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(g.GraderError, match=re.escape(message)):
        g.parse_graders([spec])


def test_the_judge_reply_is_read_strictly() -> None:
    judge = g.parse_grader({"kind": "judge", "rubric": "polite"})
    verdict = g.judge_verdict(judge, '{"score": 0.9, "pass": true, "reason": "polite and right"}')
    assert verdict.passed and verdict.score == 0.9 and verdict.reason == "judge: polite and right"
    assert "does not fit the verdict schema" in g.judge_verdict(judge, '{"score": 2, "pass": true, "reason": ""}').reason
    assert "not JSON" in g.judge_verdict(judge, "I think it passes").reason
    body = g.judge_request(judge, Case("Paris"), [{"role": "user", "content": "Capital of France?"}], g.ModelOutput("Paris"))
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"] == g.JUDGE_SCHEMA
    assert "Rubric:\npolite" in body["messages"][1]["content"]


def test_embedding_verdict_uses_the_threshold() -> None:
    grader = g.parse_grader({"kind": "embedding", "threshold": 0.9})
    assert g.embedding_verdict(grader, 0.95).passed
    low = g.embedding_verdict(grader, 0.5)
    assert not low.passed and low.reason == "cosine 0.500 < 0.9"
    assert g.cosine([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)

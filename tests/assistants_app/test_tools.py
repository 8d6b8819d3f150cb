"""Tool definitions and implementations: validation, the safe calculator, time zones,
thread search, and HTTP tools signed with HMAC and cut off by their timeout."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from assistants_app.tools import (
    SIGNATURE_HEADER,
    ToolDefinitionError,
    ToolFailed,
    call_http_tool,
    run_builtin,
    safe_eval,
    validate_tools,
)
from tests.assistants_app.conftest import Recorder
from tests.factories import make_message, make_thread


def test_the_calculator_does_arithmetic() -> None:
    assert safe_eval("(2 + 3) * 4 - 10 / 4") == 17.5
    assert safe_eval("2^10") == 1024
    assert safe_eval("sqrt(16) + pi * 0") == 4


@pytest.mark.parametrize("expression", ["__import__('os').system('id')", "open('/etc/passwd')", "(1).__class__",
                                        "9**9**9", "lambda: 1", "[1, 2]"])
def test_the_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(ToolFailed):
        safe_eval(expression)


def test_the_calculator_reports_division_by_zero() -> None:
    with pytest.raises(ToolFailed, match="division by zero"):
        safe_eval("1/0")


def test_current_time_refuses_an_unknown_zone(team) -> None:
    tool = validate_tools([{"name": "current_time", "binding": "builtin"}])[0]
    with pytest.raises(ToolFailed, match="Unknown time zone"):
        run_builtin(tool=tool, arguments={"timezone": "Mars/Olympus"}, team=team)
    assert "Europe/Paris" in run_builtin(tool=tool, arguments={"timezone": "Europe/Paris"}, team=team)


def test_thread_search_sees_only_the_teams_own_threads(team, other_team) -> None:
    make_message(make_thread(team, title="Ours"), "the quarterly invoice is late")
    make_message(make_thread(other_team, title="Theirs"), "their invoice is secret")
    tool = validate_tools([{"name": "search_threads", "binding": "builtin"}])[0]
    result = run_builtin(tool=tool, arguments={"query": "invoice"}, team=team)
    assert "[Ours]" in result and "secret" not in result


@pytest.mark.parametrize(("tools", "message"), [
    ([{"name": "bad name!", "binding": "builtin"}], "the name must be"),
    ([{"name": "x", "binding": "builtin", "builtin": "nope"}], "no built-in named 'nope'"),
    ([{"name": "x", "binding": "http", "url": "javascript:alert(1)"}], "needs an http(s) URL"),
    ([{"name": "x", "binding": "human", "parameters": {"type": "object", "properties": {"a": {"type": "nonsense"}}}}],
     "not a valid JSON Schema"),
    ([{"name": "x", "binding": "human", "parameters": {"type": "string"}}], '"type": "object"'),
    ([{"name": "x", "binding": "human"}, {"name": "x", "binding": "human"}], "two tools are named"),
    ([{"name": "x", "binding": "human", "timeout": 600}], "timeout must be"),
])
def test_it_rejects_bad_tool_definitions_with_a_clear_message(tools: list[dict], message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_tools(tools)


def test_an_http_tool_posts_the_arguments_signed_with_hmac(tool_endpoint: str) -> None:
    tool = validate_tools([{"name": "stock", "binding": "http", "url": tool_endpoint, "timeout": 5,
                            "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}}}])[0]
    result = call_http_tool(tool=tool, arguments={"sku": "A-1"}, secret="s3cret", call_id="call_9")
    assert json.loads(result) == {"stock": 7}
    headers, body = Recorder.received[0]
    assert json.loads(body) == {"tool": "stock", "call_id": "call_9", "arguments": {"sku": "A-1"}}
    timestamp, signature = (part.split("=", 1)[1] for part in headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)


def test_an_http_tool_that_is_too_slow_is_cut_off(tool_endpoint: str) -> None:
    Recorder.delay = 2.0
    tool = validate_tools([{"name": "stock", "binding": "http", "url": tool_endpoint, "timeout": 0.3}])[0]
    started = time.monotonic()
    with pytest.raises(ToolFailed, match=r"did not answer within 0\.3 s"):
        call_http_tool(tool=tool, arguments={}, secret="s", call_id="c")
    assert time.monotonic() - started < 1.5

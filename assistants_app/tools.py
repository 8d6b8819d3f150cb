"""Function tools: their definitions (validated when an assistant is saved) and the
implementations a run calls. A tool is bound to a built-in from REGISTRY, to an
HTTP endpoint the team sets (POSTed with an HMAC signature), or to a person.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import math
import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx2
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from assistants_app.selectors import message_search
from project import netguard
from project.message_search import registered_tool_search
from project.teams.models import Team

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BINDINGS = ("builtin", "http", "human")
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 60.0
SIGNATURE_HEADER = "X-Switchboard-Signature"


class ToolDefinitionError(ValueError):
    pass


class ToolFailed(Exception):
    """A tool could not produce a result; the message goes back to the model as the result."""


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[Team, dict[str, Any]], str]


# -- built-ins -----------------------------------------------------------------------------

def _current_time(team: Team, args: dict[str, Any]) -> str:
    zone = str(args.get("timezone") or "UTC")
    try:
        now = datetime.now(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolFailed(f"Unknown time zone {zone!r}; use an IANA name such as Europe/Paris.") from None
    return now.strftime(f"%Y-%m-%d %H:%M:%S %Z (UTC%z) in {zone}")


_BIN_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY_OPS: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "log": math.log, "exp": math.exp,
    "sin": math.sin, "cos": math.cos, "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPONENT = 1000
MAX_EXPRESSION = 500


def safe_eval(expression: str) -> float | int:
    """Arithmetic only: numbers, + - * / // % **, parentheses, a few math functions.
    Walks the AST itself, so names, attributes and calls outside the list are refused."""
    if len(expression) > MAX_EXPRESSION:
        raise ToolFailed("The expression is too long.")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ToolFailed(f"Not an arithmetic expression: {expression!r}") from None

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
                raise ToolFailed("The exponent is too large.")
            return _BIN_OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
            return _UNARY_OPS[type(node.op)](walk(node.operand))
        if isinstance(node, ast.Name) and node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                and not node.keywords):
            return _FUNCTIONS[node.func.id](*[walk(arg) for arg in node.args])
        raise ToolFailed(f"Not allowed in a calculation: {ast.dump(node)[:60]}")

    try:
        result = walk(tree)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as error:
        raise ToolFailed(f"Cannot compute {expression!r}: {error}") from None
    return int(result) if isinstance(result, float) and result.is_integer() and abs(result) < 1e15 else result


def _calculator(team: Team, args: dict[str, Any]) -> str:
    expression = str(args.get("expression", ""))
    return f"{expression} = {safe_eval(expression)}"


def _search_threads(team: Team, args: dict[str, Any]) -> str:
    query = str(args.get("query", "")).strip()
    if not query:
        raise ToolFailed("Give a query to search for.")
    # Hybrid (words and meaning) when the search feature is installed; words only otherwise.
    search = registered_tool_search()
    hits = ([(hit.thread_title, hit.role, hit.text) for hit in search(team, query, 5)] if search is not None else
            [(hit.thread.title, hit.role, hit.text) for hit in message_search(team=team, query=query, limit=5)])
    if not hits:
        return f"No messages in this team's threads match {query!r}."
    return "\n".join(f"[{title}] {role}: {text[:200]}" for title, role, text in hits)


REGISTRY: dict[str, Builtin] = {
    tool.name: tool for tool in (
        Builtin("current_time", "The current date and time in a time zone.",
                {"type": "object", "properties": {"timezone": {"type": "string", "description": "IANA zone, e.g. Asia/Tokyo"}},
                 "required": ["timezone"], "additionalProperties": False}, _current_time),
        Builtin("calculator", "Evaluate an arithmetic expression exactly (+ - * / // % ** and sqrt, log, sin...).",
                {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"],
                 "additionalProperties": False}, _calculator),
        Builtin("search_threads", "Search this team's earlier conversations by words or meaning.",
                {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"],
                 "additionalProperties": False}, _search_threads),
    )
}


# -- definitions ------------------------------------------------------------------------------

def validate_tools(raw: Any) -> list[dict[str, Any]]:
    """Check a list of tool definitions; return it normalised or raise ToolDefinitionError
    with a message naming the tool and the problem."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise ToolDefinitionError("Tools must be a JSON list of objects.")
    seen: set[str] = set()
    tools: list[dict[str, Any]] = []
    for position, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise ToolDefinitionError(f"Tool {position} must be an object.")
        name = str(item.get("name", ""))
        label = f"Tool {position} ({name or 'no name'})"
        if not TOOL_NAME.match(name):
            raise ToolDefinitionError(f"{label}: the name must be 1-64 letters, digits, _ or -.")
        if name in seen:
            raise ToolDefinitionError(f"{label}: two tools are named {name!r}.")
        seen.add(name)
        binding = item.get("binding", "builtin")
        if binding not in BINDINGS:
            raise ToolDefinitionError(f"{label}: binding must be one of {', '.join(BINDINGS)}.")
        tool: dict[str, Any] = {"name": name, "description": str(item.get("description", "")), "binding": binding}
        if binding == "builtin":
            builtin = REGISTRY.get(str(item.get("builtin") or name))
            if builtin is None:
                raise ToolDefinitionError(f"{label}: no built-in named {item.get('builtin') or name!r}; "
                                          f"choose one of {', '.join(sorted(REGISTRY))}.")
            tool["builtin"] = builtin.name
            tool["description"] = tool["description"] or builtin.description
            parameters = item.get("parameters") or builtin.parameters
        else:
            parameters = item.get("parameters") or {"type": "object", "properties": {}}
        if binding == "http":
            url = str(item.get("url", ""))
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ToolDefinitionError(f"{label}: an HTTP tool needs an http(s) URL.")
            try:
                # The name is checked now; where it resolves to is checked at each call.
                netguard.check_url(url, resolve=False)
            except netguard.OutboundRefused as error:
                raise ToolDefinitionError(f"{label}: {error}") from None
            tool["url"] = url
        timeout = item.get("timeout", DEFAULT_TIMEOUT_SECONDS)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise ToolDefinitionError(f"{label}: timeout must be a number of seconds between 0 and {MAX_TIMEOUT_SECONDS:g}.")
        tool["timeout"] = float(timeout)
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            raise ToolDefinitionError(f"{label}: parameters must be a JSON schema with \"type\": \"object\".")
        try:
            Draft202012Validator.check_schema(parameters)
        except SchemaError as error:
            raise ToolDefinitionError(f"{label}: parameters are not a valid JSON Schema: {error.message}") from None
        tool["parameters"] = parameters
        tools.append(tool)
    return tools


def api_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools as Chat Completions takes them."""
    return [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["parameters"]}} for t in tools]


# -- running ----------------------------------------------------------------------------------

def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def call_http_tool(*, tool: dict[str, Any], arguments: dict[str, Any], secret: str, call_id: str) -> str:
    body = json.dumps({"tool": tool["name"], "call_id": call_id, "arguments": arguments}, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, timestamp, body)}
    try:
        netguard.check_url(tool["url"], resolve=False)  # the URL itself; the transport checks where it resolves
        # Redirects are not followed: the signed call goes only where the team said.
        with netguard.guarded_client(timeout=tool.get("timeout", DEFAULT_TIMEOUT_SECONDS), follow_redirects=False) as client:
            response = client.post(tool["url"], content=body, headers=headers)
    except netguard.OutboundRefused as error:
        raise ToolFailed(f"The tool endpoint was not called: {error}") from None
    except httpx2.TimeoutException:
        raise ToolFailed(f"The tool endpoint did not answer within {tool.get('timeout')} s.") from None
    except (httpx2.HTTPError, httpx2.InvalidURL) as error:
        raise ToolFailed(f"Could not reach the tool endpoint: {error}") from None
    if response.is_redirect:
        raise ToolFailed(f"The tool endpoint answered {response.status_code} (a redirect); redirects are not followed, "
                         "give the tool its final URL.")
    if response.status_code >= 400:
        raise ToolFailed(f"The tool endpoint answered {response.status_code}: {response.text[:300]}")
    return response.text[:20_000]


def run_builtin(*, tool: dict[str, Any], arguments: dict[str, Any], team: Team) -> str:
    builtin = REGISTRY.get(str(tool.get("builtin")))
    if builtin is None:
        raise ToolFailed(f"The built-in {tool.get('builtin')!r} no longer exists.")
    return builtin.run(team, arguments)

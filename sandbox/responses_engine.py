"""Simulated Responses API: a /v1/responses request, its output items and its stream events.

The reply rules are the chat simulator's (sandbox/chat_simulator.py), not a copy of them:
a Responses request is translated into a chat request (instructions become a developer
message, function_call / function_call_output items become assistant tool_calls and tool
messages, flat function tools become chat tools, text.format becomes response_format,
reasoning.effort becomes reasoning_effort, max_output_tokens becomes
max_completion_tokens), ChatSimulator.complete(..., api="responses") answers it, and the
answer is turned into output items: a reasoning item (reasoning models), function_call
items or one assistant message.

Reasoning items carry a deterministic summary when reasoning.summary is set and, with
include=["reasoning.encrypted_content"], an opaque signed blob that a later request may
pass back (its reasoning tokens then count as input, as the real API counts them).

Everything here is a pure function of the request (plus random ids), so the routes, the
background clock and batch lines all share it. Events are built from the final response
object, so a stored response's stream can be replayed from its document alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .chat_simulator import ChatOutcome, ChatSimulator, check_effort
from .errors import ApiError, invalid, missing_param, not_found
from .models_data import ModelSpec
from .sse import ARG_PIECES, pieces

# Every property of CreateResponse in the official spec; anything else is refused.
KNOWN_PARAMS = frozenset((
    "background", "context_management", "conversation", "include", "input", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls", "previous_response_id", "prompt",
    "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier",
    "service_tier", "store", "stream", "stream_options", "temperature", "text", "tool_choice", "tools",
    "top_logprobs", "top_p", "truncation", "user",
))
INCLUDABLE = (
    "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
    "message.input_image.image_url", "computer_call_output.output.image_url", "code_interpreter_call.outputs",
    "reasoning.encrypted_content", "message.output_text.logprobs",
)
SUMMARY_MODES = ("auto", "concise", "detailed")
MIN_OUTPUT_TOKENS = 16
ENCRYPTED_PREFIX = "gAAAAAB"  # real encrypted reasoning is a Fernet token; this one only looks like one
_SIGNING_KEY = hashlib.sha256(b"switchboard-sandbox-reasoning-items").digest()
FAIL_MESSAGE = "The server had an error while processing your request. Sorry about that!"


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


# -- encrypted reasoning ------------------------------------------------------------------
def encrypt_reasoning(item_id: str, model: str, reasoning_tokens: int) -> str:
    payload = json.dumps({"id": item_id, "model": model, "tokens": reasoning_tokens}, separators=(",", ":")).encode()
    tag = hmac.new(_SIGNING_KEY, payload, hashlib.sha256).digest()[:16]
    return ENCRYPTED_PREFIX + base64.urlsafe_b64encode(tag + payload).decode().rstrip("=")


def decrypt_reasoning(blob: Any) -> dict[str, Any] | None:
    """The payload of an encrypted reasoning blob this sandbox made, or None if it is not one."""
    if not isinstance(blob, str) or not blob.startswith(ENCRYPTED_PREFIX):
        return None
    raw = blob[len(ENCRYPTED_PREFIX):]
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        return None
    tag, payload = data[:16], data[16:]
    if not hmac.compare_digest(tag, hmac.new(_SIGNING_KEY, payload, hashlib.sha256).digest()[:16]):
        return None
    try:
        decoded: dict[str, Any] = json.loads(payload)
    except ValueError:
        return None
    return decoded


# -- request translation ------------------------------------------------------------------
@dataclass
class Lookup:
    """What the request may refer to that lives in stored responses (None outside the live API)."""

    context_of: Callable[[str], list[dict[str, Any]] | None] = lambda _id: None
    stored_item: Callable[[str], dict[str, Any] | None] = lambda _id: None


@dataclass
class Prepared:
    chat: dict[str, Any]
    context: list[dict[str, Any]]  # the input items as the model saw them (previous response's first)
    reasoning_input_tokens: int
    include_encrypted: bool
    summary: str | None
    effort: str | None
    tools: list[dict[str, Any]]
    tool_choice: Any
    text_format: dict[str, Any]


def _content_parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"Invalid type for '{where}.content': expected a string or an array of content parts.",
                      param=f"{where}.content", code="invalid_type")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        at = f"{where}.content[{j}]"
        if kind in ("input_text", "output_text", "refusal"):
            text = part.get("text", part.get("refusal", ""))
            if not isinstance(text, str):
                raise invalid(f"Invalid type for '{at}.text': expected a string.", param=f"{at}.text",
                              code="invalid_type")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if not url and part.get("file_id"):
                url = f"https://files.sandbox.invalid/{part['file_id']}"  # accepted, never fetched
            if not isinstance(url, str) or not url:
                raise invalid(f"Missing required parameter: '{at}.image_url'.", param=f"{at}.image_url",
                              code="missing_required_parameter")
            parts.append({"type": "image_url", "image_url": {"url": url, "detail": part.get("detail") or "auto"}})
        elif kind == "input_file":
            if not any(part.get(k) for k in ("file_id", "file_data", "file_url")):
                raise invalid(f"Missing required parameter: '{at}.file_id'.", param=f"{at}.file_id",
                              code="missing_required_parameter")
            file: dict[str, Any] = {k: part[k] for k in ("file_id", "file_data", "filename") if part.get(k)}
            parts.append({"type": "file", "file": file})
        else:
            raise invalid(
                f"Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image', 'input_file', "
                "'output_text' and 'refusal'.",
                param=f"{at}.type", code="invalid_value",
            )
    return parts


def _input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    if "input" not in body:
        raise missing_param("input")
    raw = body["input"]
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise invalid("Invalid type for 'input': expected a string or an array of input items.", param="input",
                      code="invalid_type")
    items = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise invalid(f"Invalid type for 'input[{i}]': expected an object.", param=f"input[{i}]",
                          code="invalid_type")
        items.append(item)
    return items


def _to_messages(items: list[dict[str, Any]], lookup: Lookup) -> tuple[list[dict[str, Any]], int]:
    """Chat messages for the input items, and the reasoning tokens passed back in them."""
    messages: list[dict[str, Any]] = []
    calls: dict[str, str] = {}
    reasoning_tokens = 0
    for i, item in enumerate(items):
        kind = item.get("type") or ("message" if "role" in item else None)
        where = f"input[{i}]"
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise invalid(
                    f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'.",
                    param=f"{where}.role", code="invalid_value",
                )
            messages.append({"role": role, "content": _content_parts(item.get("content"), where)})
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not call_id:
                raise missing_param(f"{where}.call_id")
            if not isinstance(name, str) or not name:
                raise missing_param(f"{where}.name")
            arguments = item.get("arguments", "")
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": str(arguments)}}
            last = messages[-1] if messages else None
            if last is not None and last.get("role") == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            calls[call_id] = name
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id not in calls:
                raise invalid(f"No tool call found for function call output with call_id {call_id}.",
                              param="input")
            output = item.get("output", "")
            if isinstance(output, list):
                output = "\n".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
            messages.append({"role": "tool", "tool_call_id": call_id, "content": str(output)})
        elif kind == "reasoning":
            reasoning_tokens += _reasoning_input(item, items[i + 1:i + 2], lookup, where)
        elif kind == "item_reference":
            ref = lookup.stored_item(str(item.get("id")))
            if ref is None:
                raise not_found(f"Item with id '{item.get('id')}' not found.", param="input")
            sub, tokens = _to_messages([ref], lookup)
            messages += sub
            reasoning_tokens += tokens
        else:
            raise invalid(
                f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
                "'function_call_output', 'reasoning' and 'item_reference'.",
                param=f"{where}.type", code="invalid_value",
            )
    return messages, reasoning_tokens


def _reasoning_input(item: dict[str, Any], following: list[dict[str, Any]], lookup: Lookup, where: str) -> int:
    item_id = str(item.get("id", ""))
    nxt = following[0] if following else None
    if nxt is None or not (nxt.get("type") == "function_call" or nxt.get("role") == "assistant"):
        raise invalid(f"Item '{item_id}' of type 'reasoning' was provided without its required following item.",
                      param="input")
    blob = item.get("encrypted_content")
    if blob is not None:
        payload = decrypt_reasoning(blob)
        if payload is None or payload.get("id") != item_id:
            raise invalid(f"The encrypted content for item {item_id} could not be verified.", param=where,
                          code="invalid_encrypted_content")
        return int(payload.get("tokens", 0))
    stored = lookup.stored_item(item_id)
    if stored is None:
        raise not_found(
            f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to false. Try again "
            "with `store` set to true, or remove this item from your input.",
            param="input",
        )
    return int(stored.get("_reasoning_tokens", 0))


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The tools as the response echoes them, and the chat tools for the function ones."""
    raw = body.get("tools")
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise invalid("Invalid type for 'tools': expected an array.", param="tools", code="invalid_type")
    echoed: list[dict[str, Any]] = []
    chat: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or not tool.get("type"):
            raise missing_param(f"tools[{i}].type")
        if tool["type"] != "function":
            echoed.append(tool)  # built-in tools are accepted and never called here
            continue
        if "function" in tool:
            raise invalid(
                f"Missing required parameter: 'tools[{i}].name'. In /v1/responses function tools are flat: "
                "{\"type\": \"function\", \"name\": ..., \"parameters\": ...}.",
                param=f"tools[{i}].name", code="missing_required_parameter",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise missing_param(f"tools[{i}].name")
        params = tool.get("parameters") or {"type": "object", "properties": {}, "additionalProperties": False}
        strict = tool.get("strict")
        fn: dict[str, Any] = {"name": name, "parameters": params}
        if tool.get("description"):
            fn["description"] = tool["description"]
        # Function tools are strict unless they say otherwise (Chat Completions' are the reverse).
        fn["strict"] = True if strict is None else bool(strict)
        chat.append({"type": "function", "function": fn})
        echo: dict[str, Any] = {"type": "function", "name": name, "parameters": params,
                                "strict": True if strict is None else bool(strict)}
        if tool.get("description"):
            echo["description"] = tool["description"]
        echoed.append(echo)
    return echoed, chat


def _tool_choice(body: dict[str, Any], chat_tools: list[dict[str, Any]]) -> tuple[Any, Any]:
    """(the echoed tool_choice, the chat tool_choice or None)."""
    choice = body.get("tool_choice")
    if choice is None:
        return "auto", None
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise invalid(f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                          param="tool_choice", code="invalid_value")
        if choice == "required" and not chat_tools:
            raise invalid("Tool choice 'required' must be specified with 'tools' parameter.", param="tool_choice")
        return choice, choice if chat_tools or choice == "none" else None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if name not in {t["function"]["name"] for t in chat_tools}:
            raise invalid(f"Tool choice '{name}' not found in 'tools' parameter.", param="tool_choice")
        return {"type": "function", "name": name}, {"type": "function", "function": {"name": name}}
    if isinstance(choice, dict):
        return choice, None  # allowed_tools, built-in tool types: accepted, the model decides
    raise invalid("Invalid type for 'tool_choice': expected a string or an object.", param="tool_choice",
                  code="invalid_type")


def _text_format(body: dict[str, Any], input_text: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the echoed text.format, the chat response_format or None)."""
    text = body.get("text")
    if text is None:
        return {"type": "text"}, None
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return {"type": "text"}, None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {"type": "text"}, None
    if kind == "json_object":
        if "json" not in input_text.lower():
            raise invalid(
                "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
                "'json_object'.",
                param="input",
            )
        return {"type": "json_object"}, {"type": "json_object"}
    if kind == "json_schema":
        assert isinstance(fmt, dict)
        if "json_schema" in fmt:
            raise missing_param("text.format.name")
        if not fmt.get("name"):
            raise missing_param("text.format.name")
        if not isinstance(fmt.get("schema"), dict):
            raise missing_param("text.format.schema")
        echo = {"type": "json_schema", "name": fmt["name"], "schema": fmt["schema"],
                "strict": bool(fmt.get("strict", False))}
        if fmt.get("description"):
            echo["description"] = fmt["description"]
        js = {k: v for k, v in echo.items() if k != "type"}
        return echo, {"type": "json_schema", "json_schema": js}
    raise invalid(f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'.",
                  param="text.format.type", code="invalid_value")


def _check_scalars(body: dict[str, Any], spec: ModelSpec) -> None:
    unknown = sorted(set(body) - KNOWN_PARAMS)
    if unknown:
        raise invalid(f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")
    if spec.kind != "chat" or "responses" not in spec.endpoints:
        raise invalid(f"The model '{spec.id}' is not supported in the v1/responses endpoint.", param="model")
    budget = body.get("max_output_tokens")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise invalid("Invalid type for 'max_output_tokens': expected an integer.", param="max_output_tokens",
                          code="invalid_type")
        if budget < MIN_OUTPUT_TOKENS:
            raise invalid(
                f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, "
                f"but got {budget} instead.",
                param="max_output_tokens", code="integer_below_min_value",
            )
    include = body.get("include") or []
    if not isinstance(include, list):
        raise invalid("Invalid type for 'include': expected an array.", param="include", code="invalid_type")
    for value in include:
        if value not in INCLUDABLE:
            raise invalid(f"Invalid value: '{value}'. Supported values are: "
                          + ", ".join(f"'{v}'" for v in INCLUDABLE) + ".", param="include", code="invalid_value")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise invalid("Invalid type for 'metadata': expected an object with string values.", param="metadata",
                          code="invalid_type")
        if len(metadata) > 16:
            raise invalid(f"Invalid 'metadata': too many properties. Expected an object with at most 16 properties, "
                          f"but got an object with {len(metadata)} properties instead.", param="metadata",
                          code="object_above_max_properties")
    if body.get("background") and body.get("store") is False:
        raise invalid("Background mode requires 'store' to be true.", param="background")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                      param="stream_options")
    if body.get("conversation") is not None and body.get("previous_response_id") is not None:
        raise invalid("Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' "
                      "or 'conversation'.", param="previous_response_id", code="mutually_exclusive_parameters")


def _reasoning(body: dict[str, Any], spec: ModelSpec) -> tuple[str | None, str | None]:
    """(effort as sent, summary mode) after checking them."""
    raw = body.get("reasoning")
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise invalid("Invalid type for 'reasoning': expected an object.", param="reasoning", code="invalid_type")
    effort, summary = raw.get("effort"), raw.get("summary", raw.get("generate_summary"))
    if not spec.reasoning and (effort is not None or summary is not None):
        param = "reasoning.effort" if effort is not None else "reasoning.summary"
        raise invalid(f"Unsupported parameter: '{param}' is not supported with this model.", param=param,
                      code="unsupported_parameter")
    check_effort(effort, spec, "reasoning.effort")
    if summary is not None and summary not in SUMMARY_MODES:
        raise invalid(f"Invalid value: '{summary}'. Supported values are: 'auto', 'concise', and 'detailed'.",
                      param="reasoning.summary", code="invalid_value")
    return effort, summary


def prepare(body: dict[str, Any], spec: ModelSpec, lookup: Lookup | None = None) -> Prepared:
    """Check a Responses request as the real API does and translate it for the chat simulator."""
    lookup = lookup or Lookup()
    _check_scalars(body, spec)
    effort, summary = _reasoning(body, spec)
    items = _input_items(body)
    previous = body.get("previous_response_id")
    if previous is not None:
        earlier = lookup.context_of(str(previous))
        if earlier is None:
            raise not_found(f"Previous response with id '{previous}' not found.", param="previous_response_id")
        items = [*earlier, *items]
    messages, reasoning_tokens = _to_messages(items, lookup)
    if body.get("instructions"):
        instructions = body["instructions"]
        if not isinstance(instructions, str):
            raise invalid("Invalid type for 'instructions': expected a string.", param="instructions",
                          code="invalid_type")
        messages.insert(0, {"role": "developer", "content": instructions})
    if not any(m["role"] in ("user", "tool", "developer", "system") for m in messages):
        raise invalid("Invalid 'input': the input must contain at least one message.", param="input")
    echoed_tools, chat_tools = _tools(body)
    echoed_choice, chat_choice = _tool_choice(body, chat_tools)
    echoed_format, response_format = _text_format(body, json.dumps(messages))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if chat_tools:
        chat["tools"] = chat_tools
    if chat_choice is not None:
        chat["tool_choice"] = chat_choice
    if body.get("parallel_tool_calls") is not None:
        chat["parallel_tool_calls"] = bool(body["parallel_tool_calls"])
    if response_format is not None:
        chat["response_format"] = response_format
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "metadata", "service_tier", "safety_identifier"):
        if body.get(name) is not None:
            chat[name] = body[name]
    return Prepared(
        chat=chat,
        context=items,
        reasoning_input_tokens=reasoning_tokens,
        include_encrypted="reasoning.encrypted_content" in (body.get("include") or []),
        summary=summary,
        effort=effort,
        tools=echoed_tools,
        tool_choice=echoed_choice,
        text_format=echoed_format,
    )


def _remap(exc: ApiError) -> ApiError:
    """Chat-side params in errors, named as the Responses API names them."""
    param = exc.param or ""
    if param.startswith("response_format"):
        exc.param = "text.format" + param.removeprefix("response_format")
        exc.message = exc.message.replace("response_format", "text.format")
    elif param.startswith("messages"):
        exc.param = "input"
    elif param == "max_completion_tokens":
        exc.param = "max_output_tokens"
    elif param == "reasoning_effort":
        exc.param = "reasoning.effort"
    return exc


# -- the answer as output items ----------------------------------------------------------------
def _summary_parts(outcome: ChatOutcome, mode: str | None, words: int) -> list[str]:
    if mode is None or outcome.reasoning_tokens == 0:
        return []
    choice = outcome.choices[0]
    if choice.tool_calls:
        names = ", ".join(c["function"]["name"] for c in choice.tool_calls)
        first = f"**Choosing tools**\n\nThe request names {names}, so I will call {'it' if ',' not in names else 'them'}."
    else:
        first = f"**Planning the reply**\n\nThe last message has {words} words; I will answer it directly."
    if mode != "detailed":
        return [first]
    return [first, f"**Checking the answer**\n\nI spent {outcome.reasoning_tokens} reasoning tokens and the reply is ready."]


def build_response(
    outcome: ChatOutcome,
    prepared: Prepared,
    body: dict[str, Any],
    spec: ModelSpec,
    *,
    response_id: str | None = None,
    created_at: float | None = None,
) -> dict[str, Any]:
    """The final response object for the simulator's answer (status completed or incomplete)."""
    response_id = response_id or new_id("resp_")
    created = int(created_at if created_at is not None else time.time())
    choice = outcome.choices[0]
    incomplete = choice.finish_reason == "length"
    hex_id = response_id.removeprefix("resp_")
    output: list[dict[str, Any]] = []
    effort = prepared.effort or spec.default_effort
    if spec.reasoning and effort != "none":
        last_user = next((m for m in reversed(prepared.chat["messages"]) if m["role"] == "user"), None)
        content = last_user["content"] if last_user else ""
        words = len(content.split()) if isinstance(content, str) else 0
        reasoning_item: dict[str, Any] = {
            "id": "rs_" + hex_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": t} for t in _summary_parts(outcome, prepared.summary, words)],
        }
        if prepared.include_encrypted:
            reasoning_item["encrypted_content"] = encrypt_reasoning(reasoning_item["id"], spec.id,
                                                                    outcome.reasoning_tokens)
        output.append(reasoning_item)
    if choice.tool_calls:
        for k, call in enumerate(choice.tool_calls):
            output.append({
                "id": "fc_" + hashlib.sha256(f"{hex_id}:{k}".encode()).hexdigest()[:48],
                "type": "function_call",
                "status": "completed",
                "arguments": call["function"]["arguments"],
                "call_id": call["id"],
                "name": call["function"]["name"],
            })
    elif choice.content or not incomplete:
        output.append({
            "id": "msg_" + hex_id,
            "type": "message",
            "status": "incomplete" if incomplete else "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": choice.content or "", "annotations": [], "logprobs": []}],
        })
    input_tokens = outcome.prompt_tokens + prepared.reasoning_input_tokens
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": outcome.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": outcome.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": outcome.reasoning_tokens},
        "total_tokens": input_tokens + outcome.completion_tokens,
    }
    reasoning = {"effort": effort, "summary": prepared.summary} if spec.reasoning else {"effort": None,
                                                                                        "summary": None}
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "incomplete" if incomplete else "completed",
        "background": bool(body.get("background", False)),
        "completed_at": None if incomplete else max(created, int(time.time())),
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": str(body.get("model")),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": reasoning,
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": prepared.text_format, "verbosity": "medium"},
        "tool_choice": prepared.tool_choice,
        "tools": prepared.tools,
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "metadata": body.get("metadata") or {},
    }
    if body.get("user") is not None:
        response["user"] = body["user"]
    return response


def generate(
    simulator: ChatSimulator,
    body: dict[str, Any],
    spec: ModelSpec,
    lookup: Lookup | None = None,
    *,
    response_id: str | None = None,
) -> tuple[dict[str, Any], Prepared]:
    """Check, simulate and build the final response for one Responses request."""
    prepared = prepare(body, spec, lookup)
    try:
        outcome = simulator.complete(prepared.chat, spec, str(body.get("model")), api="responses")
    except ApiError as exc:
        raise _remap(exc) from None
    return build_response(outcome, prepared, body, spec, response_id=response_id), prepared


# -- views of a response over its life ------------------------------------------------------------
def snapshot(response: dict[str, Any], status: str, output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The response as it reads before it is done: no usage, no completion time."""
    view = {k: v for k, v in response.items() if k != "usage"}
    view.update(status=status, output=output or [], completed_at=None, incomplete_details=None, error=None)
    return view


def failed(response: dict[str, Any], output: list[dict[str, Any]]) -> dict[str, Any]:
    view = snapshot(response, "failed", output)
    view["error"] = {"code": "server_error", "message": FAIL_MESSAGE}
    return view


def cancelled(response: dict[str, Any], output: list[dict[str, Any]]) -> dict[str, Any]:
    return snapshot(response, "cancelled", output)


# -- stream events ------------------------------------------------------------------------------
def _item_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    kind = item["type"]
    out: list[dict[str, Any]] = []
    if kind == "message":
        added = {**item, "status": "in_progress", "content": []}
        out.append({"type": "response.output_item.added", "output_index": index, "item": added})
        for c, part in enumerate(item["content"]):
            text = part["text"]
            base = {"item_id": item["id"], "output_index": index, "content_index": c}
            out.append({"type": "response.content_part.added", **base,
                        "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}})
            for piece in pieces(text):
                out.append({"type": "response.output_text.delta", **base, "delta": piece, "logprobs": []})
            out.append({"type": "response.output_text.done", **base, "text": text, "logprobs": []})
            out.append({"type": "response.content_part.done", **base, "part": part})
    elif kind == "function_call":
        added = {**item, "status": "in_progress", "arguments": ""}
        out.append({"type": "response.output_item.added", "output_index": index, "item": added})
        base = {"item_id": item["id"], "output_index": index}
        for piece in pieces(item["arguments"], ARG_PIECES):
            out.append({"type": "response.function_call_arguments.delta", **base, "delta": piece})
        out.append({"type": "response.function_call_arguments.done", **base, "name": item["name"],
                    "arguments": item["arguments"]})
    elif kind == "reasoning":
        added = {k: v for k, v in item.items() if k != "encrypted_content"} | {"summary": []}
        out.append({"type": "response.output_item.added", "output_index": index, "item": added})
        base = {"item_id": item["id"], "output_index": index}
        for s, part in enumerate(item["summary"]):
            out.append({"type": "response.reasoning_summary_part.added", **base, "summary_index": s,
                        "part": {"type": "summary_text", "text": ""}})
            for piece in pieces(part["text"]):
                out.append({"type": "response.reasoning_summary_text.delta", **base, "summary_index": s,
                            "delta": piece})
            out.append({"type": "response.reasoning_summary_text.done", **base, "summary_index": s,
                        "text": part["text"]})
            out.append({"type": "response.reasoning_summary_part.done", **base, "summary_index": s,
                        "part": {"type": "summary_text", "text": part["text"]}})
    out.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return out


TERMINAL_EVENT = {"completed": "response.completed", "incomplete": "response.incomplete",
                  "failed": "response.failed"}


def build_events(response: dict[str, Any], *, background: bool, fail: bool = False) -> list[dict[str, Any]]:
    """Every event of the response's stream, numbered from 0, the terminal one last.

    fail=True: the stream breaks off half way through the items with response.failed.
    """
    events: list[dict[str, Any]] = []
    first = snapshot(response, "queued" if background else "in_progress")
    events.append({"type": "response.created", "response": first})
    if background:
        events.append({"type": "response.queued", "response": first})
    events.append({"type": "response.in_progress", "response": snapshot(response, "in_progress")})
    body: list[dict[str, Any]] = []
    for index, item in enumerate(response["output"]):
        body += _item_events(item, index)
    if fail:
        cut = len(body) // 2
        finished = [e["item"] for e in body[:cut] if e["type"] == "response.output_item.done"]
        events += body[:cut]
        events.append({"type": "response.failed", "response": failed(response, finished)})
    else:
        events += body
        events.append({"type": TERMINAL_EVENT[response["status"]], "response": response})
    for n, event in enumerate(events):
        event["sequence_number"] = n
    return events

"""Simulated Chat Completions: deterministic replies that depend on the conversation.

Reply rules (the tests and the dashboard rely on them; see README):
  1. After tool results (trailing ``tool`` messages): ``Tool results: <name>: <content>; ...``.
  2. Tools offered and the last user message names a function (``use get_time``):
     call every named function, in the order named (only the first when
     parallel_tool_calls is false). tool_choice none/required/named is honoured.
     Arguments satisfy the function's JSON schema; ``key=value`` in the text sets them.
  3. response_format json_schema: a document valid against the schema (hints as above);
     json_object: ``{"reply": <rule 4/5/6 text>}`` (or the echoed text if it is a JSON object).
  4. ``echo: <text>`` returns <text> verbatim.
  5. ``... write N words ...`` returns exactly N words.
  6. Otherwise ``You said: "<last user text>"`` plus a short deterministic continuation.
  Images in the last user message prefix the reply with ``I see 1 image (image/png, 64x64).``.
Everything is a pure function of the request, so the same request gives the same reply.
"""

from __future__ import annotations

import array
import hashlib
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from project.vision import image_tokens

from . import tokens
from .errors import ApiError, invalid
from .ids import stable_id
from .images import ImageInfo, inspect_image_url
from .models_data import ModelSpec
from .structured import build_instance, check_strict_schema, parse_hints

CONTINUATIONS = (
    "That is a sandbox reply, so nothing was sent to a real model.",
    "Here is a deterministic answer from the Switchboard sandbox.",
    "I have noted that and would be glad to help further.",
    "This reply is simulated and will be the same next time.",
    "Let me know what you would like to do next.",
    "The sandbox understood your message and answered it.",
)
# Single-token English words, so "write N words" costs about N tokens.
WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "river", "light",
    "falls", "on", "green", "hills", "and", "small", "boats", "drift", "past", "old", "stone", "walls",
    "under", "clear", "blue", "sky", "with", "warm", "wind", "from", "the", "sea",
)
_WRITE_N_WORDS = re.compile(r"\bwrite\s+(\d{1,6})\s+words\b", re.IGNORECASE)
_VALID_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
REASONING_BY_EFFORT = {"minimal": 0, "none": 0, "low": 64, "medium": 192, "high": 512, "xhigh": 1024, "max": 2048}
# Every property of CreateChatCompletionRequest in the official spec; anything else is refused.
KNOWN_PARAMS = frozenset((
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "messages", "metadata", "modalities", "model", "moderation", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options",
))
CACHE_MIN_TOKENS = 1024
CACHE_STEP = 128


@dataclass
class Choice:
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int


@dataclass
class ChatOutcome:
    id: str
    created: int
    model: str
    system_fingerprint: str
    choices: list[Choice]
    prompt_tokens: int
    cached_tokens: int
    service_tier: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        return sum(c.reasoning_tokens for c in self.choices)

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def to_completion(self) -> dict[str, Any]:
        choices = []
        for i, c in enumerate(self.choices):
            message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": None, "annotations": []}
            if c.tool_calls:
                message["tool_calls"] = c.tool_calls
            choices.append({"index": i, "message": message, "logprobs": None, "finish_reason": c.finish_reason})
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(),
            "service_tier": self.service_tier,
            "system_fingerprint": self.system_fingerprint,
        }


class PromptCache:
    """Remembers hashes of prompt prefixes so a repeated long prefix reports cached tokens."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self.capacity = capacity

    def lookup_and_record(self, model: str, token_ids: list[int]) -> int:
        if len(token_ids) < CACHE_MIN_TOKENS:
            return 0
        raw = array.array("I", token_ids).tobytes()
        h = hashlib.sha1(model.encode(), usedforsecurity=False)
        cached, pos = 0, 0
        for boundary in range(CACHE_MIN_TOKENS, len(token_ids) + 1, CACHE_STEP):
            h.update(raw[pos * 4 : boundary * 4])
            pos = boundary
            key = h.digest()
            if key in self._seen:
                cached = boundary
                self._seen.move_to_end(key)
            else:
                self._seen[key] = None
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return cached


def _text_of(content: Any) -> tuple[str, list[dict[str, Any]]]:
    """The text of a message's content and its non-text parts."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts, others = [], []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict):
                others.append(part)
    return "\n".join(texts), others


def _int_param(body: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(
            f"Invalid type for '{name}': expected an integer, but got {type(value).__name__} instead.",
            param=name,
            code="invalid_type",
        )
    if value < lo:
        raise invalid(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {lo}, but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if hi is not None and value > hi:
        raise invalid(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {hi}, but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def _number_param(body: dict[str, Any], name: str, lo: float, hi: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(
            f"Invalid type for '{name}': expected a decimal, but got {type(value).__name__} instead.",
            param=name,
            code="invalid_type",
        )
    if value < lo:
        raise invalid(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {lo:g}, but got {value} instead.",
            param=name,
            code="decimal_below_min_value",
        )
    if value > hi:
        raise invalid(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {hi:g}, but got {value} instead.",
            param=name,
            code="decimal_above_max_value",
        )


def check_effort(effort: Any, spec: ModelSpec, param: str) -> None:
    """The real 400 for a reasoning effort the model does not take."""
    if effort is None or not spec.efforts or effort in spec.efforts:
        return
    allowed = [f"'{e}'" for e in spec.efforts]
    listed = ", ".join(allowed[:-1]) + f", and {allowed[-1]}" if len(allowed) > 1 else allowed[0]
    raise invalid(
        f"Unsupported value: '{param}' does not support '{effort}' with this model. Supported values are: {listed}.",
        param=param,
        code="unsupported_value",
    )


def refuse_function_tools_with_effort(body: dict[str, Any], spec: ModelSpec) -> None:
    """gpt-5.4 and later refuse function tools with a reasoning effort on /v1/chat/completions.

    Which models do is data (ModelSpec.chat_tools_effort_refusal); the effort that counts is the one
    sent, or the model's default when none is (the gpt-5.6 models reason by default, so they refuse
    tools even without reasoning_effort).
    """
    if spec.chat_tools_effort_refusal is None:
        return
    tools = body.get("tools")
    has_function = isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") == "function" for t in tools)
    effort = body.get("reasoning_effort") or spec.default_effort
    if has_function and effort != "none":
        raise invalid(
            f"Function tools with reasoning_effort are not supported for {body.get('model') or spec.id} in "
            f"/v1/chat/completions. {spec.chat_tools_effort_refusal}",
            param="reasoning_effort",
        )


class ChatSimulator:
    def __init__(self) -> None:
        self.cache = PromptCache()

    # -- validation -------------------------------------------------------------
    def _check(self, body: dict[str, Any], spec: ModelSpec, api: str = "chat") -> None:
        unknown = sorted(set(body) - KNOWN_PARAMS)
        if unknown:
            raise invalid(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0],
                          code="unknown_parameter")
        if spec.kind != "chat":
            raise ApiError(
                404,
                "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
                "Did you mean to use v1/completions?",
                param="model",
                code=None,
            )
        messages = body.get("messages")
        if messages is None:
            raise invalid("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
        if not isinstance(messages, list):
            raise invalid("Invalid type for 'messages': expected an array.", param="messages", code="invalid_type")
        if not messages:
            raise invalid("[] is too short - 'messages'", param="messages", code="empty_array")
        saw_tool_calls = False
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise invalid(f"Invalid type for 'messages[{i}]': expected an object.", param=f"messages[{i}]")
            role = m.get("role")
            if role not in _VALID_ROLES:
                raise invalid(
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
                    "'tool', and 'developer'.",
                    param=f"messages[{i}].role",
                    code="invalid_value",
                )
            if role == "assistant" and m.get("tool_calls"):
                saw_tool_calls = True
            if role == "tool" and not saw_tool_calls:
                raise invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
        _int_param(body, "n", 1, 128)
        _number_param(body, "temperature", 0, 2)
        _number_param(body, "top_p", 0, 1)
        _number_param(body, "presence_penalty", -2, 2)
        _number_param(body, "frequency_penalty", -2, 2)
        if spec.reasoning and body.get("max_tokens") is not None:
            raise invalid(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        _int_param(body, "max_tokens", 1)
        _int_param(body, "max_completion_tokens", 1)
        check_effort(body.get("reasoning_effort"), spec, "reasoning_effort")
        stop = body.get("stop")
        if stop is not None and not isinstance(stop, str):
            if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
                raise invalid("Invalid type for 'stop': expected a string or an array of strings.", param="stop")
            if len(stop) > 4:
                raise invalid(
                    f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array "
                    f"with length {len(stop)} instead.",
                    param="stop",
                    code="array_above_max_length",
                )
        if body.get("stream_options") is not None and not body.get("stream"):
            raise invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise invalid("Invalid type for 'tools': expected an array.", param="tools", code="invalid_type")
            for i, tool in enumerate(tools):
                fn = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(fn, dict) or not fn.get("name"):
                    raise invalid(
                        f"Missing required parameter: 'tools[{i}].function.name'.",
                        param=f"tools[{i}].function.name",
                        code="missing_required_parameter",
                    )
                if fn.get("strict"):
                    check_strict_schema(
                        fn.get("parameters") or {"type": "object", "properties": {}, "additionalProperties": False},
                        kind="function",
                        name=fn["name"],
                    )
        if api == "chat":
            refuse_function_tools_with_effort(body, spec)
        choice = body.get("tool_choice")
        if choice is not None and choice != "none" and not tools:
            raise invalid(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                param="tool_choice",
            )
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if name not in {t["function"]["name"] for t in tools or []}:
                raise invalid(
                    f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
                    param="tool_choice",
                )
        elif choice is not None and choice not in ("none", "auto", "required"):
            raise invalid(
                f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                param="tool_choice",
                code="invalid_value",
            )
        fmt = body.get("response_format")
        if fmt is not None:
            kind = fmt.get("type") if isinstance(fmt, dict) else None
            if kind not in ("text", "json_object", "json_schema"):
                raise invalid(
                    f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                    param="response_format.type",
                    code="invalid_value",
                )
            if kind == "json_schema":
                js = fmt.get("json_schema")
                if not isinstance(js, dict) or not js.get("name"):
                    raise invalid(
                        "Missing required parameter: 'response_format.json_schema.name'.",
                        param="response_format.json_schema.name",
                        code="missing_required_parameter",
                    )
                if js.get("strict"):
                    check_strict_schema(js.get("schema"), kind="response_format", name=js["name"])
            if kind == "json_object" and "json" not in json.dumps(messages).lower():
                raise invalid(
                    "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                    "'json_object'.",
                    param="messages",
                )

    # -- prompt accounting ---------------------------------------------------------
    def _prompt(
        self, messages: list[dict[str, Any]], spec: ModelSpec, tools: list[dict[str, Any]] | None
    ) -> tuple[list[int], int, list[list[ImageInfo]]]:
        """Prompt token ids (for caching), the image token total, images per message."""
        enc = spec.encoding
        ids: list[int] = []
        image_total = 0
        images_per_message: list[list[ImageInfo]] = []
        framing = [0] * tokens.TOKENS_PER_MESSAGE
        for i, m in enumerate(messages):
            text, parts = _text_of(m.get("content"))
            ids += framing
            ids += tokens.encode(str(m.get("role", "")), enc)
            ids += tokens.encode(text, enc)
            if m.get("name"):
                ids += [0] * tokens.TOKENS_PER_NAME
                ids += tokens.encode(str(m["name"]), enc)
            if m.get("tool_calls"):
                ids += tokens.encode(json.dumps(m["tool_calls"], separators=(",", ":")), enc)
            found: list[ImageInfo] = []
            for part in parts:
                if part.get("type") == "image_url":
                    image = part.get("image_url") or {}
                    url = image.get("url") if isinstance(image, dict) else None
                    if not isinstance(url, str) or not url:
                        raise invalid(
                            f"Missing required parameter: 'messages[{i}].content[].image_url.url'.",
                            param=f"messages[{i}].content",
                            code="missing_required_parameter",
                        )
                    info = inspect_image_url(url)
                    if info is None:
                        raise invalid(
                            "You uploaded an unsupported image. Please make sure your image has of one the "
                            "following formats: ['png', 'jpeg', 'gif', 'webp'].",
                            param=None,
                            code="invalid_image_format",
                        )
                    found.append(info)
                    image_total += image_tokens(info.width, info.height, str(image.get("detail", "auto")))
            images_per_message.append(found)
        ids += [0] * tokens.REPLY_PRIMING
        if tools:
            ids += tokens.encode(tokens.tools_text(tools), enc)
        return ids, image_total, images_per_message

    # -- the simulation ---------------------------------------------------------------
    def complete(self, body: dict[str, Any], spec: ModelSpec, model_name: str, *, api: str = "chat") -> ChatOutcome:
        """Simulate one request. api="responses" when a Responses request runs through here
        (sandbox/responses_engine.py): the rules that only Chat Completions has are skipped."""
        self._check(body, spec, api)
        messages: list[dict[str, Any]] = body["messages"]
        tools: list[dict[str, Any]] | None = body.get("tools") or None
        ids, picture_tokens, images = self._prompt(messages, spec, tools)
        prompt_tokens = len(ids) + picture_tokens
        budget = body.get("max_completion_tokens") or body.get("max_tokens")
        if prompt_tokens + (budget or 0) > spec.context_window:
            raise ApiError(
                400,
                f"This model's maximum context length is {spec.context_window} tokens. However, your messages "
                f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        cached = self.cache.lookup_and_record(spec.id, ids)
        seed_material = json.dumps([messages, body.get("seed"), model_name, tools], sort_keys=True, default=str)
        digest = hashlib.sha256(seed_material.encode()).digest()
        base_seed = int.from_bytes(digest[:8], "big")

        last_user_index = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        last_user_text = _text_of(messages[last_user_index].get("content"))[0] if last_user_index >= 0 else ""
        last_images = images[last_user_index] if last_user_index >= 0 else []

        n = body.get("n") or 1
        choices = []
        tool_calls = self._tool_calls(body, messages, tools, last_user_text, base_seed)
        for index in range(n):
            choices.append(
                self._choice(body, spec, messages, tools, tool_calls, last_user_text, last_images, base_seed, index)
            )
        created = int(time.time())
        return ChatOutcome(
            id="chatcmpl-" + stable_id("", seed_material, time.time_ns(), length=29),
            created=created,
            model=model_name,
            system_fingerprint="fp_" + hashlib.md5(spec.id.encode(), usedforsecurity=False).hexdigest()[:10],
            choices=choices,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            service_tier=str(body.get("service_tier") or "default") if body.get("service_tier") != "auto" else "default",
        )

    def _tool_calls(
        self,
        body: dict[str, Any],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        text: str,
        seed: int,
    ) -> list[dict[str, Any]] | None:
        if not tools:
            return None
        choice = body.get("tool_choice", "auto")
        if choice == "none":
            return None
        by_name = {t["function"]["name"]: t["function"] for t in tools}
        if isinstance(choice, dict):
            wanted = [choice["function"]["name"]]
        else:
            after_tools = messages[-1].get("role") == "tool"
            # A whole-word mention, so "get_time" is not found inside "get_timezone".
            found = ((re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text), name) for name in by_name)
            positions = sorted((m.start(), name) for m, name in found if m)
            wanted = [] if after_tools and choice != "required" else [name for _, name in positions]
            if choice == "required" and not wanted:
                wanted = [tools[0]["function"]["name"]]
        if not wanted:
            return None
        if body.get("parallel_tool_calls") is False:
            wanted = wanted[:1]
        hints = parse_hints(text)
        calls = []
        for i, name in enumerate(wanted):
            params = by_name[name].get("parameters") or {"type": "object", "properties": {}}
            args = build_instance(params, hints, seed + i)
            calls.append(
                {
                    "id": stable_id("call_", seed, i, name),
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args, separators=(",", ":"))},
                }
            )
        return calls

    def _reply_text(
        self, messages: list[dict[str, Any]], text: str, images: list[ImageInfo], seed: int, index: int
    ) -> str:
        if messages[-1].get("role") == "tool":
            return self._tool_results(messages)
        stripped = text.strip()
        if stripped.lower().startswith("echo:"):
            return stripped[5:].lstrip(" ")
        prefix = ""
        if images:
            described = "; ".join(
                f"{i.mime}, {i.width}x{i.height}" if i.is_data_url else "remote URL" for i in images
            )
            prefix = f"I see {len(images)} image{'s' if len(images) != 1 else ''} ({described}). "
        m = _WRITE_N_WORDS.search(text)
        if m:
            count = min(int(m.group(1)), 100_000)
            words = [WORDS[(seed + index + k * 7) % len(WORDS)] for k in range(count)]
            if words:
                words[0] = words[0].capitalize()
            return prefix + " ".join(words) + ("." if words else "")
        continuation = CONTINUATIONS[(seed + index) % len(CONTINUATIONS)]
        if not stripped:
            return prefix + continuation
        return f'{prefix}You said: "{stripped}" {continuation}'

    @staticmethod
    def _tool_results(messages: list[dict[str, Any]]) -> str:
        names: dict[str, str] = {}
        for m in messages:
            for call in m.get("tool_calls") or []:
                names[call.get("id", "")] = (call.get("function") or {}).get("name", "tool")
        trailing = []
        for m in reversed(messages):
            if m.get("role") != "tool":
                break
            trailing.append(m)
        parts = [
            f"{names.get(str(m.get('tool_call_id')), 'tool')}: {_text_of(m.get('content'))[0]}" for m in reversed(trailing)
        ]
        return "Tool results: " + "; ".join(parts)

    def _choice(
        self,
        body: dict[str, Any],
        spec: ModelSpec,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_calls: list[dict[str, Any]] | None,
        text: str,
        images: list[ImageInfo],
        seed: int,
        index: int,
    ) -> Choice:
        enc = spec.encoding
        reasoning = 0
        if spec.reasoning:
            effort = str(body.get("reasoning_effort") or spec.default_effort)
            reasoning = REASONING_BY_EFFORT.get(effort, 192)
            if reasoning:
                reasoning += (seed + index) % 64
        budget = body.get("max_completion_tokens") or body.get("max_tokens")
        if budget is not None and reasoning >= budget:
            return Choice("", None, "length", budget, budget)
        if tool_calls:
            forced = isinstance(body.get("tool_choice"), dict)
            used = sum(tokens.count(c["function"]["arguments"], enc) + 4 for c in tool_calls)
            return Choice(None, tool_calls, "stop" if forced else "tool_calls", used + reasoning, reasoning)
        content = self._content(body, messages, text, images, seed, index)
        finish = "stop"
        stops = body.get("stop")
        if stops:
            for s in [stops] if isinstance(stops, str) else stops:
                cut = content.find(s) if s else -1
                if cut >= 0:
                    content = content[:cut]
        ids = tokens.encode(content, enc)
        if budget is not None and len(ids) > budget - reasoning:
            ids = ids[: budget - reasoning]
            content = tokens.encoding(enc).decode(ids)
            finish = "length"
        return Choice(content, None, finish, len(ids) + reasoning, reasoning)

    def _content(
        self, body: dict[str, Any], messages: list[dict[str, Any]], text: str, images: list[ImageInfo], seed: int, index: int
    ) -> str:
        fmt = body.get("response_format") or {}
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_schema":
            schema = fmt["json_schema"].get("schema") or {"type": "object", "properties": {}}
            return json.dumps(build_instance(schema, parse_hints(text), seed + index))
        reply = self._reply_text(messages, text, images, seed, index)
        if kind == "json_object":
            try:
                parsed = json.loads(reply)
                if isinstance(parsed, dict):
                    return json.dumps(parsed)
            except ValueError:
                pass
            return json.dumps({"reply": reply})
        return reply

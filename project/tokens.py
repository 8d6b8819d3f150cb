"""Token counting with tiktoken, offline (the encoding files ship in project/data).

Chat messages are counted the way OpenAI's cookbook counts them for current
models: 3 tokens of overhead per message, 1 more when it has a name, and 3 to
prime the reply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import tiktoken

from project.providers.model_facts import model_facts
from project.tokenizer_files import use_bundled_tiktoken_files

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

use_bundled_tiktoken_files()


@cache
def encoding_named(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def encoding_for_model(model_id: str) -> tiktoken.Encoding:
    return encoding_named(model_facts(model_id).encoding)


def count_text(text: str, model_id: str) -> int:
    return len(encoding_for_model(model_id).encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def count_message(message: Mapping[str, Any], encoding: tiktoken.Encoding) -> int:
    tokens = TOKENS_PER_MESSAGE
    tokens += len(encoding.encode(str(message.get("role", "")), disallowed_special=()))
    tokens += len(encoding.encode(_content_text(message.get("content")), disallowed_special=()))
    if message.get("name"):
        tokens += TOKENS_PER_NAME + len(encoding.encode(str(message["name"]), disallowed_special=()))
    tool_calls = message.get("tool_calls")
    if tool_calls:
        tokens += len(encoding.encode(json.dumps(tool_calls, separators=(",", ":")), disallowed_special=()))
    return tokens


def count_messages(messages: Iterable[Mapping[str, Any]], model_id: str) -> int:
    encoding = encoding_for_model(model_id)
    return sum(count_message(message, encoding) for message in messages) + REPLY_PRIMING

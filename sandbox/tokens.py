"""Token counting with tiktoken, as the real service counts for each model family."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import tiktoken

from project.tokenizer_files import use_bundled_tiktoken_files

use_bundled_tiktoken_files()

# The standard chat accounting: every message costs 3 tokens of framing, a name
# costs 1 more, and the reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


@lru_cache(maxsize=4)
def encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def encode(text: str, encoding_name: str) -> list[int]:
    return encoding(encoding_name).encode(text, disallowed_special=())


def count(text: str, encoding_name: str) -> int:
    return len(encode(text, encoding_name))


def tools_text(tools: list[dict[str, Any]] | None) -> str:
    """Tool definitions cost prompt tokens too; approximate them by their JSON."""
    if not tools:
        return ""
    return json.dumps(tools, separators=(",", ":"), sort_keys=True)

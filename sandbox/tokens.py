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


def image_tokens(width: int, height: int, detail: str) -> int:
    """The published tile formula: 85 base, plus 170 per 512px tile at high detail."""
    if detail == "low":
        return 85
    if width <= 0 or height <= 0:
        width = height = 512
    # Fit within 2048x2048, then scale the short side down to 768.
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = -(-int(w) // 512) * -(-int(h) // 512)
    return 85 + 170 * tiles


def tools_text(tools: list[dict[str, Any]] | None) -> str:
    """Tool definitions cost prompt tokens too; approximate them by their JSON."""
    if not tools:
        return ""
    return json.dumps(tools, separators=(",", ":"), sort_keys=True)

"""Parsing what people type or put in a URL, so that bad input is a clear message or
"not found", never an error page."""

from __future__ import annotations

import json
from typing import Any

# PostgreSQL's bigint: a larger id in a query is an error there, not "no such row".
MAX_ID = 2**63 - 1


class UserJSONError(ValueError):
    """The text is not JSON that can be used; the message says why, for the page."""


def loads_user_json(text: str | bytes) -> Any:
    """json.loads for text from a person. Deep nesting ("[[[[…" 100,000 times) makes the
    parser hit Python's recursion limit, which is a RecursionError, not a ValueError;
    both become UserJSONError with a message, as do bytes that are not UTF-8."""
    try:
        return json.loads(text)
    except RecursionError:
        raise UserJSONError("the JSON is too deeply nested") from None
    except UnicodeDecodeError:  # bytes that are not text
        raise UserJSONError("not UTF-8 text") from None
    except ValueError as error:
        raise UserJSONError(str(error)) from None


def parse_id(raw: object) -> int | None:
    """A positive database id from a query or form value, or None for anything else
    (letters, "²", signs, numbers too large for the database)."""
    text = str(raw or "")
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None

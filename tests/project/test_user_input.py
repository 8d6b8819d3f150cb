"""The one parser for JSON people (or providers) send, and for ids in queries and forms."""

from __future__ import annotations

import pytest

from project.user_input import MAX_ID, UserJSONError, loads_user_json, parse_id


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 100_000, "too deeply nested"),
    (b"\x80{}", "not UTF-8 text"),
    ("{not json", "Expecting property name"),
])
def test_json_that_cannot_be_used_is_one_error_with_a_message(text: str | bytes, message: str) -> None:
    with pytest.raises(UserJSONError, match=message):
        loads_user_json(text)


def test_good_json_is_parsed() -> None:
    assert loads_user_json(b'{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize(("raw", "expected"), [
    ("42", 42), (7, 7), (str(MAX_ID), MAX_ID), (str(MAX_ID + 1), None), ("\u00b2", None), ("-1", None), ("0", None),
    ("", None), (None, None), ("1e3", None), (" 4", None),
])
def test_parse_id(raw: object, expected: int | None) -> None:
    assert parse_id(raw) == expected

"""Input that once ended in an error page (with the settings on it, under DEBUG): a cursor
holding 1e400, JSON nested 100,000 deep. Each gets the first page or a form error."""

from __future__ import annotations

import base64
import json

import pytest

from assistants_app.models import AssistantVersion
from tests.factories import make_connection, make_thread

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


BAD_CURSORS = [
    "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgMWU0MDBd",  # ["2026-01-01T00:00:00+00:00", 1e400]
    _cursor(["2026-01-01T00:00:00+00:00", 10**30]),  # past PostgreSQL's bigint
    _cursor(["2026-01-01T00:00:00", 5]),  # no time zone
    _cursor(["2026-01-01T00:00:00+00:00", 2.5]),
    _cursor({"a": 1, "b": 2}),
    _cursor([1, 2, 3]),
    _cursor(None),
    base64.urlsafe_b64encode(DEEP.encode()).decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "%%%not-base64",
    "é",
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
@pytest.mark.parametrize("url", ["/threads/", "/batches/from-threads/"])
def test_a_malformed_cursor_shows_the_first_page(owner_client, team, url: str, cursor: str) -> None:
    thread = make_thread(team, title="Still listed")
    response = owner_client.get(url, {"cursor": cursor})
    assert response.status_code == 200
    assert thread.title in response.content.decode()


@pytest.mark.parametrize("value", ["99999999999999999999999", "²", "-1"])
def test_a_malformed_filter_id_is_ignored(owner_client, team, value: str) -> None:
    assert owner_client.get("/threads/", {"assistant": value, "author": value}).status_code == 200


def _form(connection, **overrides: str) -> dict[str, str]:
    data = {"name": "Helper", "description": "", "connection": str(connection.pk), "model": "gpt-4.1-mini",
            "instructions": "", "temperature": "", "top_p": "", "reasoning_effort": "", "max_output_tokens": "",
            "tools": "", "response_schema": ""}
    data.update(overrides)
    return data


@pytest.mark.parametrize("field", ["tools", "response_schema"])
def test_json_nested_too_deep_is_a_form_error(owner_client, team, field: str) -> None:
    response = owner_client.post("/assistants/new/", _form(make_connection(team), **{field: DEEP}))
    assert response.status_code == 200
    assert "too deeply nested" in response.content.decode()
    assert not AssistantVersion.objects.exists()


def test_deep_json_in_text_is_shown_as_text() -> None:
    from assistants_app.rendering import pretty_json
    from assistants_app.templatetags.chat import schema_problem

    assert pretty_json(DEEP) is None
    assert schema_problem(DEEP, {"type": "object"}) == "The reply is not valid JSON."


@pytest.mark.parametrize("value", ["99999999999999999999999", "²"])
def test_a_malformed_id_in_the_start_chat_link_is_a_404(owner_client, team, value: str) -> None:
    assert owner_client.get("/threads/new/", {"model": "gpt-4.1-mini", "connection": value}).status_code == 404


def test_switching_to_a_malformed_team_id_is_a_404(owner_client, team) -> None:
    assert owner_client.post("/teams/switch/", {"team_id": "99999999999999999999999"}).status_code == 404

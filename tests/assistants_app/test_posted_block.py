"""A posted message's block is rendered once: the POST answers with it, and its run's
announcement carries it to every page open on the thread, which shows it without a
query and a render of its own (views_stream). A late reader of the announcement, or a
block too long to carry, is rendered by the page from the database as before."""

from __future__ import annotations

from typing import Any

import pytest

from assistants_app import streams, views_stream
from assistants_app.models import Run, feed_key
from tests.assistants_app.test_streaming import page_reading, parse_sse, until_received
from tests.conftest import client_for
from tests.factories import add_member, make_assistant, make_thread, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _post_while_a_colleague_watches(team: Any, owner: Any, connection: Any, text: str
                                     ) -> tuple[str, dict[str, str], Run]:
    """A colleague's page holds the thread's stream open; the owner posts from theirs.
    Returns the POST's answer, the colleague's "run" event and the run."""
    thread = make_thread(team, make_assistant(team, connection))
    colleague = make_user("casey")
    add_member(team, colleague)
    with page_reading(colleague, f"/threads/{thread.pk}/events/", "run") as (received, reading):
        until_received(received, "id: ", "the page's stream did not open")
        answer = client_for(owner).post(f"/threads/{thread.pk}/messages/", {"text": text}, HTTP_HX_REQUEST="true")
        assert answer.status_code == 200 and b"post-error" in answer.content and b"run-error" not in answer.content
        events = parse_sse(reading.result(timeout=20))
    return answer.content.decode(), events[-1], Run.objects.get(thread=thread)


@pytest.fixture
def renders(monkeypatch) -> list[int]:
    """The runs a page rendered itself (views_stream.render_run), in order."""
    rendered: list[int] = []
    real_render = views_stream.render_run

    def counted(thread_id: int, run_id: int, *args: Any, **kwargs: Any) -> str:
        rendered.append(run_id)
        return real_render(thread_id, run_id, *args, **kwargs)

    monkeypatch.setattr(views_stream, "render_run", counted)
    return rendered


def test_the_pages_open_on_the_thread_show_the_posted_block_without_rendering_it(team, owner, chat_connection,
                                                                                monkeypatch) -> None:
    def no_render(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the page read and rendered the run itself")

    monkeypatch.setattr(views_stream, "render_run", no_render)
    answer, event, run = _post_while_a_colleague_watches(team, owner, chat_connection, "Anyone <there>?")
    assert event["event"] == "run"
    block = event["data"]
    # The colleague's page gets the block the poster's page got: the message, its author,
    # and the live block that listens for the run's text, with a Stop button.
    assert answer.startswith(block)
    assert f'id="m-{run.user_message_id}"' in block and "Anyone &lt;there&gt;?" in block and owner.username in block
    assert f'sse-swap="delta-{run.pk}"' in block and f"/runs/{run.pk}/stop/" in block
    # Shared by every viewer: nothing of one request (its CSRF token) is in it.
    assert "csrfmiddlewaretoken" not in block


def test_a_late_reader_of_the_announcement_renders_the_run_as_it_is_now(team, owner, chat_connection, renders,
                                                                       monkeypatch) -> None:
    monkeypatch.setattr(views_stream, "ANNOUNCED_FOR_MS", 0)  # every announcement is old
    answer, event, run = _post_while_a_colleague_watches(team, owner, chat_connection, "Hello")
    assert renders == [run.pk]
    assert event["event"] == "run" and f'id="run-{run.pk}"' in event["data"] and f'id="m-{run.user_message_id}"' in answer


def test_a_block_too_long_to_carry_is_announced_without_it(team, owner, chat_connection, renders,
                                                          monkeypatch) -> None:
    monkeypatch.setattr(streams, "ANNOUNCED_HTML_MAX", 500)
    long_text = "A long question. " * 60
    _, event, run = _post_while_a_colleague_watches(team, owner, chat_connection, long_text)
    entries: Any = streams.redis_client().xrange(feed_key(run.thread_id))
    assert entries[-1][1] == {b"run": str(run.pk).encode()}
    assert renders == [run.pk] and long_text.strip() in event["data"]

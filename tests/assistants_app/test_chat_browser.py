"""In a real browser against the dashboard under uvicorn (ASGI, so SSE streams):
create an assistant, chat and watch the reply stream in, use a tool, roll back a
version, search the history."""

from __future__ import annotations

import time
from typing import Any

import pytest

from project.providers.models import ProviderKind
from tests.factories import log_in, make_connection, make_team, make_user, send_with_enter

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


def test_create_an_assistant_chat_use_a_tool_roll_back_and_search(page, asgi_url, paced_sandbox) -> None:
    user = make_user("carmen")
    team = make_team("Support", owner=user)
    make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX, name="Sandbox")

    log_in(page, asgi_url, "carmen", expect_heading="Support")

    page.click("nav.mainnav >> text=Assistants")
    page.click("text=New assistant")
    page.fill("input[name=name]", "Helpdesk")
    page.fill("input[name=model]", "gpt-4.1-mini")
    page.fill("textarea[name=instructions]", "Answer politely.")
    page.fill("textarea[name=tools]", '[{"name": "calculator", "binding": "builtin"}]')
    page.click("button:has-text('Create assistant')")
    page.wait_for_selector("text=Assistant Helpdesk created (version 1).")

    page.click("button:has-text('Start a chat')")
    send_with_enter(page, "write 600 words")
    # The reply streams in: the live block shows part of it before the whole arrives.
    page.wait_for_selector(".live .stream-text span")
    partial_words = len(page.inner_text(".live .stream-text").split())
    final = page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md")
    assert 0 < partial_words < 600
    assert len(final.inner_text().split()) == 600
    # The post's answer and the page's stream both bring the new blocks: each is shown once.
    assert page.locator("#message-list .msg.user").count() == 1
    assert page.locator("#message-list .run-group").count() == 1
    assert page.input_value("#composer-text") == ""

    page.fill("#composer-text", "use calculator expression=6*7")
    page.click("#composer button[type=submit]")
    page.wait_for_selector("text=Tool results: calculator: 6*7 = 42")
    # When the run ends its block is rendered from the database, with the call the model made.
    page.wait_for_selector(".run-group[data-run-status=succeeded] .tool-line:has-text('calls calculator')")

    page.click("text=Helpdesk")
    page.click("a:has-text('Edit')")
    page.fill("textarea[name=instructions]", "Answer rudely.")
    page.click("button:has-text('Save new version')")
    page.wait_for_selector("text=Saved as version 2.")
    page.click("button:has-text('Roll back to v1')")
    page.wait_for_selector("text=version 3 is a copy of version 1")
    assert "Answer politely." in page.inner_text("pre.instructions")

    page.click("nav.mainnav >> text=Threads")
    page.fill("input[name=q]", "calculator")
    page.click("button:has-text('Filter')")
    # The search box answers on the search page (search_app): the matched message, its words marked.
    mark = page.wait_for_selector(".search-result mark")
    assert mark.inner_text().lower() == "calculator"
    started = time.monotonic()
    page.click(".search-result a.result-thread")
    page.wait_for_selector("#message-list .msg.user")
    assert time.monotonic() - started < 5


def test_a_colleagues_open_page_shows_a_new_message_and_its_reply_streaming_without_a_reload(
        page, asgi_url, paced_sandbox) -> None:
    from assistants_app.services import thread_post_message
    from tests.factories import add_member, make_assistant, make_thread

    owner = make_user("olga")
    team = make_team("Ops", owner=owner)
    colleague = make_user("pavel")
    add_member(team, colleague)
    thread = make_thread(team, make_assistant(team, make_connection(team, base_url=paced_sandbox,
                                                                   kind=ProviderKind.SANDBOX)))
    log_in(page, asgi_url, "pavel", expect_heading="Ops")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    # Posted after the page was rendered: its stream follows the thread's feed from the
    # position the page was rendered at, whenever the connection opens.
    message, run = thread_post_message(thread=thread, actor=owner, text="write 400 words, please")
    page.wait_for_selector(f"#m-{message.pk}:has-text('write 400 words, please')")
    page.wait_for_selector(f"#run-{run.pk} .live .stream-text span")
    partial_words = len(page.inner_text(f"#run-{run.pk} .live .stream-text").split())
    final = page.wait_for_selector(f"#run-{run.pk}[data-run-status=succeeded] .msg.assistant .md")
    assert 0 < partial_words < 400
    assert len(final.inner_text().split()) == 400
    assert page.locator(f"#m-{message.pk}").count() == 1 and page.locator(f"#run-{run.pk}").count() == 1


def test_a_post_answered_after_its_stream_has_shown_the_run_is_not_shown_twice(
        page, asgi_url, paced_sandbox, monkeypatch) -> None:
    # The page's stream usually brings the run a moment after the post's own answer;
    # here the answer is held back so that the stream's copy is on the page first.
    from assistants_app import services
    from tests.factories import make_assistant, make_thread

    post = services.thread_post_message

    def slow_post(**kwargs: Any) -> Any:
        posted = post(**kwargs)
        time.sleep(0.8)  # committed and announced: the run streams while the answer waits
        return posted

    monkeypatch.setattr(services, "thread_post_message", slow_post)
    owner = make_user("quinn")
    team = make_team("Late", owner=owner)
    thread = make_thread(team, make_assistant(team, make_connection(team, base_url=paced_sandbox,
                                                                   kind=ProviderKind.SANDBOX)))
    log_in(page, asgi_url, "quinn", expect_heading="Late")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    page.wait_for_timeout(300)  # the page's event stream is open
    send_with_enter(page, "write 400 words")
    page.wait_for_selector(".live .stream-text span")  # from the stream, while the post waits
    page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md")
    page.wait_for_timeout(300)
    assert page.locator("#message-list .msg.user").count() == 1
    assert page.locator("#message-list .run-group").count() == 1
    assert len(page.inner_text(".run-group .msg.assistant .md").split()) == 400


def test_a_stopped_reply_says_so_once_in_its_own_block_after_a_reload(page, asgi_url, paced_sandbox) -> None:
    from tests.factories import make_assistant, make_thread

    owner = make_user("rosa")
    team = make_team("Stops", owner=owner)
    thread = make_thread(team, make_assistant(team, make_connection(team, base_url=paced_sandbox,
                                                                   kind=ProviderKind.SANDBOX)))
    log_in(page, asgi_url, "rosa", expect_heading="Stops")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    send_with_enter(page, "write 2000 words")
    page.wait_for_selector(".live .stream-text span")
    page.click(".live .stop-form button")
    page.wait_for_selector(".run-group[data-run-status=cancelled]")
    for _ in range(2):  # as the stream rendered it, then as a reload renders it
        assert page.locator("text=Stopped. Stopped by a person.").count() == 1
        assert page.locator(".run-group[data-run-status=cancelled] .run-error").inner_text() == \
            "Stopped. Stopped by a person."
        assert page.locator(".msg.user .run-error").count() == 0
        page.reload()
        page.wait_for_selector(".run-group[data-run-status=cancelled]")

"""In a real browser against the dashboard under uvicorn (ASGI, so SSE streams): an admin
tests a sandbox connection and sees it detected as Responses, then an assistant on a
current model with tools and reasoning streams its thinking summary and its reply."""

from __future__ import annotations

import pytest

from project.providers.models import ProviderKind
from tests.factories import log_in, make_connection, make_team, make_user, send_with_enter

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


def test_a_tool_call_with_reasoning_on_a_responses_connection_shows_its_thinking(page, asgi_url, paced_sandbox) -> None:
    user = make_user("rhea")
    team = make_team("Research", owner=user)
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX, name="Sandbox")

    log_in(page, asgi_url, "rhea", expect_heading="Research")
    page.goto(f"{asgi_url}/settings/connections/")
    page.click(f"#connection-{connection.pk} button:has-text('Test connection')")
    page.wait_for_selector(f"#test-result-{connection.pk} :text('Engine: Responses (detected).')")

    page.goto(f"{asgi_url}/assistants/new/")
    # The picker marks a retiring model and says which engine the current ones need for tools with reasoning.
    assert page.locator("tr[data-retiring] code:text-is('gpt-5')").count() == 1
    page.fill("input[name=name]", "Analyst")
    page.fill("input[name=model]", "gpt-5.5")
    page.select_option("select[name=reasoning_effort]", "medium")
    page.fill("textarea[name=tools]", '[{"name": "calculator", "binding": "builtin"}]')
    page.click("button:has-text('Create assistant')")
    page.wait_for_selector("text=Assistant Analyst created (version 1).")

    page.click("button:has-text('Start a chat')")
    # The run is quick: record what the live block's Thinking part receives while it streams.
    page.evaluate("""() => {
        window.liveThinking = [];
        new MutationObserver((changes) => changes.forEach((change) => {
            if (change.target.matches && change.target.matches('.live .thinking-text')) {
                window.liveThinking.push(change.target.closest('details').open, change.target.textContent);
            }
        })).observe(document.body, {childList: true, subtree: true});
    }""")
    send_with_enter(page, "use calculator expression=6*7")
    done = page.wait_for_selector(".run-group[data-run-status=succeeded]")
    assert "Tool results: calculator: 6*7 = 42" in done.inner_text()
    assert "calls calculator" in done.inner_text()
    live = page.evaluate("window.liveThinking")
    assert live and live[0] is False and "Choosing tools" in "".join(str(part) for part in live)  # streamed, folded
    thinking = page.locator(".run-group[data-run-status=succeeded] details.thinking").first
    assert thinking.is_visible() and not thinking.evaluate("el => el.open")  # folded above the reply
    thinking.locator("summary").click()
    assert "Choosing tools" in thinking.inner_text()
    assert "Responses" in page.inner_text(".run-group[data-run-status=succeeded] .run-meta")
    assert "reasoning" in page.inner_text(".run-group[data-run-status=succeeded] .run-meta")


def test_a_long_running_reply_survives_a_reload(page, asgi_url, tmp_path) -> None:
    from assistants_app.models import Message, Run
    from project.providers.models import Engine
    from sandbox.testing import running_sandbox
    from tests.factories import make_assistant, make_thread

    user = make_user("lena")
    team = make_team("Long", owner=user)
    # The background clock at 2x: 300 words take about three seconds to write.
    with running_sandbox(tmp_path, time_scale=2.0) as url:
        connection = make_connection(team, base_url=url, kind=ProviderKind.SANDBOX, name="Sandbox")
        connection.engine = Engine.RESPONSES
        connection.save(update_fields=["engine"])
        thread = make_thread(team, make_assistant(team, connection, long_running=True))
        log_in(page, asgi_url, "lena", expect_heading="Long")
        page.goto(f"{asgi_url}/threads/{thread.pk}/")
        send_with_enter(page, "write 300 words")
        page.wait_for_selector(".live .stream-text span")
        page.reload()
        # The reloaded page replays what was written and follows the rest.
        page.wait_for_selector(".live .stream-text span")
        assert Run.objects.get(thread=thread).status == "running"
        final = page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md", timeout=30_000)
        saved = Message.objects.get(run__thread=thread, role="assistant").text
        assert len(saved.split()) == 300 and len(final.inner_text().split()) == 300


def test_a_polled_long_running_reply_survives_a_reload_and_ends_on_the_page(page, asgi_url, background_sandbox,
                                                                            monkeypatch) -> None:
    """A background response handed to beat's polling: the page shows what was written and
    says why, a reload shows it again, and beat's fetches end it on the open page."""
    from tests.assistants_app.test_polled_runs import _poll_to_end, _polled_run

    user = make_user("pia")
    team = make_team("Polled", owner=user)
    run, _ = _polled_run(team, background_sandbox, monkeypatch, "write 300 words")
    log_in(page, asgi_url, "pia", expect_heading="Polled")
    page.goto(f"{asgi_url}/threads/{run.thread_id}/")
    page.wait_for_selector(".live .stream-text span")
    page.reload()
    page.wait_for_selector(".live .stream-text span")
    page.wait_for_function("document.querySelector('.live .notes').innerText.includes('could not be followed')")
    run, _ = _poll_to_end(run.pk)
    assert run.status == "succeeded", run.error
    final = page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md", timeout=30_000)
    assert len(final.inner_text().split()) == 300

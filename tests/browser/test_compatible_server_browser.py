"""In a real browser (the dashboard under uvicorn, so the chat streams): add a connection to a
llama.cpp-like server (the sandbox's llamacpp profile), test it and see what it supports, give
its model a 4,096-token window, make an assistant on it from the picker, and chat past the
window: older messages are left out and the tokens are marked estimated (issue #15)."""

from __future__ import annotations

import pytest

from project.providers.models import ProviderKind
from tests.compatible import LLAMA_MODEL, profile_url
from tests.factories import log_in, make_connection, make_team, make_user, send_with_enter

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


def test_connect_a_llamacpp_server_see_its_capabilities_and_chat_past_its_window(page, asgi_url,
                                                                                 sandbox_url) -> None:
    user = make_user("lucia")
    team = make_team("Local", owner=user)
    make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")  # the default
    log_in(page, asgi_url, "lucia", expect_heading="Local")

    page.click("nav.mainnav >> text=Settings")
    page.click("text=Add connection")
    page.select_option("select[name=kind]", "compatible")
    page.fill("input[name=name]", "Local llama")
    page.fill("input[name=base_url]", profile_url(sandbox_url, "llamacpp", "n_ctx=4096"))
    page.click("button:has-text('Save connection')")
    page.wait_for_selector("text=Connection Local llama saved")

    page.click("tr:has-text('Local llama') button:has-text('Test connection')")
    summary = page.wait_for_selector("[data-capability-summary]")
    assert "The server lacks:" in summary.inner_text() and "JSON-schema replies" in summary.inner_text()
    page.click("[data-capability-summary] a:has-text('What it supports')")
    page.wait_for_selector("h2:has-text('What the server supports')")
    assert page.get_attribute("[data-capability=json_schema]", "data-ok") == "no"
    assert page.get_attribute("[data-capability=tools]", "data-ok") == "no"
    assert page.get_attribute("[data-capability=forced_tool_choice]", "data-ok") == "yes"
    assert page.get_attribute("[data-capability=files]", "data-ok") == "no"
    assert "unknown" in page.inner_text(f"tr[data-model='{LLAMA_MODEL}'] [data-context]")

    page.click(f"tr[data-model='{LLAMA_MODEL}'] a:has-text('Set facts')")
    page.fill("input[name=context_window]", "4096")
    page.check("input[name=free]")
    page.click("button:has-text('Save facts')")
    page.wait_for_selector(f"text=Saved the facts of {LLAMA_MODEL} on Local llama.")
    assert "4096" in page.inner_text(f"tr[data-model='{LLAMA_MODEL}'] [data-context]")

    page.click("nav.mainnav >> text=Assistants")
    page.click("text=New assistant")
    assert page.input_value("#id_model") == "gpt-4.1-mini"  # the default connection's model
    page.select_option("select[name=connection]", label="Local llama (OpenAI-compatible (llama.cpp, vLLM, proxy…))")
    page.wait_for_selector("h2:has-text('Models on Local llama')")
    assert page.input_value("#id_model") == LLAMA_MODEL
    assert page.locator("#model-ids option").count() == 1
    page.fill("input[name=name]", "Local helper")
    page.click("button:has-text('Create assistant')")
    page.wait_for_selector("text=Assistant Local helper created (version 1).")

    page.click("button:has-text('Start a chat')")
    for i in range(3):  # each about 1,200 tokens: the third does not fit with the first two
        send_with_enter(page, f"echo: part {i} " + "word " * 1200)
        page.wait_for_selector(f"#message-list .run-group[data-run-status=succeeded] >> nth={i}")
    last = page.locator("#message-list .run-group[data-run-status=succeeded] .run-meta").nth(2).inner_text()
    assert "(estimated)" in last and "older messages left out to fit the context" in last
    assert "$0.00" in last  # free / self-hosted, as set

"""In a real browser: attach an image to a message; the model is sent it as an image
part and the thread shows the picture and the reply about it."""

from __future__ import annotations

import base64

import pytest

from project.providers.models import ProviderKind
from tests.factories import PASSWORD, make_assistant, make_connection, make_team, make_thread, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_attach_an_image_and_get_a_reply_about_it(page, asgi_url, paced_sandbox) -> None:
    user = make_user("ines")
    team = make_team("Vision", owner=user)
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4o"), title="Pictures")

    page.goto(f"{asgi_url}/login/")
    page.fill("input[name=username]", "ines")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Vision')")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    page.set_input_files("input[name=images]", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}])
    assert "dot.png" in page.inner_text("[data-chat-attached]")
    page.fill("#composer-text", "What is in this picture?")
    page.click("#composer button[type=submit]")
    page.wait_for_selector("img.attached[alt='dot.png']")
    reply = page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md")
    assert reply.inner_text().startswith("I see 1 image (image/png, 1x1).")


def test_the_assistant_asks_a_person_and_goes_on_with_the_answer(page, asgi_url, paced_sandbox) -> None:
    user = make_user("omar")
    team = make_team("Approvals", owner=user)
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    assistant = make_assistant(team, connection, tools=[
        {"name": "approve", "binding": "human", "description": "Ask a manager", "timeout": 10,
         "parameters": {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"],
                        "additionalProperties": False}}])
    thread = make_thread(team, assistant, title="Refund")

    page.goto(f"{asgi_url}/login/")
    page.fill("input[name=username]", "omar")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Approvals')")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    page.fill("#composer-text", "use approve amount=250")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=The assistant asks a person for the result of approve")
    page.fill("form.tool-answer input[name=answer]", "Approved by Omar")
    page.click("form.tool-answer button")
    reply = page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md")
    assert reply.inner_text() == "Tool results: approve: Approved by Omar"
    page.reload()
    assert "Approved by Omar" in page.inner_text("#message-list")

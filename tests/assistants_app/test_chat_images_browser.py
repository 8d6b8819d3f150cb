"""In a real browser: attach an image to a message (with the file picker or by pasting
it into the composer); the model is sent it as an image part and the thread shows the
picture and the reply about it."""

from __future__ import annotations

import base64

import pytest

from assistants_app.models import ChatImage, Message
from project.providers.models import ProviderKind
from tests.factories import log_in, make_assistant, make_connection, make_team, make_thread, make_user, send_with_enter

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_BASE64)


def test_attach_an_image_and_get_a_reply_about_it(page, asgi_url, paced_sandbox) -> None:
    user = make_user("ines")
    team = make_team("Vision", owner=user)
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4o"), title="Pictures")

    log_in(page, asgi_url, "ines", expect_heading="Vision")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    page.set_input_files("input[name=images]", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}])
    assert "dot.png" in page.inner_text("[data-chat-attached]")
    page.fill("#composer-text", "What is in this picture?")
    page.click("#composer button[type=submit]")
    page.wait_for_selector("img.attached[alt='dot.png']")
    reply = page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md")
    assert reply.inner_text().startswith("I see 1 image (image/png, 1x1).")


# What the browser does on Ctrl+V with pictures on the clipboard: a paste event on the
# focused textarea whose clipboardData holds them as files. Returns whether the browser
# would go on with its own paste (false: the page took the images).
PASTE_IMAGE = """([name, base64]) => {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const clipboard = new DataTransfer();
  clipboard.items.add(new File([bytes], name, {type: "image/png"}));
  const paste = new ClipboardEvent("paste", {clipboardData: clipboard, bubbles: true, cancelable: true});
  return document.activeElement.dispatchEvent(paste);
}"""


def test_images_pasted_into_the_composer_are_sent_with_the_message(page, asgi_url, paced_sandbox) -> None:
    user = make_user("paula")
    team = make_team("Clipboard", owner=user)
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4o"), title="Screenshots")

    log_in(page, asgi_url, "paula", expect_heading="Clipboard")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    page.wait_for_load_state("load")  # chat.js takes pasted pictures once it runs
    page.fill("#composer-text", "What are these?")
    page.focus("#composer-text")
    assert page.evaluate(PASTE_IMAGE, ["first.png", PNG_BASE64]) is False, "the composer did not take the pasted image"
    # A second paste adds to the first instead of replacing it.
    assert page.evaluate(PASTE_IMAGE, ["second.png", PNG_BASE64]) is False, "the composer did not take the pasted image"
    assert page.inner_text("[data-chat-attached]") == "attached: first.png, second.png"
    assert page.input_value("#composer-text") == "What are these?"

    page.keyboard.press("Enter")
    reply = page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md")
    assert reply.inner_text().startswith("I see 2 images (image/png, 1x1; image/png, 1x1).")
    # Sent once: the composer no longer holds them for the next message.
    assert page.inner_text("[data-chat-attached]") == ""

    message = Message.objects.get(thread=thread, role="user")
    assert message.text == "What are these?"
    # Stored as a picture of the team's (once: both are the same bytes), not inside the message.
    stored = ChatImage.objects.get(team=team)
    assert [(a["type"], a["name"], a["mime"], a["image_id"], a["width"]) for a in message.attachments] == [
        ("image", "first.png", "image/png", stored.pk, 1),
        ("image", "second.png", "image/png", stored.pk, 1),
    ]
    with stored.image.open("rb") as saved:
        assert saved.read() == PNG
    page.reload()
    for name in ("first.png", "second.png"):
        # naturalWidth 1: the browser decoded the stored picture, not just an <img> with a broken source.
        shown = page.wait_for_selector(f"#message-list .msg.user img.attached[alt='{name}']")
        assert shown.evaluate("img => img.complete && img.naturalWidth") == 1


def test_the_assistant_asks_a_person_and_goes_on_with_the_answer(page, asgi_url, paced_sandbox) -> None:
    user = make_user("omar")
    team = make_team("Approvals", owner=user)
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    assistant = make_assistant(team, connection, tools=[
        {"name": "approve", "binding": "human", "description": "Ask a manager", "timeout": 10,
         "parameters": {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"],
                        "additionalProperties": False}}])
    thread = make_thread(team, assistant, title="Refund")

    log_in(page, asgi_url, "omar", expect_heading="Approvals")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    send_with_enter(page, "use approve amount=250")
    page.wait_for_selector("text=The assistant asks a person for the result of approve")
    page.fill("form.tool-answer input[name=answer]", "Approved by Omar")
    page.click("form.tool-answer button")
    reply = page.wait_for_selector(".run-group[data-run-status=succeeded] .msg.assistant .md")
    assert reply.inner_text() == "Tool results: approve: Approved by Omar"
    page.reload()
    assert "Approved by Omar" in page.inner_text("#message-list")

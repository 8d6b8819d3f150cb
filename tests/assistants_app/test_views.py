"""Pages: assistants and versions, the model picker and guide, threads, history
search and pagination, exports, delete, usage, and script injection."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from assistants_app.models import AssistantVersion, ImmutableError, Message, Run, Thread
from project.providers.models import ProviderKind
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature
from project.teams.models import Role
from project.teams.templatetags.display import format_usd
from tests.conftest import client_for
from tests.factories import add_member, make_assistant, make_connection, make_message, make_run, make_thread, make_user

pytestmark = pytest.mark.django_db

XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>[click](javascript:alert(3))'


def _form(connection, **overrides: str) -> dict[str, str]:
    data = {"name": "Helper", "description": "", "connection": str(connection.pk), "model": "gpt-4.1-mini",
            "instructions": "Be kind.", "temperature": "0.3", "top_p": "", "reasoning_effort": "",
            "max_output_tokens": "", "tools": "", "response_schema": ""}
    data.update(overrides)
    return data


def test_creating_an_assistant_makes_version_one(owner_client, team) -> None:
    connection = make_connection(team)
    tools = json.dumps([{"name": "calculator", "binding": "builtin"}])
    response = owner_client.post("/assistants/new/", _form(connection, tools=tools))
    assert response.status_code == 302
    version = AssistantVersion.objects.get(assistant__team=team)
    assert version.number == 1 and version.temperature == 0.3
    assert version.tools[0]["builtin"] == "calculator" and version.tools[0]["parameters"]["type"] == "object"


def test_it_shows_a_clear_error_for_a_tool_schema_that_is_not_json_schema(owner_client, team) -> None:
    connection = make_connection(team)
    tools = json.dumps([{"name": "lookup", "binding": "human", "parameters": {"type": "object",
                                                                               "properties": {"q": {"type": 5}}}}])
    response = owner_client.post("/assistants/new/", _form(connection, tools=tools))
    assert response.status_code == 200
    assert "Tool 1 (lookup): parameters are not a valid JSON Schema" in response.content.decode()
    assert not AssistantVersion.objects.exists()


def test_it_rejects_a_reply_schema_that_is_not_strict(owner_client, team) -> None:
    connection = make_connection(team)
    schema = json.dumps({"type": "object", "properties": {"a": {"type": "string"}}})
    response = owner_client.post("/assistants/new/", _form(connection, response_schema=schema))
    assert "additionalProperties" in response.content.decode()


def test_edits_make_versions_with_a_diff_and_rollback_restores_an_old_one(owner_client, team, owner) -> None:
    connection = make_connection(team)
    assistant = make_assistant(team, connection, instructions="Answer in English.")
    owner_client.post(f"/assistants/{assistant.pk}/edit/", _form(connection, instructions="Answer in French."))
    assistant.refresh_from_db()
    v2 = assistant.current_version
    assert v2 is not None and v2.number == 2 and v2.created_by == owner
    diff = owner_client.get(f"/versions/{v2.pk}/diff/").content.decode()
    assert "-  Answer in English." in diff and "+  Answer in French." in diff
    # Settings the person left empty read as such, not as Python's None.
    assert "top_p: not set" in diff and "max_output_tokens: not set" in diff and "None" not in diff
    # A save that changes nothing the model sees makes no version.
    owner_client.post(f"/assistants/{assistant.pk}/edit/", _form(connection, instructions="Answer in French.",
                                                                 name="Renamed"))
    assert assistant.versions.count() == 2
    v1 = assistant.versions.get(number=1)
    owner_client.post(f"/versions/{v1.pk}/rollback/")
    assistant.refresh_from_db()
    assert assistant.current_version is not None
    assert assistant.current_version.number == 3 and assistant.current_version.instructions == "Answer in English."
    assert "rolled back to v1" in owner_client.get(f"/assistants/{assistant.pk}/").content.decode()


def test_a_version_cannot_be_changed_once_saved(team) -> None:
    version = make_assistant(team).current_version
    assert version is not None
    version.instructions = "sneaky"
    with pytest.raises(ImmutableError):
        version.save()


def test_duplicate_and_archive(owner_client, team) -> None:
    assistant = make_assistant(team, name="Original")
    owner_client.post(f"/assistants/{assistant.pk}/duplicate/")
    assert team.assistants.filter(name="Original (copy)").exists()
    owner_client.post(f"/assistants/{assistant.pk}/archive/")
    assert "Original</a>" not in owner_client.get("/assistants/").content.decode().replace("(copy)", "")
    assert "Original" in owner_client.get("/assistants/?archived=1").content.decode()
    response = owner_client.post(f"/assistants/{assistant.pk}/threads/new/", follow=True)
    assert "archived" in response.content.decode()


def test_a_viewer_can_read_but_not_chat(team) -> None:
    viewer = make_user()
    add_member(team, viewer, role=Role.VIEWER)
    thread = make_thread(team)
    client = client_for(viewer)
    assert client.get(f"/threads/{thread.pk}/").status_code == 200
    assert client.post(f"/threads/{thread.pk}/messages/", {"text": "hi"}).status_code == 403
    assert not Message.objects.filter(thread=thread).exists()


def test_the_model_picker_lists_the_connections_models_with_facts(owner_client, team, sandbox_url) -> None:
    make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    page = owner_client.get("/assistants/new/").content.decode()
    assert "<code>gpt-4.1-mini</code>" in page and "1047576" in page
    assert "2027-01-14" in page  # gpt-4o-mini's shutdown date, from GET /v1/models
    assert "vision, tools, structured outputs" in page


def test_the_guide_recommends_a_model_within_budget(owner_client, team) -> None:
    # $10: the cheapest fast vision model that is not retiring (gpt-5.6-luna) costs $6.40 for this.
    page = owner_client.get("/assistants/guide/?task=vision&latency=fast&budget=10&input=20000000&output=2000000")
    text = page.content.decode()
    assert 'id="recommendation"' in text and "Use <code>" in text
    cheap = owner_client.get("/assistants/guide/?task=reasoning&latency=fast&budget=0.01&input=2000000&output=0")
    assert "No model has what this task needs" in cheap.content.decode()


def test_posting_over_htmx_answers_with_the_message_and_a_live_block(owner_client, team, sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection))
    response = owner_client.post(f"/threads/{thread.pk}/messages/", {"text": "Hello"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    run = Run.objects.get(thread=thread)
    # The live block listens on the page's thread stream for this run's events.
    assert f'sse-swap="delta-{run.pk}"' in html and f'sse-swap="done-{run.pk}"' in html
    assert "Hello" in html and "Stop" in html
    again = owner_client.post(f"/threads/{thread.pk}/messages/", {"text": "Again"}, HTTP_HX_REQUEST="true")
    assert "still being written" in again.content.decode()


def test_an_image_that_is_not_an_image_is_refused(owner_client, team) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    thread = make_thread(team, make_assistant(team, make_connection(team)))
    upload = SimpleUploadedFile("cat.png", b"<svg onload=alert(1)>", content_type="image/png")
    response = owner_client.post(f"/threads/{thread.pk}/messages/", {"text": "look", "images": upload}, follow=True)
    assert "is not a PNG, JPEG, GIF or WebP image" in response.content.decode()
    assert not Message.objects.filter(thread=thread).exists()


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_a_posted_picture_is_stored_once_and_the_page_shows_its_thumbnail_not_its_bytes(owner_client, team) -> None:
    import base64

    from django.core.files.uploadedfile import SimpleUploadedFile

    from assistants_app.models import ChatImage

    thread = make_thread(team, make_assistant(team, make_connection(team)))
    picture = _png(1600, 1200)
    for text in ("first look", "again"):
        upload = SimpleUploadedFile("red.png", picture, content_type="image/png")
        assert owner_client.post(f"/threads/{thread.pk}/messages/", {"text": text, "images": upload}).status_code == 302
        Run.objects.filter(thread=thread).update(status="succeeded")
    image = ChatImage.objects.get(team=team)  # the same bytes twice: stored once
    assert (image.width, image.height, image.mime, image.size) == (1600, 1200, "image/png", len(picture))
    page = owner_client.get(f"/threads/{thread.pk}/").content.decode()
    assert page.count(f'src="/images/{image.pk}/?size=thumb"') == 2
    assert base64.b64encode(picture[:300]).decode()[:100] not in page  # no data URL in the page
    full = owner_client.get(f"/images/{image.pk}/")
    assert full["Content-Type"] == "image/png" and b"".join(full.streaming_content) == picture
    assert "sandbox" in full["Content-Security-Policy"]
    thumb = owner_client.get(f"/images/{image.pk}/?size=thumb")
    import io

    from PIL import Image as PILImage
    with PILImage.open(io.BytesIO(b"".join(thumb.streaming_content))) as small:
        assert max(small.size) == 480 and small.size == (480, 360)


def test_deleting_a_thread_removes_the_pictures_no_other_thread_shows(owner, team, monkeypatch,
                                                                    django_capture_on_commit_callbacks) -> None:
    from pathlib import Path

    from assistants_app import tasks
    from assistants_app.images import chat_image_store, image_attachment
    from assistants_app.models import ChatImage
    from assistants_app.services import thread_delete

    monkeypatch.setattr(tasks.chat_images_forget_unused_task, "delay",
                        lambda *args: tasks.chat_images_forget_unused_task(*args))
    assistant = make_assistant(team)
    shared, own = (chat_image_store(team=team, data=_png(20 + i, 20), name=f"p{i}.png") for i in range(2))
    kept_thread, deleted_thread = make_thread(team, assistant), make_thread(team, assistant)
    make_message(kept_thread, "a", attachments=[image_attachment(shared, "p0.png")])
    make_message(deleted_thread, "b", attachments=[image_attachment(shared, "p0.png"), image_attachment(own, "p1.png")])
    own_files = [Path(own.image.path), Path(own.thumbnail.path)]
    assert all(path.exists() for path in own_files)

    with django_capture_on_commit_callbacks(execute=True):
        thread_delete(thread=deleted_thread, actor=owner)

    assert list(ChatImage.objects.filter(team=team).values_list("pk", flat=True)) == [shared.pk]
    assert not any(path.exists() for path in own_files)
    assert Path(shared.image.path).exists()


def test_a_thread_is_deleted_even_when_the_picture_cleanup_cannot_be_sent(owner_client, team, monkeypatch,
                                                                        django_capture_on_commit_callbacks) -> None:
    import kombu.exceptions

    from assistants_app import tasks
    from assistants_app.images import chat_image_store, image_attachment

    def broker_down(*args: object) -> None:
        raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.chat_images_forget_unused_task, "delay", broker_down)
    thread = make_thread(team, make_assistant(team))
    make_message(thread, "look", attachments=[image_attachment(chat_image_store(team=team, data=_png(8, 8), name="a.png"),
                                                               "a.png")])
    with django_capture_on_commit_callbacks(execute=True) as sent:  # the cleanup is sent after the commit
        response = owner_client.post(f"/threads/{thread.pk}/delete/", {"confirm": "delete"})
    assert len(sent) == 1
    assert response.status_code == 302 and not Thread.objects.filter(pk=thread.pk).exists()


def test_a_pictures_tokens_are_counted_with_its_message_so_trimming_leaves_room(owner_client, team) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from project.tokens import count_message, encoding_for_model

    thread = make_thread(team, make_assistant(team, make_connection(team)))
    upload = SimpleUploadedFile("wide.png", _png(1600, 1000), content_type="image/png")
    owner_client.post(f"/threads/{thread.pk}/messages/", {"text": "What is this?", "images": upload})
    message = Message.objects.get(thread=thread)
    text_only = count_message({"role": "user", "content": "What is this?"}, encoding_for_model("gpt-4.1-mini"))
    # 1600x1000 is scaled to 1229x768: 3x2 tiles of 512 px, 85 + 6 x 170 tokens.
    assert message.token_count == text_only + 1105


def test_a_broken_or_enormous_picture_is_refused_with_the_reason(owner_client, team) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    thread = make_thread(team, make_assistant(team, make_connection(team)))
    truncated = SimpleUploadedFile("cut.png", _png(64, 64)[:-40], content_type="image/png")
    response = owner_client.post(f"/threads/{thread.pk}/messages/", {"text": "look", "images": truncated}, follow=True)
    assert "cut.png is not a PNG, JPEG, GIF or WebP image" in response.content.decode()
    huge = SimpleUploadedFile("huge.png", _png(8000, 6000), content_type="image/png")
    response = owner_client.post(f"/threads/{thread.pk}/messages/", {"text": "look", "images": huge}, follow=True)
    assert "huge.png is 8000x6000 pixels; the limit for a PNG is 16,777,216 pixels." in response.content.decode()
    assert not Message.objects.filter(thread=thread).exists()


def _png_header(width: int, height: int) -> bytes:
    """A PNG's signature and header, nothing to decode: what the size check reads."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("size", "message"), [
    # 170 KB on disk and under the old 40 M pixel limit, it took 300 MB to make its thumbnail.
    ((6300, 6300), "small.png is 6300x6300 pixels; the limit for a PNG is 16,777,216 pixels."),
    # Past Pillow's own guard: was called "not a PNG".
    ((20000, 20000), "small.png has far more pixels than the limit of 16,777,216."),
])
def test_a_picture_with_too_many_pixels_is_refused_from_its_header(owner_client, team, size, message) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    thread = make_thread(team, make_assistant(team, make_connection(team)))
    upload = SimpleUploadedFile("small.png", _png_header(*size), content_type="image/png")
    response = owner_client.post(f"/threads/{thread.pk}/messages/", {"text": "look", "images": upload}, follow=True)
    assert message in response.content.decode()
    assert not Message.objects.filter(thread=thread).exists()


def test_model_output_names_and_instructions_render_inert(owner_client, team) -> None:
    assistant = make_assistant(team, name=XSS, instructions=XSS)
    thread = make_thread(team, assistant, title=XSS)
    make_message(thread, XSS)
    make_message(thread, XSS + "\n\n```python\nprint('hi')\n```", role="assistant", version=assistant.current_version)
    for url in ("/assistants/", f"/assistants/{assistant.pk}/", f"/threads/{thread.pk}/", "/threads/",
                "/threads/?q=alert"):
        html = owner_client.get(url).content.decode()
        assert "<script>alert" not in html, url
        assert "onerror=alert" not in html.replace("onerror=alert(2)&gt;", ""), url
        assert 'href="javascript:' not in html, url
    page = owner_client.get(f"/threads/{thread.pk}/").content.decode()
    assert '<span class="nb">print</span>' in page  # code is highlighted


def test_search_highlights_matches_and_filters_combine(owner_client, team, owner) -> None:
    alpha, beta = make_assistant(team, name="Alpha"), make_assistant(team, name="Beta")
    colleague = make_user()
    add_member(team, colleague)
    t1 = make_thread(team, alpha, title="Invoices")
    make_message(t1, "Please send the <b>overdue</b> invoices to accounting")
    t2 = make_thread(team, beta, title="Holidays")
    make_message(t2, "Book the holidays; invoices can wait")
    Thread.objects.filter(pk=t2.pk).update(created_by=colleague)
    make_message(make_thread(team, alpha, title="Weather"), "It rains")

    html = owner_client.get("/threads/?q=invoice").content.decode()
    assert "Invoices" in html and "Holidays" in html and "Weather" not in html
    assert "<mark>invoices</mark>" in html and "<b>overdue" not in html
    only_beta = owner_client.get(f"/threads/?q=invoice&assistant={beta.pk}").content.decode()
    assert "Holidays" in only_beta and "Invoices</a>" not in only_beta
    by_colleague = owner_client.get(f"/threads/?author={colleague.pk}").content.decode()
    assert "Holidays" in by_colleague and "Weather" not in by_colleague
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert "Invoices" not in owner_client.get(f"/threads/?since={tomorrow}").content.decode()


def test_the_thread_list_pages_by_keyset_without_overlap(owner_client, team) -> None:
    assistant = make_assistant(team)
    for i in range(30):
        make_thread(team, assistant, title=f"thread-{i:02d}")
    first = owner_client.get("/threads/").content.decode()
    assert first.count('class="thread-row"') == 25
    cursor = first.split("cursor=")[1].split('"')[0]
    second = owner_client.get(f"/threads/?cursor={cursor}", HTTP_HX_REQUEST="true").content.decode()
    assert second.count('class="thread-row"') == 5 and "<html" not in second
    titles = {f"thread-{i:02d}" for i in range(30)}
    assert all(title in first + second for title in titles)


def test_a_long_thread_opens_with_the_newest_messages_and_loads_older_ones(owner_client, team) -> None:
    thread = make_thread(team)
    for i in range(120):
        make_message(thread, f"message number {i}")
    page = owner_client.get(f"/threads/{thread.pk}/").content.decode()
    assert "message number 119" in page and "message number 69<" not in page and "message number 70<" in page
    oldest = Message.objects.get(thread=thread, text="message number 70").pk
    older = owner_client.get(f"/threads/{thread.pk}/?before={oldest}", HTTP_HX_REQUEST="true").content.decode()
    assert "message number 69<" in older and "message number 20<" in older and "message number 70<" not in older
    assert "load-older" in older


def test_a_reloaded_thread_page_still_shows_what_each_finished_run_cost_and_took(owner_client, team) -> None:
    assistant = make_assistant(team)
    thread = make_thread(team, assistant)
    version = assistant.current_version
    assert version is not None
    question = make_message(thread, "What is 6*7?")
    run = Run.objects.create(thread=thread, team=team, assistant=assistant, version=version, model=version.model,
                             user_message=question, status="succeeded", input_tokens=120, output_tokens=8,
                             cost_usd=Decimal("0.000061"), ttft_ms=310, total_ms=544)
    make_message(thread, "42", role="assistant", run=run, version=version)
    # What the run cost is read from its ledger row (the run loop writes it with the usage).
    entry = spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model=run.model, source_kind="run",
                                   source_id=run.pk, key=f"run:{run.pk}:attempt:1", input_tokens=120, output_tokens=8))
    assert entry is not None and entry.cost_usd
    page = owner_client.get(f"/threads/{thread.pk}/").content.decode()
    assert f'id="run-{run.pk}" data-run-status="succeeded"' in page
    assert f"120 in / 8 out · {format_usd(entry.cost_usd)} · first token 310 ms · 544 ms" in page


def test_a_run_that_failed_before_writing_anything_says_why_once_in_its_own_block(owner_client, team) -> None:
    thread = make_thread(team, make_assistant(team))
    question = make_message(thread, "Hello?")
    run = make_run(thread, user_message=question, status="failed", error="The provider refused the key.")
    page = owner_client.get(f"/threads/{thread.pk}/").content.decode()
    assert page.count("The reply failed: The provider refused the key.") == 1
    block = page[page.index(f'id="run-{run.pk}" data-run-status="failed"'):]
    assert block.index("The reply failed") < block.index("</section>")


def test_exports_in_three_formats(owner_client, team) -> None:
    assistant = make_assistant(team, instructions="Be brief.")
    thread = make_thread(team, assistant, title="Export me")
    make_message(thread, "What is 2+2?")
    make_message(thread, "4", role="assistant", version=assistant.current_version)
    md = owner_client.get(f"/threads/{thread.pk}/export/?format=md")
    assert md["Content-Disposition"].endswith('.md"') and "# Export me" in md.content.decode()
    data = json.loads(owner_client.get(f"/threads/{thread.pk}/export/?format=json").content)
    assert [m["text"] for m in data["messages"]] == ["What is 2+2?", "4"]
    line = owner_client.get(f"/threads/{thread.pk}/export/?format=jsonl").content.decode()
    assert json.loads(line) == {"messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "What is 2+2?"},
                                             {"role": "assistant", "content": "4"}]}


def test_stopped_failed_and_empty_replies_are_marked_in_exports_and_left_out_of_training_data(owner_client,
                                                                                                   team) -> None:
    assistant = make_assistant(team, instructions="Be brief.")
    version = assistant.current_version
    assert version is not None
    thread = make_thread(team, assistant, title="Mixed")

    def exchange(question: str, status: str, reply: str | None, error: str = "") -> None:
        asked = make_message(thread, question)
        run = make_run(thread, user_message=asked, status=status, error=error)
        if reply is not None:
            make_message(thread, reply, role="assistant", run=run, version=version)

    exchange("What is 2+2?", "succeeded", "4")
    exchange("Write a long poem", "cancelled", "Roses are", error="Stopped by a person.")
    exchange("And now?", "failed", None, error="The provider refused the request.")
    exchange("Anything?", "succeeded", "")
    exchange("What is 3+3?", "succeeded", "6")

    md = owner_client.get(f"/threads/{thread.pk}/export/?format=md").content.decode()
    assert "Roses are\n\n> _Stopped: this reply is incomplete. Stopped by a person._" in md
    assert "And now?\n\n> _No reply. The run failed: The provider refused the request._" in md
    assert "> _Empty reply._" in md
    assert md.count("> _") == 3

    data = json.loads(owner_client.get(f"/threads/{thread.pk}/export/?format=json").content)
    marks = {m["text"]: m["incomplete"] for m in data["messages"] if m["incomplete"]}
    assert marks == {"Roses are": {"state": "stopped", "reason": "Stopped by a person."},
                     "And now?": {"state": "unanswered", "reason": "The run failed: The provider refused the request."},
                     "": {"state": "empty", "reason": ""}}

    line = owner_client.get(f"/threads/{thread.pk}/export/?format=jsonl").content.decode()
    assert json.loads(line) == {"messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "What is 2+2?"},
                                             {"role": "assistant", "content": "4"},
                                             {"role": "user", "content": "What is 3+3?"},
                                             {"role": "assistant", "content": "6"}]}


def test_a_thread_whose_only_reply_was_stopped_gives_no_training_example(owner_client, team) -> None:
    thread = make_thread(team, make_assistant(team))
    asked = make_message(thread, "Write a long poem")
    run = make_run(thread, user_message=asked, status="cancelled", error="Stopped by a person.")
    make_message(thread, "Roses are", role="assistant", run=run, version=run.version)
    assert owner_client.get(f"/threads/{thread.pk}/export/?format=jsonl").content == b""


def test_delete_asks_for_confirmation_first(owner_client, team) -> None:
    thread = make_thread(team)
    assert "Type <strong>delete</strong>" in owner_client.get(f"/threads/{thread.pk}/delete/").content.decode()
    owner_client.post(f"/threads/{thread.pk}/delete/", {"confirm": "nope"})
    assert Thread.objects.filter(pk=thread.pk).exists()
    owner_client.post(f"/threads/{thread.pk}/delete/", {"confirm": "delete"})
    assert not Thread.objects.filter(pk=thread.pk).exists()


def test_a_team_with_assistants_threads_and_runs_can_be_deleted(team) -> None:
    assistant = make_assistant(team)
    thread = make_thread(team, assistant)
    make_message(thread, "hi")
    version = assistant.current_version
    assert version is not None
    Run.objects.create(thread=thread, team=team, assistant=assistant, version=version, model=version.model)
    make_message(thread, "reply", role="assistant", version=version)
    team.delete()
    assert not Thread.objects.filter(pk=thread.pk).exists()


def test_a_file_attached_to_a_message_goes_to_the_provider_through_the_file_library(owner_client, team,
                                                                                   sandbox_url) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from project.files.models import File

    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection))
    upload = SimpleUploadedFile("notes.txt", b"meeting notes: ship on friday", content_type="text/plain")
    owner_client.post(f"/threads/{thread.pk}/messages/", {"text": "summarise", "files": upload})
    message = Message.objects.get(thread=thread)
    stored = File.objects.get(team=team)
    assert message.attachments == [{"type": "file", "file_id": stored.pk, "remote_id": stored.remote_id,
                                    "name": "notes.txt"}]
    assert stored.remote_id.startswith("file-")


def test_a_structured_reply_is_shown_as_formatted_json_and_checked_against_its_schema(owner_client, team) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    assistant = make_assistant(team, response_schema=schema)
    thread = make_thread(team, assistant)
    make_message(thread, '{"city": "Lisbon"}', role="assistant", version=assistant.current_version)
    make_message(thread, '{"town": "Porto"}', role="assistant", version=assistant.current_version)
    page = owner_client.get(f"/threads/{thread.pk}/").content.decode()
    assert '<pre class="json">{\n  &quot;city&quot;: &quot;Lisbon&quot;\n}</pre>' in page
    assert "Valid against the reply schema." in page
    assert "Does not follow the schema: &#x27;city&#x27; is a required property" in page


def test_a_refused_post_stores_no_picture_and_uploads_no_file(owner_client, team) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from assistants_app.models import ChatImage
    from project.files.models import File

    # A provider that would take the file if anything tried to send it (it is never reached).
    thread = make_thread(team, make_assistant(team, make_connection(team)))
    started = make_message(thread, "first question")
    make_run(thread, user_message=started)  # a reply still queued
    before = set(File.objects.values_list("pk", flat=True))
    response = owner_client.post(f"/threads/{thread.pk}/messages/", {
        "text": "second question", "images": SimpleUploadedFile("p.png", _png(30, 20), "image/png"),
        "files": SimpleUploadedFile("notes.txt", b"some notes", "text/plain")}, headers={"HX-Request": "true"})
    assert "still being written" in response.content.decode()
    assert not ChatImage.objects.filter(team=team).exists()
    assert set(File.objects.values_list("pk", flat=True)) == before
    assert not thread.messages.filter(text="second question").exists()

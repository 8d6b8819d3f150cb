"""In a real browser: upload a file with the progress bar, see it listed with its preview, delete it."""

from __future__ import annotations

import pytest

from project.files.models import File, FileState
from tests.factories import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_a_file_see_its_preview_and_delete_it(live_server, page, owner, team, connection, provider) -> None:
    log_in(page, live_server.url, owner.username)
    page.click("nav.mainnav >> text=Files")

    page.select_option("select[name=purpose]", "batch")
    # A wrong file first: the page says why, nothing is sent.
    page.set_input_files("input[type=file]", files=[{"name": "input.jsonl", "mimeType": "application/jsonl",
                                                     "buffer": b'{"custom_id": "1"}\nnot json\n'}])
    page.click("button:has-text('Upload')")
    assert "line 2: not valid JSON" in page.wait_for_selector("[data-upload-error]:not([hidden])").inner_text()
    assert not File.objects.exists()

    line = '{"custom_id": "req-%s", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    lines = "".join(line.replace("%s", str(i)) for i in range(3)).encode()
    page.set_input_files("input[type=file]", files=[{"name": "input.jsonl", "mimeType": "application/jsonl", "buffer": lines}])
    # Keep what the progress text showed; sessionStorage outlives the redirect to the file's page.
    page.evaluate("""() => {
      const text = document.querySelector('[data-progress-text]');
      const keep = () => sessionStorage.setItem('progress', (sessionStorage.getItem('progress') || '') + '|' + text.textContent);
      new MutationObserver(keep).observe(text, {childList: true, characterData: true, subtree: true});
    }""")
    page.click("button:has-text('Upload')")

    page.wait_for_selector("text=Uploaded input.jsonl")
    assert "100%" in page.evaluate("() => sessionStorage.getItem('progress')")
    preview = page.inner_text("[data-preview-jsonl]")
    assert "req-0" in preview and "req-2" in preview
    record = File.objects.get()
    assert provider.files.content(record.remote_id).read() == lines

    page.click("text=← Files")
    row = page.wait_for_selector(f"#file-{record.pk}")
    assert "input.jsonl" in row.inner_text() and "Batch input" in row.inner_text()

    row.query_selector("a:has-text('Delete')").click()
    assert "Nothing uses this file" in page.inner_text("main")
    page.click("button:has-text('Delete the file')")
    page.wait_for_selector("text=Deleted input.jsonl here and on the provider.")
    assert page.query_selector(f"#file-{record.pk}") is None
    record.refresh_from_db()
    assert record.state == FileState.DELETED


def test_a_big_upload_follows_the_worker_to_the_file_page(celery_worker_session, live_server, page, owner, team, connection,
                                                          provider, small_parts) -> None:
    log_in(page, live_server.url, owner.username)
    page.goto(f"{live_server.url}/files/")
    data = b"".join(b'{"messages": [{"role": "user", "content": "%d"}]}\n' % i for i in range(80))  # > 1000 bytes: parts

    page.select_option("select[name=purpose]", "fine-tune")
    page.set_input_files("input[type=file]", files=[{"name": "train.jsonl", "mimeType": "application/jsonl", "buffer": data}])
    page.click("button:has-text('Upload')")

    page.wait_for_selector("[data-preview-jsonl]")
    record = File.objects.get()
    assert page.url.endswith(f"/files/{record.pk}/")
    assert provider.files.content(record.remote_id).read() == data

"""Pages fit a 1366 px laptop and a 390 px phone (#13 item 17): the page never scrolls
sideways (wide tables scroll in their own box), long unbroken words stay inside chat
bubbles, the top bar is one line on a laptop, and the fine-tune timeline keeps its
steps apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs_app.finetune.models import FineTuneEvent
from project.providers.models import ProviderKind
from tests.factories import (
    log_in,
    make_assistant,
    make_connection,
    make_file,
    make_finished_finetune_job,
    make_message,
    make_run,
    make_team,
    make_thread,
    make_user,
)

pytestmark = pytest.mark.django_db(transaction=True)

WORD = "Supercalifragilisticexpialidocious" * 8
URL = "https://example.com/" + "very/long/path/" * 12 + "?q=" + "x" * 80

PAGE_FITS = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
BUBBLES_HOLD_TEXT = """() => [...document.querySelectorAll('.msg')].filter(m => m.scrollWidth > m.clientWidth + 1).length"""
TIMELINE_GAPS = """() => {
  const items = [...document.querySelectorAll('.ft-timeline li')].map(li => li.getBoundingClientRect());
  const gaps = [];
  for (let i = 1; i < items.length; i++) {
    if (Math.abs(items[i].top - items[i - 1].top) < 2) gaps.push(items[i].left - items[i - 1].right);
  }
  return gaps;
}"""


def test_pages_fit_a_laptop_and_a_phone(asgi_url, browser, sandbox_url) -> None:
    user = make_user("lena")
    team = make_team("Research and Development Operations", owner=user)
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    make_file(team, connection=connection, name="export" + "0123456789" * 8 + ".jsonl", purpose="fine-tune")
    thread = make_thread(team, make_assistant(team, connection), title="About " + WORD[:80])
    question = make_message(thread, f"Look at {URL} and {WORD}")
    make_run(thread, user_message=question, status="succeeded")
    make_message(thread, f"Here: {WORD} and `{WORD}`\n\n| a | b |\n|---|---|\n| {WORD} | x |", role="assistant")
    job = make_finished_finetune_job(team, connection=connection)
    started = datetime.now(UTC) - timedelta(minutes=10)
    for minute, text in enumerate(["Validating training file", "Files validated, moving job to queued state",
                                   "Fine-tuning job started", "The job has successfully completed"]):
        FineTuneEvent.objects.create(job=job, remote_id=f"event-{minute}", message=text,
                                     created_at=started + timedelta(minutes=minute))

    pages = ["/", "/files/", f"/threads/{thread.pk}/", f"/fine-tuning/jobs/{job.pk}/", "/settings/connections/"]
    for width in (1366, 390):
        context = browser.new_context(viewport={"width": width, "height": 800})
        page = context.new_page()
        page.set_default_timeout(15_000)
        log_in(page, asgi_url, "lena")
        if width == 1366:
            assert page.locator(".topbar").bounding_box()["height"] < 60, "the top bar wraps at 1366 px"
        for path in pages:
            page.goto(asgi_url + path)
            assert page.evaluate(PAGE_FITS), f"{path} scrolls sideways at {width} px"
        page.goto(f"{asgi_url}/threads/{thread.pk}/")
        assert page.evaluate(BUBBLES_HOLD_TEXT) == 0, f"text overflows a chat bubble at {width} px"
        page.goto(f"{asgi_url}/fine-tuning/jobs/{job.pk}/")
        assert all(gap >= 8 for gap in page.evaluate(TIMELINE_GAPS)), f"timeline steps run together at {width} px"
        context.close()

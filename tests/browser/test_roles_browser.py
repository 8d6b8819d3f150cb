"""In a real browser: a viewer is told why controls are missing, and a page they may not
use says why, with the site's navigation still there."""

from __future__ import annotations

import pytest

from project.teams.models import Role
from tests.factories import add_member, log_in, make_assistant, make_team, make_thread, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_viewer_sees_why_and_a_forbidden_page_says_why(asgi_url, page) -> None:
    # The ASGI server, as in production: the thread page holds an event stream open, which
    # the WSGI live_server would serve from a thread that keeps the test process from exiting.
    team = make_team("Viewers Inc")
    add_member(team, make_user("vera"), role=Role.VIEWER)
    thread = make_thread(team, make_assistant(team), title="Quarterly numbers")

    log_in(page, asgi_url, "vera")
    page.goto(f"{asgi_url}/threads/{thread.pk}/")
    note = page.wait_for_selector("[role=note].read-only-note")
    assert "You have the viewer role in Viewers Inc: you can read but not change anything." in note.inner_text()
    assert page.query_selector("#composer-text") is None  # the composer is hidden from viewers

    response = page.goto(f"{asgi_url}/settings/connections/new/")
    assert response is not None and response.status == 403
    assert page.inner_text("h1") == "You cannot do this here"
    assert "This needs the admin role or higher." in page.inner_text("main")
    assert "Your role in Viewers Inc is Viewer." in " ".join(page.inner_text("main").split())
    page.click("nav.mainnav >> text=Threads")  # the navigation still works from the 403 page
    page.wait_for_selector("text=Quarterly numbers")

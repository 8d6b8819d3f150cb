"""Error pages: a 403 says why and keeps the site's navigation; viewers are told why
controls are missing; 400, 404 and 500 pages are the site's own."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from project.teams.models import Role
from tests.conftest import client_for
from tests.factories import add_member, make_assistant, make_thread

pytestmark = pytest.mark.django_db


def test_a_403_page_gives_the_reason_and_the_role_with_navigation(team) -> None:
    member = add_member(team, role=Role.MEMBER).user
    response = client_for(member).get("/settings/connections/new/")
    page = response.content.decode()
    assert response.status_code == 403
    assert "This needs the admin role or higher." in page
    assert "Your role in Acme is <strong>Member</strong>" in page
    assert 'class="mainnav"' in page


def test_a_viewer_who_posts_is_told_viewers_cannot_change_anything(team) -> None:
    viewer = add_member(team, role=Role.VIEWER).user
    response = client_for(viewer).post("/assistants/new/", {"name": "x"})
    assert response.status_code == 403
    assert "Viewers can read but not change anything" in response.content.decode()


def test_viewers_see_why_controls_are_missing(team) -> None:
    viewer = add_member(team, role=Role.VIEWER).user
    assistant = make_assistant(team)
    thread = make_thread(team, assistant)
    client = client_for(viewer)
    for url in (f"/threads/{thread.pk}/", f"/assistants/{assistant.pk}/", "/assistants/"):
        page = client.get(url).content.decode()
        assert "You have the viewer role in Acme: you can read but not change anything." in page, url
    owner_page = client_for(team.memberships.get(role=Role.OWNER).user).get(f"/threads/{thread.pk}/").content.decode()
    assert "You have the viewer role" not in owner_page


def test_a_404_is_the_sites_own_page(owner_client) -> None:
    response = owner_client.get("/threads/999999999/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Not found" in page and 'class="mainnav"' in page


def test_400_and_500_pages_need_no_request_context() -> None:
    from django.views.defaults import bad_request, server_error

    request = RequestFactory().get("/")
    assert "Something went wrong on our side" in server_error(request).content.decode()
    assert "could not be understood" in bad_request(request, ValueError("x")).content.decode()

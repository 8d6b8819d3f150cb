"""An invitation is accepted only by the account of the address it was sent to."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from project.teams.models import Invitation, Membership, Role
from tests.conftest import client_for
from tests.factories import add_member, make_team, make_user

pytestmark = pytest.mark.django_db


def _invite(team, email: str) -> str:
    admin = add_member(team, role=Role.ADMIN).user
    client_for(admin).post("/settings/invitations/", {"email": email, "role": "member"})
    found = re.search(r"/invite/(\S+)/", str(mail.outbox[-1].body))
    assert found
    return found.group(1)


def test_a_user_of_another_team_cannot_accept_someone_elses_invitation(team) -> None:
    token = _invite(team, "carol@a.example")
    mallory = make_user("mallory")  # mallory@example.com, in a team of her own
    make_team("Globex", owner=mallory)
    client = client_for(mallory)
    page = client.get(f"/invite/{token}/")
    assert page.status_code == 403
    assert "This invitation is for another address" in page.content.decode()
    assert "carol@a.example" in page.content.decode()
    response = client.post(f"/invite/{token}/")
    assert response.status_code == 403
    assert not Membership.objects.filter(team=team, user=mallory).exists()
    assert Invitation.objects.get(email="carol@a.example").accepted_at is None


def test_the_invited_address_accepts_whatever_its_case(team) -> None:
    token = _invite(team, "Carol@A.example")
    carol = make_user("carol")
    carol.email = "carol@a.EXAMPLE"
    carol.save()
    response = client_for(carol).post(f"/invite/{token}/")
    assert response.status_code == 302
    assert Membership.objects.get(team=team, user=carol).role == Role.MEMBER


def test_a_new_account_made_through_the_link_gets_the_invited_address(team) -> None:
    token = _invite(team, "dave@a.example")
    page = Client().get(f"/invite/{token}/").content.decode()
    assert "dave@a.example" in page
    newcomer = Client()
    newcomer.post(f"/invite/{token}/", {"username": "dave", "password1": "Sup3r-Secret-Pass",
                                         "password2": "Sup3r-Secret-Pass", "email": "other@evil.example"})
    membership = Membership.objects.get(team=team, user__username="dave")
    assert membership.user.email == "dave@a.example"


def test_the_service_refuses_another_address_too(team) -> None:
    from project.teams.services import InvitationError, invitation_accept, invitation_create

    admin = add_member(team, role=Role.ADMIN).user
    _, link = invitation_create(team=team, email="erin@a.example", role=Role.MEMBER, invited_by=admin,
                                inviter_role=Role.ADMIN)
    with pytest.raises(InvitationError, match=r"erin@a\.example"):
        invitation_accept(token=link.rstrip("/").rsplit("/", 1)[-1], user=make_user("frank"))

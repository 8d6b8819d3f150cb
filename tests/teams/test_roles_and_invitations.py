from __future__ import annotations

import re

from django.core import mail
from django.test import Client

from project.teams.models import Membership, Role
from tests.conftest import client_for
from tests.factories import PASSWORD, add_member, make_connection, make_team, make_user


def test_login_and_logout(team, owner) -> None:
    client = Client()
    response = client.post("/login/", {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_pages_need_a_login(db) -> None:
    response = Client().get("/assistants/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_user_in_two_teams_switches_between_them(team, owner) -> None:
    second = make_team("Second", owner=owner)
    client = client_for(owner)
    assert "Acme" in client.get("/").content.decode().split("<h1>")[1]
    client.post("/teams/switch/", {"team_id": second.pk})
    assert "Second" in client.get("/").content.decode().split("<h1>")[1]


def test_switching_to_a_team_you_are_not_in_is_a_404(team, owner, other_team) -> None:
    response = client_for(owner).post("/teams/switch/", {"team_id": other_team.pk})
    assert response.status_code == 404


def test_change_password(team, owner) -> None:
    client = client_for(owner)
    response = client.post("/password/", {"old_password": PASSWORD, "new_password1": "An0ther-Long-Passw0rd",
                                          "new_password2": "An0ther-Long-Passw0rd"})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("An0ther-Long-Passw0rd")


def test_an_admin_invites_by_a_link_sent_by_email_and_a_new_person_joins(team, owner) -> None:
    admin = add_member(team, role=Role.ADMIN).user
    client_for(admin).post("/settings/invitations/", {"email": "new@example.com", "role": "member"})
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]
    link = re.search(r"http://\S+/invite/(\S+)/", str(mail.outbox[0].body))
    assert link
    newcomer = Client()
    page = newcomer.get(f"/invite/{link.group(1)}/")
    assert "Join Acme" in page.content.decode()
    response = newcomer.post(f"/invite/{link.group(1)}/", {"username": "newbie", "password1": "Sup3r-Secret-Pass",
                                                            "password2": "Sup3r-Secret-Pass"})
    assert response.status_code == 302
    assert Membership.objects.get(team=team, user__username="newbie").role == Role.MEMBER
    # The link works once.
    assert Client().get(f"/invite/{link.group(1)}/").status_code == 404


def test_an_existing_user_accepts_while_logged_in(team) -> None:
    admin = add_member(team, role=Role.ADMIN).user
    client_for(admin).post("/settings/invitations/", {"email": "someone@example.com", "role": "viewer"})
    found = re.search(r"/invite/(\S+)/", str(mail.outbox[0].body))
    assert found
    token = found.group(1)
    someone = make_user("someone")
    client_for(someone).post(f"/invite/{token}/")
    assert Membership.objects.get(team=team, user=someone).role == Role.VIEWER


def test_members_cannot_invite_or_change_roles(team) -> None:
    member = add_member(team, role=Role.MEMBER)
    target = add_member(team, role=Role.VIEWER)
    client = client_for(member.user)
    assert client.post("/settings/invitations/", {"email": "a@example.com", "role": "member"}).status_code == 403
    assert client.post(f"/settings/members/{target.pk}/role/", {"role": "admin"}).status_code == 403
    target.refresh_from_db()
    assert target.role == Role.VIEWER and not mail.outbox


def test_an_admin_changes_a_role(team) -> None:
    admin = add_member(team, role=Role.ADMIN)
    target = add_member(team, role=Role.VIEWER)
    client_for(admin.user).post(f"/settings/members/{target.pk}/role/", {"role": "member"})
    target.refresh_from_db()
    assert target.role == Role.MEMBER


def test_an_admin_cannot_make_an_owner(team) -> None:
    admin = add_member(team, role=Role.ADMIN)
    target = add_member(team, role=Role.MEMBER)
    client_for(admin.user).post(f"/settings/members/{target.pk}/role/", {"role": "owner"})
    target.refresh_from_db()
    assert target.role == Role.MEMBER


def test_the_last_owner_cannot_be_demoted_or_removed(team, owner) -> None:
    own = Membership.objects.get(team=team, user=owner)
    client = client_for(owner)
    response = client.post(f"/settings/members/{own.pk}/role/", {"role": "member"}, follow=True)
    assert "at least one owner" in response.content.decode()
    response = client.post(f"/settings/members/{own.pk}/remove/", follow=True)
    assert "last owner cannot be removed" in response.content.decode()
    own.refresh_from_db()
    assert own.role == Role.OWNER


def test_an_owner_can_step_down_once_there_is_another_owner(team, owner) -> None:
    second = add_member(team, role=Role.OWNER)
    own = Membership.objects.get(team=team, user=owner)
    client_for(owner).post(f"/settings/members/{own.pk}/role/", {"role": "admin"})
    own.refresh_from_db()
    assert own.role == Role.ADMIN
    assert Membership.objects.get(pk=second.pk).role == Role.OWNER


def test_viewers_can_read_but_change_nothing(team) -> None:
    viewer = add_member(team, role=Role.VIEWER).user
    client = client_for(viewer)
    assert client.get("/settings/connections/").status_code == 200
    assert client.get("/settings/members/").status_code == 200
    connection = make_connection(team)
    assert client.post(f"/settings/connections/{connection.pk}/test/").status_code == 403
    assert client.post("/settings/connections/new/", {"kind": "sandbox", "name": "x",
                                                       "base_url": "http://127.0.0.1:1/v1"}).status_code == 403


def test_a_user_without_a_team_is_offered_to_create_one(db) -> None:
    loner = make_user("loner")
    client = client_for(loner)
    response = client.get("/assistants/")
    assert response.status_code == 302 and response["Location"] == "/teams/none/"
    client.post("/teams/new/", {"name": "Loner's team"})
    assert Membership.objects.get(user=loner).role == Role.OWNER

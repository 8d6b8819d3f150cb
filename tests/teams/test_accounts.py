"""Accounts: the first owner is a plain user, /admin/ is for operators made by a command,
and a command gives a user a new password."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from project.teams.models import Membership, Role
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _password(output: str) -> str:
    found = re.search(r"(?:password: |: )(\S+)\n", output)
    assert found, output
    return found.group(1)


def test_the_first_owner_is_a_plain_user_who_cannot_open_admin(settings) -> None:
    settings.SANDBOX_URL = ""
    out = StringIO()
    call_command("bootstrap", stdout=out)
    owner = User.objects.get(username="admin")
    assert not owner.is_staff and not owner.is_superuser
    assert Membership.objects.get(user=owner).role == Role.OWNER
    assert "setpassword admin" in out.getvalue()
    client = client_for(owner)
    assert client.get("/admin/").status_code == 302  # to the admin's own login
    assert ">Admin<" not in client.get("/").content.decode()


def test_an_operator_is_made_by_a_command_and_belongs_to_no_team() -> None:
    out = StringIO()
    call_command("createoperator", "ops", stdout=out)
    operator = User.objects.get(username="ops")
    assert operator.is_staff and operator.is_superuser
    assert not Membership.objects.filter(user=operator).exists()
    client = Client()
    response = client.post("/admin/login/", {"username": "ops", "password": _password(out.getvalue()), "next": "/admin/"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    with pytest.raises(CommandError, match="already exists"):
        call_command("createoperator", "ops", stdout=StringIO())


def test_setpassword_gives_a_new_one_time_password(team, owner) -> None:
    out = StringIO()
    call_command("setpassword", owner.username, stdout=out)
    password = _password(out.getvalue())
    response = Client().post("/login/", {"username": owner.username, "password": password})
    assert response.status_code == 302
    with pytest.raises(CommandError, match="No user named"):
        call_command("setpassword", "nobody", stdout=StringIO())

"""Logging in is throttled by account and by address, and the login page says why."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _login(username: str, password: str, address: str = "198.51.100.7") -> tuple[int, str]:
    response = Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})
    return response.status_code, response.content.decode()


def test_an_account_is_paused_after_five_wrong_passwords(team, owner) -> None:
    statuses = [_login(owner.username, "wrong", address=f"198.51.100.{attempt + 1}")[0] for attempt in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # the fifth failure pauses the account
    status, page = _login(owner.username, PASSWORD, address="203.0.113.9")  # the right password, elsewhere
    assert status == 429
    assert "Too many failed logins" in page and "<form" in page  # the login page, with the reason


def test_an_address_is_paused_after_five_wrong_passwords_for_any_accounts(team, owner) -> None:
    for attempt in range(5):
        _login(f"guess{attempt}", "wrong", address="198.51.100.50")
    status, page = _login(owner.username, PASSWORD, address="198.51.100.50")
    assert status == 429 and "Too many failed logins" in page
    assert _login(owner.username, PASSWORD, address="198.51.100.51")[0] == 302  # another address is not paused


def test_a_right_password_before_the_limit_starts_the_count_again(team, owner) -> None:
    for _ in range(4):
        _login(owner.username, "wrong")
    assert _login(owner.username, PASSWORD)[0] == 302
    for _ in range(4):
        _login(owner.username, "wrong")
    assert _login(owner.username, PASSWORD)[0] == 302


def test_setpassword_lifts_the_pause(team) -> None:
    user = make_user("paula")
    for attempt in range(5):
        _login("paula", "wrong", address=f"198.51.100.{attempt + 1}")
    out = StringIO()
    call_command("setpassword", "paula", stdout=out)
    password = out.getvalue().split("paula: ", 1)[1].split()[0]
    assert _login(user.username, password, address="203.0.113.9")[0] == 302

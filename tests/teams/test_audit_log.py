"""The audit log: owners and admins read every change with who, what, which object, when
and from which address, filter it, export it; nobody can edit it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from project.spend.budgets import budget_save
from project.teams.models import AuditEvent, Membership, Role
from tests.conftest import client_for
from tests.factories import add_member, make_connection, make_user

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return " ".join(response.content.decode().split())


def test_a_change_made_on_a_page_is_logged_with_its_address_and_before_and_after(team, owner) -> None:
    member = add_member(team, make_user("vic"), role=Role.VIEWER)
    client = client_for(owner)
    client.post(f"/settings/members/{member.pk}/role/", {"role": "member"}, REMOTE_ADDR="203.0.113.9")
    event = AuditEvent.objects.get(team=team, action="member.role_changed")
    assert (event.actor, event.target, event.address) == (owner, "vic", "203.0.113.9")
    html = text(client.get("/settings/audit/"))
    assert "changed vic&#x27;s role from viewer to member" in html
    assert "203.0.113.9" in html and "role: viewer → member" in html


def test_connection_and_budget_changes_show_what_changed_never_the_key(team, owner) -> None:
    connection = make_connection(team, name="Main", api_key="sk-secret-0001")
    client_for(owner).post(f"/settings/connections/{connection.pk}/", {
        "kind": connection.kind, "name": "Main (prod)", "base_url": connection.base_url, "api_key": "sk-secret-0002"})
    budget_save(team=team, connection=None, amount_usd=Decimal("25"), thresholds=[80], hard_limit=True, actor=owner)
    html = text(client_for(owner).get("/settings/audit/"))
    assert "name: Main → Main (prod)" in html
    assert "amount_usd: — → 25" in html and "set the budget of team" in html
    assert "sk-secret" not in html
    body = b"".join(client_for(owner).get("/settings/audit/export.csv").streaming_content).decode()  # type: ignore[attr-defined]
    assert "sk-secret" not in body and "Main (prod)" in body


def test_filters_by_person_action_and_day_and_the_csv_follows_them(team, owner) -> None:
    ada = add_member(team, make_user("ada"), role=Role.ADMIN).user
    budget_save(team=team, connection=None, amount_usd=Decimal("5"), thresholds=[], hard_limit=False, actor=ada)
    make_connection(team, name="Other")  # logged with no actor
    client = client_for(owner)
    by_ada = text(client.get(f"/settings/audit/?person={ada.pk}"))
    assert "set the budget of team" in by_ada and "created the team" not in by_ada
    budgets = text(client.get("/settings/audit/?action=budget"))
    assert "set the budget" in budgets and "added the connection" not in budgets
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    assert "No changes match." in text(client.get(f"/settings/audit/?start={tomorrow}"))
    assert "not understood" in text(client.get("/settings/audit/?start=yesterday"))
    rows = list(csv.DictReader(io.StringIO(b"".join(client.get(f"/settings/audit/export.csv?person={ada.pk}")
                                                    .streaming_content).decode())))  # type: ignore[attr-defined]
    assert [(row["who"], row["action"]) for row in rows] == [("ada", "budget.saved")]


def test_only_owners_and_admins_read_it(team, owner) -> None:
    member = add_member(team, make_user("mo"), role=Role.MEMBER).user
    assert client_for(member).get("/settings/audit/").status_code == 403
    assert client_for(member).get("/settings/audit/export.csv").status_code == 403


def test_events_are_append_only_but_outlive_their_actor(team, owner) -> None:
    leaver = add_member(team, make_user("lee"), role=Role.ADMIN).user
    budget_save(team=team, connection=None, amount_usd=Decimal("5"), thresholds=[], hard_limit=False, actor=leaver)
    event = AuditEvent.objects.get(team=team, action="budget.saved")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(target="nothing happened")
    Membership.objects.filter(user=leaver).delete()
    leaver.delete()
    event.refresh_from_db()
    assert event.actor is None and event.target == "team"


def test_another_teams_events_are_not_shown(team, owner, other_team) -> None:
    budget_save(team=other_team, connection=None, amount_usd=Decimal("5"), thresholds=[], hard_limit=False,
                actor=make_user("stranger"))
    html = text(client_for(owner).get("/settings/audit/"))
    assert "stranger" not in html and "set the budget" not in html

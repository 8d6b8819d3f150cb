"""Reconciliation: after real chat runs on the sandbox the ledger and the provider's own
costs agree per day and model; a call the ledger lacks shows as a difference; provider
failures are told in words; the admin key is encrypted and never shown; only the team's
owners and admins, and only their own connections."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db.models import Sum

from assistants_app.models import RunStatus
from assistants_app.services import thread_post_message
from project.providers.client import provider_call
from project.providers.models import ProviderConnection, ProviderKind
from project.spend.models import SpendEntry
from project.teams.models import Role
from project.teams.templatetags.display import format_usd
from tests.assistants_app.conftest import wait_for_run
from tests.conftest import client_for
from tests.factories import add_member, make_assistant, make_connection, make_thread, make_user


def page(client, query: str = "") -> str:
    response = client.get(f"/usage/reconciliation/{query}")
    assert response.status_code == 200
    return " ".join(response.content.decode().split())


def row_of(html: str, model: str) -> str:
    found = re.search(rf'<tr data-row="\d{{4}}-\d\d-\d\d {re.escape(model)}".*?</tr>', html)
    assert found, f"no row for {model}"
    return found.group(0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker_session")
def test_real_runs_match_and_a_call_missing_from_the_ledger_is_the_difference(team, owner, sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4.1-mini"))
    for text in ("echo: First reply.", "echo: A second, longer reply for the ledger."):
        _, run = thread_post_message(thread=thread, actor=owner, text=text)
        assert wait_for_run(run.pk).status == RunStatus.SUCCEEDED
    ledger = SpendEntry.objects.filter(team=team, connection_id=connection.pk, model="gpt-4.1-mini").aggregate(
        cost=Sum("cost_usd"))["cost"]
    assert ledger and ledger > 0

    html = page(client_for(owner), f"?connection={connection.pk}")
    row = row_of(html, "gpt-4.1-mini")
    assert f"<td data-ledger-cost>{format_usd(ledger)}</td>" in row
    assert f"<td data-provider-cost>{format_usd(ledger)}</td>" in row
    assert "<td data-difference>matches</td>" in row
    assert "every day and model matches" in html

    # A call made with the connection's key outside Switchboard: billed, never in the ledger.
    extra = provider_call(connection, lambda client: client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "echo: Not in the ledger."}]))
    assert extra.usage is not None
    missing = (Decimal("0.4") * extra.usage.prompt_tokens + Decimal("1.6") * extra.usage.completion_tokens
               ) / 1_000_000
    html = page(client_for(owner), f"?connection={connection.pk}")
    row = row_of(html, "gpt-4.1-mini")
    assert f"<td data-ledger-cost>{format_usd(ledger)}</td>" in row
    assert f"<td data-provider-cost>{format_usd(ledger + missing)}</td>" in row
    assert f"<td data-difference>{format_usd(missing)}</td>" in row and 'class="mismatch"' in row
    assert "1 day and model differ" in html


@pytest.mark.django_db
def test_a_provider_failure_is_told_in_words_beside_the_ledger(team, owner) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1", kind=ProviderKind.OPENAI, name="Down")
    connection.set_admin_key("sk-admin-unreachable-9876")
    connection.save()
    html = page(client_for(owner), f"?connection={connection.pk}")
    assert "The provider's figures could not be read: Could not reach the provider" in html
    assert "Traceback" not in html
    bad = page(client_for(owner), f"?connection={connection.pk}&start=2026-02-10&end=2026-01-01")
    assert "The start date is after the end date." in bad and "could not be read" not in bad


@pytest.mark.django_db
def test_an_openai_connection_without_an_admin_key_cannot_be_reconciled(team, owner) -> None:
    make_connection(team, base_url="http://127.0.0.1:9/v1", kind=ProviderKind.OPENAI, name="No admin key")
    html = page(client_for(owner))
    assert "No connection can be reconciled yet" in html


@pytest.mark.django_db
def test_the_admin_key_is_encrypted_and_never_shown(team, owner, sandbox_url) -> None:
    connection = make_connection(team, base_url="https://api.openai.com/v1", kind=ProviderKind.OPENAI, name="Prod")
    admin_key = "sk-admin-SECRETVALUE-abcdef123456-wxyz"
    client = client_for(owner)
    response = client.post(f"/settings/connections/{connection.pk}/", {
        "kind": "openai", "name": "Prod", "base_url": "https://api.openai.com/v1", "admin_key": admin_key})
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.refresh_from_db()
    assert connection.get_admin_key() == admin_key and connection.admin_key_last4 == "wxyz"
    assert "SECRETVALUE" not in connection.admin_key_encrypted
    assert connection.get_api_key() == "sk-test-1234"  # the API key was kept
    for url in ("/settings/connections/", f"/settings/connections/{connection.pk}/", "/usage/",
                f"/usage/reconciliation/?connection={connection.pk}"):
        html = client.get(url).content.decode()
        assert "SECRETVALUE" not in html and "abcdef123456" not in html, url
    assert "••••wxyz" in client.get(f"/settings/connections/{connection.pk}/").content.decode()
    # Saving again without it keeps it; "remove" removes it.
    client.post(f"/settings/connections/{connection.pk}/", {"kind": "openai", "name": "Prod",
                                                                 "base_url": "https://api.openai.com/v1"})
    connection.refresh_from_db()
    assert connection.get_admin_key() == admin_key
    client.post(f"/settings/connections/{connection.pk}/", {"kind": "openai", "name": "Prod",
                                                                 "base_url": "https://api.openai.com/v1",
                                                                 "remove_admin_key": "on"})
    connection.refresh_from_db()
    assert not connection.admin_key_encrypted and not connection.can_reconcile
    # Like the API key, it never follows the connection to another host.
    client.post(f"/settings/connections/{connection.pk}/", {"kind": "openai", "name": "Prod",
                                                            "base_url": "https://api.openai.com/v1",
                                                            "admin_key": admin_key})
    client.post(f"/settings/connections/{connection.pk}/", {"kind": "openai", "name": "Prod",
                                                            "base_url": "https://proxy.example.com/v1",
                                                            "api_key": "sk-new-key-0000"})
    connection.refresh_from_db()
    assert connection.base_url == "https://proxy.example.com/v1" and not connection.admin_key_encrypted


@pytest.mark.django_db
def test_only_owners_and_admins_of_the_team_reach_its_connections(team, owner, other_team, sandbox_url) -> None:
    mine = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Mine")
    theirs = make_connection(other_team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Theirs")
    assert client_for(owner).get(f"/usage/reconciliation/?connection={theirs.pk}").status_code == 404
    assert "Theirs" not in page(client_for(owner)) and "Mine" in page(client_for(owner))
    member = add_member(team, make_user("mo"), role=Role.MEMBER).user
    assert client_for(member).get(f"/usage/reconciliation/?connection={mine.pk}").status_code == 403
    assert "Reconcile with the provider" not in client_for(member).get("/usage/").content.decode()
    assert ProviderConnection.objects.filter(pk=theirs.pk, team=other_team).exists()

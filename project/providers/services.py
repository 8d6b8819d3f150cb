"""Writes for provider connections."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.template.defaultfilters import pluralize
from django.utils import timezone

from project.providers.capabilities import capabilities_probe
from project.providers.client import ClientOptions, ProviderError, ProviderNotFound
from project.providers.engine import engine_remember, engine_sentence
from project.providers.models import DEFAULT_BASE_URLS, ConnectionCapabilities, ProviderConnection, ProviderKind
from project.providers.remote_models import connection_models, connection_models_forget
from project.teams.models import Team
from project.teams.services import audit_record


def _test_options() -> ClientOptions:
    # "Test connection" should answer quickly; one retry is enough to ride out a blip.
    return ClientOptions(timeout=settings.PROVIDER_TEST_TIMEOUT_SECONDS, max_retries=1)


@dataclass(frozen=True)
class ConnectionTestResult:
    ok: bool
    message: str
    model_ids: list[str]


def sandbox_key_new() -> str:
    """A key of its own for a sandbox connection: the sandbox keeps each key's files, batches,
    jobs and models apart, so two teams' sandbox connections never see each other's."""
    return "sk-sandbox-" + secrets.token_urlsafe(24)


@transaction.atomic
def connection_save(
    *,
    team: Team,
    actor: User | None,
    kind: str,
    name: str,
    base_url: str = "",
    api_key: str = "",
    webhook_secret: str = "",
    admin_key: str = "",
    remove_admin_key: bool = False,
    organization: str = "",
    project: str = "",
    api_version: str = "",
    make_default: bool = False,
    engine: str = "",
    connection: ProviderConnection | None = None,
) -> ProviderConnection:
    """Create a connection, or update one. A blank api_key / webhook_secret on an
    update keeps the stored one (the form never shows it back). A sandbox connection
    saved without any key gets a random one of its own."""
    creating = connection is None
    if connection is None:
        connection = ProviderConnection(team=team)
    before = None if creating else _audit_view(connection)
    new_base_url = (base_url or DEFAULT_BASE_URLS.get(kind, "")).rstrip("/")
    api_key = api_key.strip()  # before the check below: a key of spaces is no key
    moved = not creating and (connection.address_differs(kind=kind, base_url=new_base_url)
                              or new_base_url != connection.base_url)
    if not creating and not api_key and connection.address_differs(kind=kind, base_url=new_base_url):
        # A saved key never follows the connection to another host (the form asks for it again).
        connection.set_api_key("")
    admin_key = admin_key.strip()
    if remove_admin_key or kind not in {ProviderKind.OPENAI, ProviderKind.SANDBOX} or (
            not creating and not admin_key and connection.address_differs(kind=kind, base_url=new_base_url)):
        # Like the API key, an admin key never follows the connection to another host.
        connection.set_admin_key("")
    if admin_key and kind in {ProviderKind.OPENAI, ProviderKind.SANDBOX}:
        connection.set_admin_key(admin_key)
    connection.kind = kind
    connection.name = name.strip()
    connection.base_url = new_base_url
    connection.organization = organization.strip()
    connection.project = project.strip()
    connection.api_version = api_version.strip()
    connection.engine = engine
    if not api_key and kind == ProviderKind.SANDBOX and (creating or not connection.api_key_encrypted):
        api_key = sandbox_key_new()
    if api_key or creating:
        connection.set_api_key(api_key)
    if webhook_secret or creating:
        connection.set_webhook_secret(webhook_secret.strip())
    has_other_default = ProviderConnection.objects.filter(team=team, is_default=True).exclude(pk=connection.pk).exists()
    if make_default or not has_other_default:
        ProviderConnection.objects.filter(team=team, is_default=True).exclude(pk=connection.pk).update(is_default=False)
        connection.is_default = True
    connection.save()
    if moved:  # what another server was seen to support says nothing of this one
        ConnectionCapabilities.objects.filter(connection=connection).delete()
    # Another URL or key may serve other models.
    transaction.on_commit(lambda: connection_models_forget(connection))
    audit_record(
        team=team, actor=actor, action="connection.created" if creating else "connection.updated",
        target=connection.name, kind=kind, before=before, after=_audit_view(connection),
        key_changed=bool(api_key) and not creating, admin_key_changed=bool(admin_key) or remove_admin_key,
    )
    return connection


def _audit_view(connection: ProviderConnection) -> dict[str, object]:
    """What the audit log keeps of a connection before and after a change: never its secrets."""
    return {"name": connection.name, "kind": connection.kind, "base_url": connection.base_url,
            "organization": connection.organization, "project": connection.project,
            "api_version": connection.api_version, "is_default": connection.is_default}


def connection_delete(*, connection: ProviderConnection, actor: User) -> None:
    audit_record(team=connection.team, actor=actor, action="connection.deleted", target=connection.name)
    connection.delete()


def connection_test(*, connection: ProviderConnection) -> ConnectionTestResult:
    """List the provider's models through the SDK, then probe what the server supports
    (project.providers.capabilities; its Responses probe is the engine's detection), and
    remember the outcome."""
    try:
        # A fresh list, which also refreshes what the pickers show for this connection.
        model_ids = sorted(model.id for model in connection_models(connection, fresh=True, options=_test_options()))
        result = ConnectionTestResult(True, f"Connected: {len(model_ids)} model{pluralize(len(model_ids))} available.",
                                      model_ids)
    except ProviderNotFound as error:
        result = ConnectionTestResult(False, f"{error.message} {_not_found_hint(connection)}", [])
    except ProviderError as error:
        result = ConnectionTestResult(False, error.message, [])
    if result.ok:
        capabilities = capabilities_probe(connection=connection)
        engine_remember(connection, (capabilities.results.get("responses") or {}).get("ok"))
        result = ConnectionTestResult(True, f"{result.message} {engine_sentence(connection)}", result.model_ids)
    connection.last_test_ok = result.ok
    connection.last_test_message = result.message
    connection.last_tested_at = timezone.now()
    connection.save(update_fields=["last_test_ok", "last_test_message", "last_tested_at"])
    return result


def _not_found_hint(connection: ProviderConnection) -> str:
    """A 404 on the model list is a wrong address, not a missing model: say which part to check."""
    if connection.kind == ProviderKind.AZURE:
        return ("Check the resource endpoint (https://<resource>.openai.azure.com, without a path) and the API "
                "version (for example 2024-10-21).")
    return "Check the base URL: it usually ends in /v1."


def sandbox_connection_ensure(*, team: Team, sandbox_url: str) -> ProviderConnection:
    """Give a team a connection to the built-in sandbox (used on first start)."""
    existing = ProviderConnection.objects.filter(team=team, kind=ProviderKind.SANDBOX).first()
    if existing is not None:
        if existing.base_url != sandbox_url.rstrip("/"):
            existing.base_url = sandbox_url.rstrip("/")
            existing.save(update_fields=["base_url"])
        return existing
    made = connection_save(team=team, actor=None, kind=ProviderKind.SANDBOX, name="Sandbox",
                           base_url=sandbox_url, make_default=True)
    # The built-in sandbox serves /v1/responses (it is ours): its chats run on the Responses
    # engine from the first message, as an OpenAI connection's do, without a Test connection.
    engine_remember(made, True)
    return made

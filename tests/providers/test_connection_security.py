"""A connection's key goes only where it was entered for, and a provider call's request
(headers and key) never reaches a page."""

from __future__ import annotations

import pytest
from django.test import Client

from project.providers.client import ProviderError, provider_call
from project.providers.models import ProviderConnection, ProviderKind
from project.providers.services import connection_test
from tests.factories import make_connection

pytestmark = pytest.mark.django_db

KEY = "sk-owner-secret-key-7777"


def _edit(client: Client, connection: ProviderConnection, **fields: str) -> str:
    data = {"kind": connection.kind, "name": connection.name, "base_url": connection.base_url, **fields}
    return client.post(f"/settings/connections/{connection.pk}/", data).content.decode()


@pytest.mark.parametrize("field", ["organization", "project", "api_version"])
@pytest.mark.parametrize("value", ["org-é", "org x", "org\tx", "org\nx"])
def test_ids_that_cannot_go_in_a_header_are_a_form_error(owner_client: Client, team, field: str, value: str) -> None:
    response = owner_client.post("/settings/connections/new/", {"kind": "openai", "name": "Prod", "api_key": KEY,
                                                                field: value})
    assert "no spaces or accented letters" in response.content.decode()
    assert not ProviderConnection.objects.filter(team=team).exists()


def _non_ascii_connection(team, sandbox_url: str) -> ProviderConnection:
    """Saved before the form checked the field (or written by hand)."""
    connection = make_connection(team, base_url=sandbox_url, api_key=KEY, kind=ProviderKind.SANDBOX)
    ProviderConnection.objects.filter(pk=connection.pk).update(organization="org-é", is_default=True)
    connection.refresh_from_db()
    return connection


def test_a_request_that_cannot_be_built_is_a_provider_error_without_the_key(team, sandbox_url) -> None:
    connection = _non_ascii_connection(team, sandbox_url)
    with pytest.raises(ProviderError) as caught:
        provider_call(connection, lambda client: client.models.list())
    assert KEY not in caught.value.message and "organization" in caught.value.message
    # Not chained to the original, whose frames hold the headers.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    result = connection_test(connection=connection)
    assert not result.ok and KEY not in result.message


def test_pages_that_list_models_show_the_problem_instead_of_an_error_page(owner_client: Client, team,
                                                                           sandbox_url) -> None:
    connection = _non_ascii_connection(team, sandbox_url)
    response = owner_client.get(f"/threads/new/?model=gpt-4.1-mini&connection={connection.pk}")
    page = response.content.decode()
    assert response.status_code == 400  # the page, with the problem on it
    assert "could not be sent" in page and KEY not in page
    response = owner_client.get("/assistants/guide/")
    assert response.status_code == 200 and KEY not in response.content.decode()
    response = owner_client.post(f"/settings/connections/{connection.pk}/test/", follow=True)
    assert response.status_code == 200 and "could not be sent" in response.content.decode()


@pytest.mark.parametrize("change", [
    {"base_url": "https://attacker.example/v1"},
    {"base_url": "http://127.0.0.1:9999/v1"},  # same host, another port
    {"base_url": "https://127.0.0.1:9/v1"},  # another scheme
    {"kind": ProviderKind.OPENAI, "base_url": ""},
])
def test_moving_a_connection_to_another_address_needs_the_key_again(owner_client: Client, team,
                                                                    change: dict[str, str]) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1", api_key=KEY)
    page = _edit(owner_client, connection, **change)
    assert "Enter the API key again: the address changed." in page
    connection.refresh_from_db()
    assert connection.base_url == "http://127.0.0.1:9/v1" and connection.get_api_key() == KEY


def test_moving_a_connection_with_a_new_key_is_saved(owner_client: Client, team) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1", api_key=KEY)
    _edit(owner_client, connection, base_url="http://127.0.0.1:9999/v1", api_key="sk-new-key-8888")
    connection.refresh_from_db()
    assert connection.base_url == "http://127.0.0.1:9999/v1" and connection.get_api_key() == "sk-new-key-8888"


def test_a_new_path_on_the_same_host_keeps_the_key(owner_client: Client, team) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1", api_key=KEY)
    _edit(owner_client, connection, base_url="http://127.0.0.1:9/openai/v1")
    connection.refresh_from_db()
    assert connection.base_url == "http://127.0.0.1:9/openai/v1" and connection.get_api_key() == KEY


def test_the_service_never_carries_a_saved_key_to_another_host(team) -> None:
    from project.providers.services import connection_save

    connection = make_connection(team, base_url="http://127.0.0.1:9/v1", api_key=KEY)
    connection_save(team=team, actor=None, connection=connection, kind=connection.kind, name=connection.name,
                    base_url="https://elsewhere.example/v1")
    connection.refresh_from_db()
    assert connection.get_api_key() == ""


def test_a_key_of_spaces_does_not_keep_the_saved_key_on_another_host(team) -> None:
    from project.providers.services import connection_save

    connection = make_connection(team, base_url="http://127.0.0.1:9/v1", api_key=KEY)
    connection_save(team=team, actor=None, connection=connection, kind=connection.kind, name=connection.name,
                    base_url="https://elsewhere.example/v1", api_key="   ")
    connection.refresh_from_db()
    assert connection.get_api_key() == ""


def test_the_form_and_the_service_agree_on_what_moves_a_connection(team) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1", api_key=KEY)
    assert not connection.address_differs(kind=connection.kind, base_url="http://127.0.0.1:9/other/v1")
    assert connection.address_differs(kind=connection.kind, base_url="http://127.0.0.1:10/v1")
    assert connection.address_differs(kind=ProviderKind.OPENAI, base_url="")

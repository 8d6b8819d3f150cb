from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from project.providers.client import ProviderAuthError, ProviderNotFound, provider_call
from project.providers.models import ProviderConnection, ProviderKind
from project.providers.services import connection_test
from sandbox.testing import running_sandbox
from tests.factories import make_connection


@pytest.fixture(scope="module")
def keyed_sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sandbox that checks the key, so a wrong key gets the provider's real 401."""
    with running_sandbox(Path(tmp_path_factory.mktemp("keyed")), api_key="sk-right-key") as url:
        yield url


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a provider that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_testing_a_good_connection_lists_the_models(team, sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    result = connection_test(connection=connection)
    assert result.ok
    assert "gpt-4.1-mini" in result.model_ids
    assert result.message.startswith(f"Connected: {len(result.model_ids)} models")
    connection.refresh_from_db()
    assert connection.last_test_ok is True


def test_a_wrong_key_is_reported_in_plain_words(team, keyed_sandbox_url) -> None:
    connection = make_connection(team, base_url=keyed_sandbox_url, api_key="sk-wrong-key")
    result = connection_test(connection=connection)
    assert not result.ok
    assert result.message.startswith("The provider rejected the API key (401)")


def test_an_unreachable_host_is_reported(team) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1")
    result = connection_test(connection=connection)
    assert not result.ok and "unreachable" in result.message


def test_a_timeout_is_reported(team, silent_server, settings) -> None:
    settings.PROVIDER_TEST_TIMEOUT_SECONDS = 0.5
    connection = make_connection(team, base_url=silent_server)
    result = connection_test(connection=connection)
    assert not result.ok and "timeout" in result.message


def test_sdk_errors_become_the_projects_own(team, sandbox_url, keyed_sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url)
    with pytest.raises(ProviderNotFound) as caught:
        provider_call(connection, lambda client: client.models.retrieve("no-such-model"))
    assert caught.value.status_code == 404 and caught.value.request_id
    bad = make_connection(team, base_url=keyed_sandbox_url, api_key="sk-nope")
    with pytest.raises(ProviderAuthError):
        provider_call(bad, lambda client: client.models.list())


def test_the_test_button_answers_an_htmx_request_with_the_result_fragment(owner_client: Client, team, sandbox_url) -> None:
    connection = make_connection(team, base_url=sandbox_url)
    response = owner_client.post(f"/settings/connections/{connection.pk}/test/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Connected:" in body and "<html" not in body


def test_adding_a_connection_through_the_form_validates_it(owner_client: Client, team) -> None:
    response = owner_client.post("/settings/connections/new/", {"kind": "openai", "name": "Prod"})
    assert "An API key is required" in response.content.decode()
    response = owner_client.post("/settings/connections/new/", {"kind": "compatible", "name": "Local", "api_key": "x"})
    assert "needs a base URL" in response.content.decode()
    owner_client.post("/settings/connections/new/", {"kind": "openai", "name": "Prod", "api_key": "sk-abc-9999"})
    saved = ProviderConnection.objects.get(team=team, name="Prod")
    assert saved.base_url == "https://api.openai.com/v1" and saved.api_key_last4 == "9999" and saved.is_default


def test_editing_without_a_new_key_keeps_the_saved_key(owner_client: Client, team) -> None:
    connection = make_connection(team, api_key="sk-keep-me-5555")
    owner_client.post(f"/settings/connections/{connection.pk}/", {"kind": "compatible", "name": "Renamed",
                                                                  "base_url": "http://127.0.0.1:9/v1"})
    connection.refresh_from_db()
    assert connection.name == "Renamed" and connection.get_api_key() == "sk-keep-me-5555"


def test_pollers_back_off_doubling_up_to_the_cap_and_never_before_retry_after() -> None:
    from project.providers.client import ProviderRateLimited, ProviderServerError, poll_backoff_seconds

    failed = ProviderServerError("down")
    assert [poll_backoff_seconds(n, failed, base=30, cap=1800) for n in (1, 2, 3, 7, 50)] == [30, 60, 120, 1800, 1800]
    assert poll_backoff_seconds(1, ProviderRateLimited("slow down", retry_after=90), base=30, cap=1800) == 90


def test_a_provider_with_one_model_says_one_model(team, sandbox_url, monkeypatch) -> None:
    from types import SimpleNamespace

    from project.providers import services

    monkeypatch.setattr(services, "connection_models", lambda *a, **k: [SimpleNamespace(id="only-model")])
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    assert connection_test(connection=connection).message.startswith("Connected: 1 model available. ")


def test_the_connection_form_shows_the_azure_address_with_its_placeholder(owner_client) -> None:
    page = owner_client.get("/settings/connections/new/").content.decode()
    assert "Azure: https://&lt;resource&gt;.openai.azure.com." in page

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from assistants_app.model_catalog import model_choices
from jobs_app.finetune.catalog import finetunable_models
from project.providers import remote_models
from project.providers.models import ProviderKind
from project.providers.remote_models import connection_has_model, connection_models
from project.providers.services import connection_save, connection_test
from tests.factories import make_connection


@pytest.fixture
def provider_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real calls to the provider (each still goes to the sandbox)."""
    calls: list[str] = []
    real = remote_models.provider_call

    def counting(connection: Any, call: Callable[..., Any], options: Any = None) -> Any:
        calls.append(connection.name)
        return real(connection, call, options)

    monkeypatch.setattr(remote_models, "provider_call", counting)
    return calls


def test_the_picker_and_the_fine_tuning_form_share_one_models_call(team, sandbox_url, provider_calls) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    chat_choices, error = model_choices(connection)
    base_models = finetunable_models(connection)
    assert not error and "gpt-4.1-mini" in {choice.id for choice in chat_choices}
    assert "gpt-4.1-mini" in {choice.model_id for choice in base_models}
    assert provider_calls == [connection.name]


def test_testing_a_connection_refreshes_the_list_and_saving_it_forgets_the_list(
    team, sandbox_url, provider_calls, django_capture_on_commit_callbacks
) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    connection_models(connection)
    assert connection_test(connection=connection).ok
    connection_models(connection)
    assert len(provider_calls) == 2  # the test asked afresh; the read after it used the cache
    with django_capture_on_commit_callbacks(execute=True):
        connection_save(team=team, actor=None, kind=connection.kind, name=connection.name, base_url=sandbox_url,
                        connection=connection)
    connection_models(connection)
    assert len(provider_calls) == 3


def test_a_model_missing_from_the_cached_list_is_looked_up_again(team, sandbox_url, provider_calls) -> None:
    connection = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    assert connection_has_model(connection, "gpt-4.1-mini")
    assert not connection_has_model(connection, "ft:gpt-4.1-mini:nobody::none")
    assert len(provider_calls) == 2

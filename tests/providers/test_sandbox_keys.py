"""Each sandbox connection has a key of its own, so two teams on one sandbox never share anything."""

from __future__ import annotations

import io
import time
from pathlib import Path

import openai
import pytest
from django.test import Client

from project.files.models import File
from project.files.services import file_fetch_remote, file_upload, files_sync_connection
from project.providers.client import ProviderError
from project.providers.models import Engine, ProviderConnection, ProviderKind
from project.providers.remote_models import connection_models
from project.providers.services import connection_save, sandbox_connection_ensure
from project.teams.models import Team
from tests.factories import make_connection


def test_a_sandbox_connection_saved_without_a_key_gets_a_random_one_of_its_own(team: Team, other_team: Team) -> None:
    first = connection_save(team=team, actor=None, kind=ProviderKind.SANDBOX, name="Sandbox",
                            base_url="http://127.0.0.1:9/v1")
    second = connection_save(team=other_team, actor=None, kind=ProviderKind.SANDBOX, name="Sandbox",
                             base_url="http://127.0.0.1:9/v1")
    first_key, second_key = first.get_api_key(), second.get_api_key()
    assert first_key.startswith("sk-sandbox-") and len(first_key) > 30
    assert second_key.startswith("sk-sandbox-") and second_key != first_key
    # Saving it again without a key keeps its key; a key typed in is used as given.
    connection_save(team=team, actor=None, kind=ProviderKind.SANDBOX, name="Renamed",
                    base_url="http://127.0.0.1:9/v1", connection=first)
    assert ProviderConnection.objects.get(pk=first.pk).get_api_key() == first_key
    typed = connection_save(team=team, actor=None, kind=ProviderKind.SANDBOX, name="Typed",
                            base_url="http://127.0.0.1:9/v1", api_key="sk-mine")
    assert typed.get_api_key() == "sk-mine"
    # Other kinds are never given a key.
    local = connection_save(team=team, actor=None, kind=ProviderKind.COMPATIBLE, name="llama",
                            base_url="http://127.0.0.1:9/v1")
    assert local.get_api_key() == ""


def test_the_form_gives_a_new_sandbox_connection_its_own_key(owner_client: Client, team: Team) -> None:
    owner_client.post("/settings/connections/new/", {"kind": "sandbox", "name": "Try it",
                                                     "base_url": "http://127.0.0.1:9/v1"})
    saved = ProviderConnection.objects.get(team=team, name="Try it")
    assert saved.get_api_key().startswith("sk-sandbox-")


def test_a_sandbox_connection_moved_to_another_address_gets_a_new_key_not_its_old_one(owner_client: Client,
                                                                                      team: Team) -> None:
    connection = make_connection(team, base_url="http://127.0.0.1:9/v1", kind=ProviderKind.SANDBOX, name="Sandbox")
    old_key = connection.get_api_key()
    response = owner_client.post(f"/settings/connections/{connection.pk}/", {
        "kind": "sandbox", "name": "Sandbox", "base_url": "http://127.0.0.1:10/v1"})
    assert "Enter the API key again" not in response.content.decode()
    connection.refresh_from_db()
    assert connection.base_url == "http://127.0.0.1:10/v1"
    new_key = connection.get_api_key()
    assert new_key.startswith("sk-sandbox-") and new_key != old_key
    # Other kinds still must type the key again.
    other = make_connection(team, base_url="http://127.0.0.1:9/v1", name="llama", api_key="sk-local-1")
    response = owner_client.post(f"/settings/connections/{other.pk}/", {
        "kind": "compatible", "name": "llama", "base_url": "http://127.0.0.1:10/v1"})
    assert "Enter the API key again" in response.content.decode()


def test_the_first_start_sandbox_connection_has_its_own_key_and_keeps_it(team: Team) -> None:
    made = sandbox_connection_ensure(team=team, sandbox_url="http://127.0.0.1:8100/v1")
    assert made.run_engine == Engine.RESPONSES  # the sandbox speaks /v1/responses
    key = made.get_api_key()
    assert key.startswith("sk-sandbox-") and key != "sk-sandbox"
    again = sandbox_connection_ensure(team=team, sandbox_url="http://127.0.0.1:8101/v1")
    assert again.pk == made.pk and again.get_api_key() == key and again.base_url == "http://127.0.0.1:8101/v1"


def test_another_teams_sandbox_connection_sees_none_of_this_teams_files_jobs_or_models(
    team: Team, other_team: Team, sandbox_url: str, settings: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Issue #13 item 5: team B's sandbox connection synced and downloaded team A's CSV and saw A's models."""
    settings.MEDIA_ROOT = str(tmp_path)  # type: ignore[attr-defined]
    mine = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    theirs = make_connection(other_team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
    csv = file_upload(team=team, connection=mine, purpose="user_data", name="salaries.csv",
                      chunks=[b"name,salary\nann,100\n"], actor=None)

    assert files_sync_connection(connection=theirs)["imported"] == 0
    assert not File.objects.filter(team=other_team).exists()
    with pytest.raises(ProviderError):
        file_fetch_remote(team=other_team, connection=theirs, remote_id=csv.remote_id)

    # A fine-tuned model made with team A's key is listed for A only.
    provider = openai.OpenAI(base_url=sandbox_url, api_key=mine.get_api_key(), max_retries=0)
    lines = b"".join(b'{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "a"}]}\n'
                     % i for i in range(10))
    train = provider.files.create(file=("t.jsonl", io.BytesIO(lines)), purpose="fine-tune")
    job = provider.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=train.id,
                                           hyperparameters={"n_epochs": 1})
    deadline = time.monotonic() + 20
    while (job := provider.fine_tuning.jobs.retrieve(job.id)).status != "succeeded":
        assert time.monotonic() < deadline, job.status
        time.sleep(0.05)
    assert job.fine_tuned_model in {m.id for m in connection_models(mine, fresh=True)}
    their_models = {m.id for m in connection_models(theirs, fresh=True)}
    assert job.fine_tuned_model not in their_models and "gpt-4.1-mini" in their_models
    their_client = openai.OpenAI(base_url=sandbox_url, api_key=theirs.get_api_key(), max_retries=0)
    assert job.id not in {j.id for j in their_client.fine_tuning.jobs.list()}

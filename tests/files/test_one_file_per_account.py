"""Two connections to one provider account see the same files: each file is one row
(#13 item 10), so a sync through the second connection imports nothing again and the
in-use guard sees the one row a job uses, whichever connection the job runs on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection as db_connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from jobs_app.batches.models import Batch
from project.files.models import File, FileState
from project.files.services import FileInUse, file_delete, file_upload, files_sync_connection
from project.providers.models import ProviderConnection, ProviderKind
from tests.factories import chat_example, jsonl, make_connection, make_finetune_job


@pytest.fixture
def second_connection(team: object, connection: ProviderConnection) -> ProviderConnection:
    """Another connection with the same key to the same sandbox: the same account."""
    return make_connection(team, base_url=connection.base_url + "/", kind=ProviderKind.SANDBOX,  # type: ignore[arg-type]
                           api_key=connection.get_api_key(), name="Sandbox, again")


def test_a_sync_through_a_second_connection_to_the_account_imports_nothing_again(
        team, connection, second_connection) -> None:
    for i in range(3):
        file_upload(team=team, connection=connection, purpose="user_data", name=f"notes-{i}.txt",
                    chunks=[f"note {i}\n".encode()], actor=None)
    files_sync_connection(connection=connection)
    before = File.objects.filter(team=team).count()

    result = files_sync_connection(connection=second_connection)

    assert result["imported"] == 0 and result["listed"] >= 3
    assert File.objects.filter(team=team).count() == before
    again = files_sync_connection(connection=connection)
    assert again["imported"] == 0 and again["missing"] == 0


def test_a_training_file_in_use_by_a_job_on_the_second_connection_cannot_be_deleted(
        team, connection, second_connection, owner_client) -> None:
    training = file_upload(team=team, connection=connection, purpose="fine-tune", name="train.jsonl",
                           chunks=[jsonl([chat_example(i) for i in range(10)])], actor=None)
    job = make_finetune_job(team, connection=second_connection)
    job.training_file_remote_id = training.remote_id
    job.save()
    files_sync_connection(connection=second_connection)

    with pytest.raises(FileInUse):
        file_delete(team=team, file=File.objects.get(team=team, remote_id=training.remote_id), actor=None)

    assert File.objects.get(pk=training.pk).state == FileState.ACTIVE
    page = owner_client.get(reverse("file_list")).content.decode()
    assert page.count("train.jsonl") == 1 and "Fine-tune job" in page


# -- existing duplicates -------------------------------------------------------------------------

BEFORE = ("files", "0003_staged_upload_requests")


@pytest.fixture
def database_before_the_merge(transactional_db: None) -> Iterator[MigrationExecutor]:
    executor = MigrationExecutor(db_connection)
    executor.migrate([BEFORE])
    yield executor
    latest = MigrationExecutor(db_connection)
    latest.migrate(latest.loader.graph.leaf_nodes())


def test_rows_imported_twice_before_are_merged_and_what_used_them_follows(
        database_before_the_merge: MigrationExecutor) -> None:
    loader = database_before_the_merge.loader
    # Every app at its latest, the file library just before the merge.
    nodes = [BEFORE if app == "files" else (app, name) for app, name in loader.graph.leaf_nodes()]
    old = loader.project_state(nodes).apps
    team = old.get_model("teams", "Team").objects.create(name="Twice", slug="twice")
    connections = [old.get_model("providers", "ProviderConnection").objects.create(
        team=team, kind="openai", name=name, base_url=url)
        for name, url in (("Work", "https://api.openai.com/v1"), ("Work 2", "https://API.openai.com/v1/"))]
    old_file = old.get_model("files", "File")
    first, second = (old_file.objects.create(team=team, connection=c, remote_id="file-abc", purpose="batch",
                                             name="in.jsonl", bytes=10) for c in connections)
    elsewhere = old_file.objects.create(team=team, connection=connections[0], remote_id="file-other",
                                        purpose="batch", name="other.jsonl", bytes=10)
    group = old.get_model("batches", "BatchGroup").objects.create(
        team=team, connection=connections[1], name="Nightly", endpoint="/v1/chat/completions", model="gpt-4.1-mini",
        source="jsonl")
    old.get_model("batches", "Batch").objects.create(team=team, connection=connections[1], group=group, part=1,
                                                     remote_id="batch_1", endpoint="/v1/chat/completions",
                                                     input_file=second)

    latest = MigrationExecutor(db_connection)
    latest.migrate(latest.loader.graph.leaf_nodes())

    rows = File.objects.filter(team_id=team.pk, remote_id="file-abc")
    assert [row.pk for row in rows] == [first.pk]
    assert Batch.objects.get(remote_id="batch_1").input_file_id == first.pk
    assert File.objects.filter(pk=elsewhere.pk).exists()

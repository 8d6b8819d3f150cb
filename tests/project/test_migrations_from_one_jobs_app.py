"""A database made before batches and fine-tuning had apps of their own (one jobs_app
holding their models, the webhook deliveries and the notifications) migrates onto the
new apps with every row kept: the models moved, the tables did not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs_app.batches.models import Batch, BatchGroup
from jobs_app.finetune.models import FineTuneJob
from project.notifications.models import Notification
from project.providers.models import ProviderConnection
from project.teams.models import Team
from project.webhooks.models import WebhookDelivery

JOBS_APP_LAST = ("jobs_app", "0005_batch_submitting_since")
BEFORE_THE_SPLIT: list[tuple[str, str | None]] = [JOBS_APP_LAST, ("batches", None), ("finetune", None),
                    ("notifications", None), ("webhooks", None)]


def _executor() -> MigrationExecutor:
    return MigrationExecutor(connection)


@pytest.fixture
def database_before_the_split(transactional_db: None) -> Iterator[MigrationExecutor]:
    executor = _executor()
    executor.migrate(BEFORE_THE_SPLIT)  # (app, None): none of that app's migrations applied
    yield executor
    # Whatever the test did, leave the database on the latest migrations for the others.
    latest = _executor()
    latest.migrate(latest.loader.graph.leaf_nodes())


def test_rows_made_before_the_split_are_read_by_the_new_apps(database_before_the_split: MigrationExecutor) -> None:
    old = database_before_the_split.loader.project_state(JOBS_APP_LAST).apps
    # Teams and connections stay on their latest migrations (only jobs_app's are rolled
    # back): their rows are made with today's models, jobs_app's with the historical ones.
    team = Team.objects.create(name="Before", slug="before")
    conn = ProviderConnection.objects.create(team=team, kind="sandbox", name="Sandbox",
                                             base_url="http://127.0.0.1:9/v1")
    job = old.get_model("jobs_app", "FineTuneJob").objects.create(
        team_id=team.pk, connection_id=conn.pk, remote_id="ftjob-before", base_model="gpt-4.1-mini",
        status="running")
    group = old.get_model("jobs_app", "BatchGroup").objects.create(
        team_id=team.pk, connection_id=conn.pk, name="Old batch", endpoint="/v1/chat/completions",
        model="gpt-4.1-mini", source="jsonl")
    old.get_model("jobs_app", "Batch").objects.create(team_id=team.pk, connection_id=conn.pk, group=group, part=1,
                                                      remote_id="batch_before", endpoint="/v1/chat/completions")
    old.get_model("jobs_app", "Notification").objects.create(team_id=team.pk,
                                                             text="Fine-tuning job ftjob-before succeeded")
    old.get_model("jobs_app", "WebhookDelivery").objects.create(connection_id=conn.pk, webhook_id="wh_1",
                                                                event_type="batch.completed")

    latest = _executor()
    latest.migrate(latest.loader.graph.leaf_nodes())

    assert FineTuneJob.objects.get(remote_id="ftjob-before").pk == job.pk
    assert BatchGroup.objects.get(name="Old batch").parts.get().remote_id == "batch_before"
    assert Batch.objects.get(remote_id="batch_before").group_id == group.pk
    assert Notification.objects.get(team_id=team.pk).text.startswith("Fine-tuning job ftjob-before")
    assert WebhookDelivery.objects.get(connection_id=conn.pk).webhook_id == "wh_1"


def test_content_types_follow_the_models_so_admin_history_stays_attached(
        database_before_the_split: MigrationExecutor) -> None:
    from django.contrib.contenttypes.models import ContentType

    # Back before the split, the fine-tuning job's content type is jobs_app's again.
    ContentType.objects.clear_cache()
    old = ContentType.objects.get(app_label="jobs_app", model="finetunejob")
    assert not ContentType.objects.filter(app_label="finetune", model="finetunejob").exists()

    latest = _executor()
    latest.migrate(latest.loader.graph.leaf_nodes())

    moved = ContentType.objects.get(pk=old.pk)  # the same row: what points at it stays attached
    assert (moved.app_label, moved.model) == ("finetune", "finetunejob")
    assert not ContentType.objects.filter(app_label="jobs_app", model="finetunejob").exists()

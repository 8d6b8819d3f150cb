"""Evals plugs into the platform: Celery task names, beat entries, roles on its pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from project.celery import app
from project.teams.models import Role
from tests.conftest import client_for
from tests.evals_app.conftest import make_set, question
from tests.factories import add_member

pytestmark = pytest.mark.django_db


def test_tasks_and_beat_entries_are_registered() -> None:
    for name in ("evals_app.run_execute", "evals_app.batch_run_submit", "evals_app.batch_run_sync",
                 "evals_app.batch_runs_sync_tick", "evals_app.runs_recover_stale"):
        assert name in app.tasks, name
    schedule = app.conf.beat_schedule
    assert schedule["evals-recover-stale-runs"]["task"] == "evals_app.runs_recover_stale"
    assert schedule["evals-batch-runs-sync"]["task"] == "evals_app.batch_runs_sync_tick"


def test_a_viewer_reads_sets_but_cannot_change_or_run_them(team, assistant, eval_connection) -> None:
    viewer = add_member(team, role=Role.VIEWER).user
    client = client_for(viewer)
    test_set = make_set(team, question("echo: a", expected_text="a"))
    assert client.get(reverse("eval_set_detail", args=[test_set.pk])).status_code == 200
    assert client.get(reverse("eval_home")).status_code == 200
    assert client.post(reverse("eval_home"), {"name": "Mine"}).status_code == 403
    assert client.post(reverse("eval_set_detail", args=[test_set.pk]), {"question": "x"}).status_code == 403
    assert client.get(reverse("eval_run_new", args=[test_set.pk])).status_code == 403
    assert client.get(reverse("eval_migrate", args=[assistant.pk])).status_code == 403


def test_a_running_run_keeps_polling(owner_client, team, assistant, eval_connection) -> None:
    from tests.evals_app.conftest import start_run

    test_set = make_set(team, question("echo: a", expected_text="a"))
    version = assistant.current_version
    run = start_run(team, test_set, eval_connection, (version, version.model))
    response = owner_client.get(reverse("eval_run_detail", args=[run.pk]), headers={"HX-Request": "true",
                                                                                     "HX-Target": "run-live"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-trigger="every 1s"' in body and "0 of 1 answers" in body

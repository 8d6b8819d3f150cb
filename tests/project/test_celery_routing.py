from __future__ import annotations

import pytest

from project.celery import app


def _queue_of(task_name: str) -> str:
    # Celery passes the registered task instance here (as send_task does); the stub says "type".
    route = app.amqp.router.route({}, task_name, (), {}, app.tasks[task_name])  # type: ignore[arg-type]
    return str(route["queue"].name)


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("project.files.tasks.files_sync_all_task", "io"),
        ("jobs_app.batches.tasks.batches_sync_tick", "io"),
        ("assistants_app.run_execute", "io"),
        ("jobs_app.finetune.tasks.dataset_validate_task", "cpu"),
    ],
)
def test_tasks_go_to_the_queue_of_their_workload(task_name: str, queue: str) -> None:
    app.loader.import_default_modules()
    assert _queue_of(task_name) == queue


def test_every_project_task_declares_its_workload() -> None:
    app.loader.import_default_modules()
    ours = [name for name in app.tasks if name.split(".")[0] in {"project", "assistants_app", "jobs_app"}]
    assert ours
    undeclared = [name for name in ours if getattr(app.tasks[name], "workload", None) not in {"io", "cpu"}]
    assert undeclared == []


def _names_sent_by_name() -> set[str]:
    """Every task name a service sends through project.queue, read off the source."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"task_send(?:_on_commit)?\(\s*\"([\w.]+)\"")
    return {name for package in ("project", "assistants_app", "jobs_app") for path in (root / package).rglob("*.py")
            for name in pattern.findall(path.read_text())}


def test_every_task_a_service_sends_by_name_is_registered_without_the_worker_loading_it() -> None:
    # No import_default_modules(): the web process has only what the apps registered in ready().
    names = _names_sent_by_name()
    assert "assistants_app.run_execute" in names and len(names) >= 10
    assert sorted(name for name in names if name not in app.tasks) == []


def test_each_app_adds_its_periodic_tasks_and_each_names_a_registered_task() -> None:
    schedule = app.conf.beat_schedule
    assert set(schedule) >= {"chat-recover-stale-runs", "finetune-sync", "files-sync-all", "files-reap-uploads",
                             "batches-sync"}
    assert sorted(entry["task"] for entry in schedule.values() if entry["task"] not in app.tasks) == []


def test_a_periodic_tick_no_worker_started_within_its_period_expires() -> None:
    # The next tick does the same work: while a worker is down, its queue must not fill
    # with ticks that would all run back to back when it returns.
    for key, entry in app.conf.beat_schedule.items():
        assert entry["options"]["expires"] == entry["schedule"], key

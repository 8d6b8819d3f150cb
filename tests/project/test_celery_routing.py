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

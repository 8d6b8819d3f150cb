"""Thin Celery tasks: take ids, call the runner or a service."""

from __future__ import annotations

from celery import shared_task

from evals_app import batch_runs, runner, services
from project.workloads import IoTask

# A run writes its heartbeat at least every half second while it works.
STALE_AFTER_SECONDS = 120.0


# No acks_late: a redelivered task finds the run claimed or finished; a dead worker's run
# is sent again by the sweep below, and only its unanswered cases are asked.
@shared_task(base=IoTask, name="evals_app.run_execute")
def run_execute_task(run_id: int) -> None:
    runner.run_execute(run_id)


@shared_task(base=IoTask, name="evals_app.batch_run_submit")
def batch_run_submit_task(run_id: int) -> None:
    batch_runs.batch_run_submit(run_id)


@shared_task(base=IoTask, name="evals_app.batch_runs_sync_tick")
def batch_runs_sync_tick() -> None:
    for run_id in batch_runs.batch_runs_to_sync():
        batch_run_sync_task.delay(run_id)


@shared_task(base=IoTask, name="evals_app.batch_run_sync")
def batch_run_sync_task(run_id: int) -> None:
    batch_runs.batch_run_sync(run_id)


@shared_task(base=IoTask, name="evals_app.runs_recover_stale")
def runs_recover_stale_task() -> tuple[int, int]:
    return services.eval_runs_recover_stale(stale_after_seconds=STALE_AFTER_SECONDS)

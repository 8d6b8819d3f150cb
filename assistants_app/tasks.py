"""Thin Celery tasks: take ids, call the run loop."""

from __future__ import annotations

from celery import shared_task

from assistants_app import images, recovery, run_engines
from project.workloads import CpuTask, IoTask

# A run whose worker has not sent a heartbeat for this long is taken as dead.
STALE_AFTER_SECONDS = 60.0


# No acks_late: a redelivered run would be claimed by nobody (the claim is a
# conditional update) and a dead worker's run is recovered by the beat task below.
@shared_task(base=IoTask, name="assistants_app.run_execute")
def run_execute_task(run_id: int) -> None:
    run_engines.run_execute(run_id)


@shared_task(base=IoTask, name="assistants_app.runs_recover_stale")
def runs_recover_stale_task() -> tuple[int, int]:
    return recovery.runs_recover_stale(stale_after_seconds=STALE_AFTER_SECONDS)


@shared_task(base=CpuTask, name="assistants_app.chat_images_forget_unused")
def chat_images_forget_unused_task(team_id: int, image_ids: list[int]) -> int:
    return images.chat_images_forget_unused(team_id=team_id, image_ids=set(image_ids))

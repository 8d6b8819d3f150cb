"""Thin Celery tasks: take ids, call the run loop."""

from __future__ import annotations

from celery import shared_task

from assistants_app import images, recovery, responses_poll, run_engines
from project.workloads import CpuTask, IoTask

# A run whose worker has not sent a heartbeat for this long is taken as dead.
STALE_AFTER_SECONDS = 60.0


# No acks_late: a redelivered run would be claimed by nobody (the claim is a
# conditional update) and a dead worker's run is recovered by the beat task below.
@shared_task(base=IoTask, name="assistants_app.run_execute")
def run_execute_task(run_id: int, posted_in: int | None = None) -> None:
    # posted_in: the thread whose message POST sent the run before committing it (run_loop.run_claim).
    run_engines.run_execute(run_id, posted_in=posted_in)


@shared_task(base=IoTask, name="assistants_app.runs_recover_stale")
def runs_recover_stale_task() -> tuple[int, int]:
    return recovery.runs_recover_stale(stale_after_seconds=STALE_AFTER_SECONDS)


# Beat's tick: background responses awaiting the provider are fetched when due. Two ticks
# that overlap are harmless: a fetch claims its run first (responses_poll).
@shared_task(base=IoTask, name="assistants_app.responses_poll_due")
def responses_poll_due_task() -> int:
    return responses_poll.responses_poll_due()


# A response.* webhook or Stop: that run's response is fetched now.
@shared_task(base=IoTask, name="assistants_app.response_fetch")
def response_fetch_task(run_id: int) -> bool:
    return responses_poll.response_fetch(run_id, now_too=True)


@shared_task(base=CpuTask, name="assistants_app.chat_images_forget_unused")
def chat_images_forget_unused_task(team_id: int, image_ids: list[int]) -> int:
    return images.chat_images_forget_unused(team_id=team_id, image_ids=set(image_ids))

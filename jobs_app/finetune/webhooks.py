"""fine_tuning.job.* webhooks: the delivery is already verified and deduplicated by
project.webhooks; here it only triggers a sync of that job. The sync reads the
job's current state from the provider, so deliveries in any order, or twice,
end in the same state and announce the end once."""

from __future__ import annotations

from typing import Any

from jobs_app.finetune.models import FineTuneJob
from project.providers.models import ProviderConnection
from project.queue import task_send_on_commit


def handle_fine_tuning_event(connection: ProviderConnection, event: Any) -> None:
    remote_id = str(getattr(getattr(event, "data", None), "id", "") or "")
    job = FineTuneJob.objects.filter(connection=connection, remote_id=remote_id).only("pk").first()
    if job is None:
        return  # a job this site does not track
    task_send_on_commit("jobs_app.finetune.tasks.finetune_job_refresh_task", job.pk)

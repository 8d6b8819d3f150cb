"""fine_tuning.job.* webhooks: the delivery is already verified and deduplicated by
jobs_app.webhooks; here it only triggers a sync of that job. The sync reads the
job's current state from the provider, so deliveries in any order, or twice,
end in the same state and announce the end once."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from jobs_app.models_finetune import FineTuneJob
from project.providers.models import ProviderConnection


def handle_fine_tuning_event(connection: ProviderConnection, event: Any) -> None:
    from jobs_app.finetune.tasks import finetune_job_refresh_task

    remote_id = str(getattr(getattr(event, "data", None), "id", "") or "")
    job = FineTuneJob.objects.filter(connection=connection, remote_id=remote_id).only("pk").first()
    if job is None:
        return  # a job this site does not track
    transaction.on_commit(lambda: finetune_job_refresh_task.delay(job.pk))

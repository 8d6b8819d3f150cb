"""Tells the file library which files fine-tune jobs use, so a file an active job
still needs cannot be deleted, and a file's page links to its jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db.models import Q
from django.urls import reverse

from jobs_app.finetune.models import FineTuneJob
from project.files.models import File
from project.files.usage import FileUsage
from project.teams.models import Team


def finetune_file_usages(team: Team, files: Sequence[File]) -> Mapping[int, Sequence[FileUsage]]:
    # A file is the job's when the job's provider (any connection to it) has that remote id.
    by_remote = {(f.provider_address, f.remote_id): f.pk for f in files}
    remote_ids = [f.remote_id for f in files]
    jobs = FineTuneJob.objects.filter(team=team).filter(
        Q(training_file_remote_id__in=remote_ids) | Q(validation_file_remote_id__in=remote_ids)
        | Q(result_file__in=[f.pk for f in files])
    ).select_related("connection")
    usages: dict[int, list[FileUsage]] = {}
    for job in jobs:
        url = reverse("finetune_job_detail", args=[job.pk])
        address = job.connection.files_address
        uses = [(by_remote.get((address, job.training_file_remote_id)), "training file"),
                (by_remote.get((address, job.validation_file_remote_id)), "validation file"),
                (job.result_file_id, "result file")]
        for file_id, role in uses:
            if file_id is not None and file_id in by_remote.values():
                usages.setdefault(file_id, []).append(
                    FileUsage(kind="Fine-tune job", label=f"{job.remote_id} ({role})", url=url,
                              active=not job.is_terminal and role != "result file"))
    return usages

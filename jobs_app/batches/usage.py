"""Tells the file library which files batches use: a batch's input file cannot be
deleted while the provider may still read it, and a file's page links to its batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db.models import Q
from django.urls import reverse

from jobs_app.batches.models import Batch
from project.files.models import File
from project.files.usage import FileUsage
from project.teams.models import Team


def batch_file_usages(team: Team, files: Sequence[File]) -> Mapping[int, Sequence[FileUsage]]:
    ids = [f.pk for f in files]
    batches = (Batch.objects.filter(team=team)
               .filter(Q(input_file__in=ids) | Q(output_file__in=ids) | Q(error_file__in=ids))
               .select_related("group"))
    usages: dict[int, list[FileUsage]] = {}
    for batch in batches:
        url = reverse("batch_detail", args=[batch.group_id])
        label = f"{batch.group.name} (part {batch.part})"
        for file_id, role in ((batch.input_file_id, "input"), (batch.output_file_id, "output"),
                              (batch.error_file_id, "errors")):
            if file_id is not None and file_id in ids:
                # Only the input is still needed by the provider while the batch runs.
                usages.setdefault(file_id, []).append(
                    FileUsage(kind="Batch", label=f"{label}, {role}", url=url,
                              active=role == "input" and not batch.is_terminal))
    return usages

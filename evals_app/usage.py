"""Tells the file library which files evals use: a batch run's input file cannot be deleted
while the provider may still read it, and the file's page links to the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.urls import reverse

from evals_app.models import EvalRun
from project.files.models import File
from project.files.usage import FileUsage
from project.teams.models import Team


def eval_file_usages(team: Team, files: Sequence[File]) -> Mapping[int, Sequence[FileUsage]]:
    runs = EvalRun.objects.filter(team=team, batch_input_file__in=[f.pk for f in files])
    usages: dict[int, list[FileUsage]] = {}
    for run in runs:
        assert run.batch_input_file_id is not None
        usages.setdefault(run.batch_input_file_id, []).append(FileUsage(
            kind="Eval run", label=f"#{run.pk}, batch input", url=reverse("eval_run_detail", args=[run.pk]),
            active=run.is_active))
    return usages

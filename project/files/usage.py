"""Where each file is used: a registry other apps add themselves to.

The file library does not import fine-tuning, batches or chat; those apps tell it
which of the team's files they use. Register once, at app start-up (AppConfig.ready):

    from project.files.usage import FileUsage, register_file_usage

    def finetune_file_usages(team, files):
        by_remote = {(f.provider_address, f.remote_id): f.pk for f in files}
        usages = {}
        for job in FineTuneJob.objects.filter(team=team, training_file__in=files):
            usages.setdefault(job.training_file_id, []).append(
                FileUsage(kind="Fine-tune job", label=job.remote_id, url=reverse("finetune_detail", args=[job.pk]),
                          active=job.status in ACTIVE_STATUSES))
        return usages

    register_file_usage(finetune_file_usages)

A provider takes the team and a list of its File rows (one call per page, so answer
with one query, not one per file) and returns {file.pk: [FileUsage, ...]} for the
files it uses; files it does not use are simply left out. `active=True` means the
file may not be deleted yet (a running job, a batch in progress). With no provider
registered every file is unused and may be deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from project.files.models import File
    from project.teams.models import Team

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileUsage:
    kind: str  # "Fine-tune job", "Batch", "Thread": shown as is
    label: str  # which one: a job id, a batch name, a thread title
    active: bool  # still needs the file: it cannot be deleted while this is true
    url: str | None = None  # a link to the user of the file, when it has a page


UsageProvider = Callable[["Team", Sequence["File"]], Mapping[int, Sequence[FileUsage]]]

_providers: dict[str, UsageProvider] = {}


def register_file_usage(provider: UsageProvider) -> UsageProvider:
    """Add a usage provider; usable as a decorator. Registering the same function twice keeps one."""
    _providers[f"{provider.__module__}.{provider.__qualname__}"] = provider
    return provider


def unregister_file_usage(provider: UsageProvider) -> None:
    _providers.pop(f"{provider.__module__}.{provider.__qualname__}", None)


def file_usages(*, team: Team, files: Sequence[File], strict: bool = True) -> dict[int, list[FileUsage]]:
    """Every registered use of these files. strict=False (for list pages) logs a failing
    provider and goes on; deletion uses strict=True so a failing provider blocks it."""
    found: dict[int, list[FileUsage]] = {f.pk: [] for f in files}
    if not files:
        return found
    for name, provider in list(_providers.items()):
        try:
            answer = provider(team, files)
        except Exception:
            if strict:
                raise
            log.exception("file usage provider %s failed", name)
            continue
        for file_id, usages in answer.items():
            if file_id in found:
                found[file_id].extend(usages)
    return found

"""An uploaded input (JSONL, or CSV + template) to a draft group: in the request for
small files, on the cpu queue for big ones, through the same function."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile

from assistants_app.conversation import assistant_request_spec
from jobs_app.batches.build import BodySpec, items_from_csv, items_from_jsonl, text_stream
from jobs_app.batches.models import BatchBuild, BatchGroup, BatchSource, BuildState
from jobs_app.batches.services import batch_group_build
from jobs_app.batches.validation import BatchInputInvalid, InputProblems
from project.providers.models import ProviderConnection
from project.queue import task_send_on_commit
from project.teams.models import Team

# Inputs up to this size are checked while the person waits; bigger ones on a worker.
INLINE_BUILD_BYTES = 5 * 1024 * 1024


def inline_build_bytes() -> int:
    return int(getattr(settings, "BATCH_INLINE_BUILD_BYTES", INLINE_BUILD_BYTES))


@dataclass(frozen=True)
class BuildOptions:
    template: str = ""
    model: str = ""
    instructions: str = ""
    response_format: dict[str, Any] | None = None
    # From an assistant's current version, resolved when the form is sent (so a big input
    # checked later on a worker uses the version the person chose, not a newer one).
    tools: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None
    assistant_version_id: int | None = None

    def body_spec(self) -> BodySpec:
        return BodySpec(model=self.model, instructions=self.instructions, response_format=self.response_format,
                        tools=self.tools, extra=dict(self.extra or {}))

    @classmethod
    def for_assistant(cls, assistant: Any, *, template: str) -> BuildOptions:
        spec = assistant_request_spec(assistant)
        return cls(template=template, model=spec.model, instructions=spec.instructions,
                   response_format=spec.response_format, tools=spec.tools, extra=spec.extra,
                   assistant_version_id=assistant.current_version.pk)


def batch_group_build_from_upload(*, team: Team, connection: ProviderConnection, actor: User | None, name: str,
                                  endpoint: str, source: str, options: BuildOptions, stream: IO[bytes]) -> BatchGroup:
    """Raises BatchInputInvalid (with every problem found) and leaves nothing behind when the input is bad."""
    problems = InputProblems()
    if source == BatchSource.CSV:
        items = items_from_csv(text_stream(stream), template=options.template, spec=options.body_spec(), endpoint=endpoint,
                               problems=problems)
    else:
        items = items_from_jsonl(stream, endpoint=endpoint, problems=problems)
    try:
        return batch_group_build(team=team, connection=connection, actor=actor, name=name, endpoint=endpoint,
                                 source=source, items=items, problems=problems)
    except UnicodeDecodeError as error:
        problems.add(f"the file is not UTF-8 text ({error.reason} at byte {error.start}).")
        raise BatchInputInvalid(problems) from error


def batch_build_queue(*, team: Team, connection: ProviderConnection, actor: User | None, name: str, endpoint: str,
                      source: str, options: BuildOptions, upload: UploadedFile) -> BatchBuild:
    """Keep a big upload for a worker to check; the task is enqueued once the row is committed."""
    build = BatchBuild(team=team, connection=connection, created_by=actor, name=name[:200], endpoint=endpoint,
                       source=source, options=asdict(options))
    build.upload.save(upload.name or "input", upload, save=False)
    build.save()
    task_send_on_commit("jobs_app.batches.tasks.batch_build_task", build.pk)
    return build


def batch_build_run(*, build: BatchBuild) -> None:
    """Check a queued build. Claimed with a conditional update, so a redelivered task does nothing twice."""
    if not BatchBuild.objects.filter(pk=build.pk, state=BuildState.QUEUED).update(state=BuildState.RUNNING):
        return
    try:
        with build.upload.open("rb") as stream:
            group = batch_group_build_from_upload(
                team=build.team, connection=build.connection, actor=build.created_by, name=build.name,
                endpoint=build.endpoint, source=build.source, options=BuildOptions(**build.options), stream=stream)
    except BatchInputInvalid as invalid:
        BatchBuild.objects.filter(pk=build.pk).update(
            state=BuildState.INVALID, problems=[str(p) for p in invalid.problems.problems],
            more_problems=invalid.problems.more)
    except Exception:
        BatchBuild.objects.filter(pk=build.pk).update(
            state=BuildState.INVALID, problems=["The input could not be checked (an internal error); try again."])
        raise
    else:
        BatchBuild.objects.filter(pk=build.pk).update(state=BuildState.DONE, group=group)
    finally:
        # The rows hold the input now (or it was refused): the uploaded copy is not kept.
        with contextlib.suppress(OSError):
            build.upload.delete(save=False)
        BatchBuild.objects.filter(pk=build.pk).update(upload="")

"""Pick threads to run again: each thread's conversation, up to its last user message, becomes
one request under its assistant's current version: for /v1/responses when the batch's
connection runs on the Responses engine, else for /v1/chat/completions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.models import User

from assistants_app.conversation import assistant_request_spec
from jobs_app.batches.build import BodySpec, items_from_conversations, thread_conversation
from jobs_app.batches.models import BatchEndpoint, BatchGroup, BatchSource
from jobs_app.batches.services import batch_group_build
from jobs_app.batches.validation import InputProblems
from project.providers.models import Engine, ProviderConnection
from project.teams.models import Team


def _specs(threads: list[Any], problems: InputProblems) -> dict[int, BodySpec]:
    """One body spec per assistant of the chosen threads, and one model for them all."""
    specs: dict[int, BodySpec] = {}
    names: dict[int, str] = {}
    for thread in threads:
        assistant = thread.assistant
        if assistant.pk in specs or assistant.pk in names:
            continue
        names[assistant.pk] = assistant.name
        try:
            specs[assistant.pk] = assistant_request_spec(assistant)
        except ValueError as error:
            problems.add(f"thread “{thread.title}”: {error}")
    models = {spec.model for spec in specs.values()}
    if len(models) > 1:
        used = "; ".join(f"{names[pk]}: {spec.model}" for pk, spec in specs.items())
        problems.add(f"the chosen threads' assistants use different models ({used}); a batch runs one model, "
                     "so choose threads of assistants with the same model.")
    return specs


def _conversations(threads: list[Any], specs: dict[int, BodySpec]) -> Iterator[tuple[str, list[dict[str, Any]], BodySpec]]:
    for thread in threads:
        custom_id, messages = thread_conversation(thread)
        yield custom_id, messages, specs[thread.assistant.pk]


def batch_group_build_from_threads(*, team: Team, connection: ProviderConnection, actor: User | None, name: str,
                                   threads: Iterable[Any]) -> BatchGroup:
    """Threads must already be the team's (the caller reads them through a team selector).
    Raises BatchInputInvalid, leaving nothing behind, when a thread cannot be run again or
    the threads' assistants use different models (a batch runs one model)."""
    threads = list(threads)
    if any(thread.team_id != team.pk for thread in threads):
        raise ValueError("a thread of another team")  # the form's team-scoped choices make this unreachable
    problems = InputProblems()
    specs = _specs(threads, problems)
    problems.raise_if_any()
    endpoint = BatchEndpoint.RESPONSES if connection.run_engine == Engine.RESPONSES else BatchEndpoint.CHAT
    items = items_from_conversations(_conversations(threads, specs), endpoint=endpoint, problems=problems)
    return batch_group_build(team=team, connection=connection, actor=actor, name=name or "Threads run again",
                             endpoint=endpoint, source=BatchSource.THREADS, items=items, problems=problems)

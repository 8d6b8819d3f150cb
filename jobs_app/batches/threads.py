"""Pick threads to run again: each thread's conversation, up to its last user message, becomes
one chat request under its assistant's current version."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.models import User

from jobs_app.batches.build import BodySpec, items_from_conversations, request_body_for_assistant, thread_conversation
from jobs_app.batches.services import batch_group_build
from jobs_app.batches.validation import InputProblems
from jobs_app.models_batches import BatchEndpoint, BatchGroup, BatchSource
from project.providers.models import ProviderConnection
from project.teams.models import Team


def _conversations(threads: Iterable[Any], problems: InputProblems) -> Iterator[tuple[str, list[dict[str, Any]], BodySpec]]:
    specs: dict[int, BodySpec] = {}
    for line_no, thread in enumerate(threads, start=1):
        assistant = thread.assistant
        if assistant.pk not in specs:
            try:
                specs[assistant.pk] = request_body_for_assistant(assistant)
            except ValueError as error:
                problems.add(f"thread “{thread.title}”: {error}", line=line_no)
                continue
        custom_id, messages = thread_conversation(thread)
        yield custom_id, messages, specs[assistant.pk]


def batch_group_build_from_threads(*, team: Team, connection: ProviderConnection, actor: User | None, name: str,
                                   threads: Iterable[Any]) -> BatchGroup:
    """Threads must already be the team's (the caller reads them through a team selector).
    Raises BatchInputInvalid, leaving nothing behind, when a thread cannot be run again or
    the threads' assistants use different models (a batch runs one model)."""
    threads = list(threads)
    if any(thread.team_id != team.pk for thread in threads):
        raise ValueError("a thread of another team")  # the form's team-scoped choices make this unreachable
    problems = InputProblems()
    items = items_from_conversations(_conversations(threads, problems), endpoint=BatchEndpoint.CHAT, problems=problems)
    return batch_group_build(team=team, connection=connection, actor=actor, name=name or "Threads run again",
                             endpoint=BatchEndpoint.CHAT, source=BatchSource.THREADS, items=items, problems=problems)

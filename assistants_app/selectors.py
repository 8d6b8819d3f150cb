"""Reads, always scoped to a team."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.html import escape

from assistants_app.models import ACTIVE_STATUSES, Assistant, AssistantVersion, ChatImage, Message, Run, Thread
from project.joined_rows import JoinedModel, joined_fetch
from project.providers.models import ProviderConnection
from project.teams.models import Team
from project.user_input import MAX_ID, loads_user_json

THREAD_PAGE = 25
# Control characters mark matches, so the message text can be escaped before <mark> goes in.
MARK_START, MARK_STOP = "\u0002", "\u0003"
MESSAGE_PAGE = 50


def team_assistants(*, team: Team, archived: bool = False) -> QuerySet[Assistant]:
    return (Assistant.objects.filter(team=team, archived_at__isnull=not archived)
            .select_related("current_version", "connection"))


def team_assistant_get(*, team: Team, assistant_id: int) -> Assistant:
    return get_object_or_404(Assistant.objects.select_related("current_version", "connection"), team=team,
                             pk=assistant_id)


def assistant_versions(*, assistant: Assistant) -> QuerySet[AssistantVersion]:
    return assistant.versions.select_related("created_by").order_by("-number")


def team_version_get(*, team: Team, version_id: int) -> AssistantVersion:
    return get_object_or_404(AssistantVersion.objects.select_related("assistant", "created_by"),
                             assistant__team=team, pk=version_id)


_THREAD_WITH = (JoinedModel(Thread, "th"), JoinedModel(Assistant, "a"), JoinedModel(AssistantVersion, "v"),
                JoinedModel(ProviderConnection, "c"))


@cache
def _thread_get_sql() -> str:
    thread, assistant, version, connection = _THREAD_WITH
    # Only the models' own table and column names are formatted in; the ids are parameters.
    return (f"SELECT {thread.columns}, {assistant.columns}, {version.columns}, {connection.columns} "  # noqa: S608
            f"FROM {Thread._meta.db_table} th JOIN {Assistant._meta.db_table} a ON a.id = th.assistant_id "
            f"LEFT JOIN {AssistantVersion._meta.db_table} v ON v.id = a.current_version_id "
            f"LEFT JOIN {ProviderConnection._meta.db_table} c ON c.id = a.connection_id "
            "WHERE th.id = %s AND th.team_id = %s")


def team_thread_get(*, team: Team, thread_id: int) -> Thread:
    """The team's thread (404 for another team's or none), with its assistant, the assistant's
    current version and its connection. Every message POST and thread page reads it first:
    one prepared statement (project.joined_rows), where the ORM compiled and PostgreSQL
    planned a four-table join on every request (about 1 ms of CPU, 4 times this one's)."""
    built = joined_fetch(_thread_get_sql(), (thread_id, team.pk), _THREAD_WITH) if 0 < thread_id <= MAX_ID else None
    if built is None:
        raise Http404("No such thread.")
    thread, assistant, version, connection = built
    assert isinstance(thread, Thread) and isinstance(assistant, Assistant)
    assistant.current_version = version  # type: ignore[assignment]  # None caches "no version", as select_related does
    assistant.connection = connection  # type: ignore[assignment]
    thread.assistant = assistant
    thread.team = team  # the team it was found in: thread.team costs no query (the message POST reads it)
    return thread


def team_threads(*, team: Team) -> QuerySet[Thread]:
    return Thread.objects.filter(team=team).select_related("assistant__current_version")


def thread_message_counts(*, team: Team, thread_ids: list[int]) -> dict[int, int]:
    """Stored messages per thread (pending tool results left out), for a page of threads."""
    rows = (Message.objects.filter(team=team, thread_id__in=thread_ids, pending=False)
            .values("thread_id").annotate(n=Count("id")).values_list("thread_id", "n"))
    return dict(rows)


def team_run_get(*, team: Team, run_id: int) -> Run:
    return get_object_or_404(Run.objects.select_related("thread", "version"), team=team, pk=run_id)


def team_message_get(*, team: Team, message_id: int) -> Message:
    return get_object_or_404(Message.objects.select_related("run", "thread"), team=team, pk=message_id)


def thread_messages_page(*, thread: Thread, before_id: int | None = None,
                         limit: int = MESSAGE_PAGE) -> tuple[list[Message], bool]:
    """The newest `limit` messages before before_id, oldest first, and whether older ones exist."""
    qs = thread.messages.select_related("version", "author")
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    rows = list(qs.order_by("-id")[: limit + 1])
    has_older = len(rows) > limit
    return list(reversed(rows[:limit])), has_older


def thread_active_runs(*, thread: Thread) -> QuerySet[Run]:
    return thread.runs.filter(status__in=ACTIVE_STATUSES).order_by("id")


def thread_all_messages(*, thread: Thread) -> QuerySet[Message]:
    return thread.messages.select_related("version", "author", "run").order_by("id")


def thread_all_runs(*, thread: Thread) -> QuerySet[Run]:
    return thread.runs.order_by("id")


@dataclass(frozen=True)
class ThreadFilters:
    query: str = ""
    assistant_id: int | None = None
    author_id: int | None = None
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class ThreadPage:
    threads: list[Thread]
    next_cursor: str | None
    headlines: dict[int, str]


def _encode_cursor(thread: Thread) -> str:
    raw = json.dumps([thread.updated_at.isoformat(), thread.pk]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    """The position a cursor names, or None (the first page) for anything this module did
    not write: the cursor comes from the URL, so it may hold any JSON at all."""
    try:
        decoded = loads_user_json(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:  # bad base64, bad JSON, bad UTF-8
        return None
    if not isinstance(decoded, list) or len(decoded) != 2:
        return None
    stamp, pk = decoded
    # An exact int only: a float such as 1e400 is inf, and int(inf) raises OverflowError.
    if not isinstance(stamp, str) or type(pk) is not int or not 0 < pk <= MAX_ID:
        return None
    try:
        position = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if position.tzinfo is None:
        return None
    return position, pk


def thread_list_page(*, team: Team, filters: ThreadFilters, cursor: str = "", limit: int = THREAD_PAGE) -> ThreadPage:
    """Threads newest first, keyset-paginated on (updated_at, id) so page N costs what page 1 does."""
    qs = Thread.objects.filter(team=team).select_related("assistant", "created_by")
    if filters.assistant_id:
        qs = qs.filter(assistant_id=filters.assistant_id)
    if filters.author_id:
        qs = qs.filter(created_by_id=filters.author_id)
    if filters.since:
        qs = qs.filter(updated_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(updated_at__date__lte=filters.until)
    query = SearchQuery(filters.query, search_type="websearch", config="english") if filters.query else None
    if query is not None:
        matching = Message.objects.filter(team=team, search=query).values("thread_id")
        qs = qs.filter(id__in=matching)
    position = _decode_cursor(cursor) if cursor else None
    if position is not None:
        stamp, pk = position
        qs = qs.filter(Q(updated_at__lt=stamp) | Q(updated_at=stamp, id__lt=pk))
    rows = list(qs.order_by("-updated_at", "-id")[: limit + 1])
    threads = rows[:limit]
    next_cursor = _encode_cursor(threads[-1]) if len(rows) > limit else None
    headlines: dict[int, str] = {}
    if query is not None and threads:
        best = (Message.objects.filter(team=team, thread_id__in=[t.pk for t in threads], search=query)
                .annotate(rank=SearchRank("search", query))
                .order_by("thread_id", "-rank", "id").distinct("thread_id")
                .annotate(headline=SearchHeadline("text", query, config="english", start_sel=MARK_START,
                                                  stop_sel=MARK_STOP, max_words=30, min_words=10))
                .values_list("thread_id", "headline"))
        headlines = {thread_id: _highlight(text) for thread_id, text in best}
    return ThreadPage(threads=threads, next_cursor=next_cursor, headlines=headlines)


def _highlight(headline: str) -> str:
    return escape(headline).replace(MARK_START, "<mark>").replace(MARK_STOP, "</mark>")


def message_search(*, team: Team, query: str, limit: int = 10) -> list[Message]:
    search = SearchQuery(query, search_type="websearch", config="english")
    return list(Message.objects.filter(team=team, search=search).select_related("thread").order_by("-id")[:limit])


def team_chat_image_get(*, team: Team, image_id: int) -> ChatImage:
    return get_object_or_404(ChatImage, team=team, pk=image_id)

"""The thread page's event stream's reads (views_stream): each a round trip of prepared
statements built from the models' metadata, with no ORM query compiled per call.

Every open page renders each run it is told of twice (its `run` event when it starts, its
`done` event when it ends), so a chat costs every viewer's web process these reads; through
the ORM they were three queries (the run, its messages, its billed cost), compiled each
time, in as many round trips, about three quarters of the render's CPU. A stream's open (once
per page, and once per chat where a client opens one per message) reads the thread's check,
the runs the client named and the thread's active runs in one statement too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Model

from assistants_app.models import ACTIVE_STATUSES, AssistantVersion, Message, Run, Thread
from project.joined_rows import JoinedModel, joined_build, pipelined_rows
from project.spend.models import SpendEntry
from project.user_input import MAX_ID

_RUN = (JoinedModel(Run, "r"), JoinedModel(AssistantVersion, "v"))
_STARTED_BY = (JoinedModel(Message, "um"), JoinedModel(User, "u"))
_MESSAGE = (JoinedModel(Message, "m"), JoinedModel(AssistantVersion, "mv"))


@dataclass(frozen=True)
class RunBlock:
    """What a run's block shows: the run (its version, and with_user_message its user's
    message and that message's author, read with it), its messages (with their versions),
    oldest first, and what the ledger holds for it (None: nothing, or no price)."""

    run: Run
    messages: list[Message]
    billed: Decimal | None


@cache
def _run_block_sql(with_user_message: bool) -> str:
    """The run's row joined to each of its messages' (with their versions; one row with no
    message when it has none), and its billed cost. One statement, not one per table
    pipelined: psycopg's pipeline mode costs more on the client than the run's columns
    repeated on a second or third row. Only table and column names from the models' own
    metadata are formatted in; every value is a parameter. Columns by name, never `*`: the
    rows are cut into models by the models' field lists, so a column a migration adds
    while the statement is prepared must not shift them."""
    run, version = _RUN
    message, message_version = _MESSAGE
    started_by, author = _STARTED_BY
    message_table, version_table = Message._meta.db_table, AssistantVersion._meta.db_table
    # The ledger's rows of the run, summed as spend.selectors.sources_cost does (SUM skips
    # rows with no price; no row at all, or none priced, is NULL).
    billed = (f"(SELECT SUM(s.cost_usd) FROM {SpendEntry._meta.db_table} s "  # noqa: S608
              "WHERE s.team_id = r.team_id AND s.source_kind = %(kind)s AND s.source_id = r.id)")
    columns = [run.columns, version.columns, *([started_by.columns, author.columns] if with_user_message else []),
               billed, message.columns, message_version.columns]
    joins = [f"JOIN {version_table} v ON v.id = r.version_id"]
    if with_user_message:
        joins += [f"LEFT JOIN {message_table} um ON um.id = r.user_message_id",
                  f"LEFT JOIN {User._meta.db_table} u ON u.id = um.author_id"]
    joins += [f"LEFT JOIN {message_table} m ON m.run_id = r.id",
              f"LEFT JOIN {version_table} mv ON mv.id = m.version_id"]
    return (f"SELECT {', '.join(columns)} FROM {Run._meta.db_table} r {' '.join(joins)} "  # noqa: S608
            "WHERE r.id = %(run)s AND r.thread_id = %(thread)s ORDER BY m.id")


def thread_run_block(*, thread_id: int, run_id: int, with_user_message: bool = False) -> RunBlock | None:
    """The thread's run `run_id` and what its block shows, in one statement; None when the
    run is not (or no longer) in the thread. The thread is the caller's to have checked
    against the viewer's team (views_stream.thread_events does, once per stream)."""
    [rows] = pipelined_rows([(_run_block_sql(with_user_message),
                              {"run": run_id, "thread": thread_id, "kind": "run"})])
    if not rows:
        return None
    parts = [*_RUN, *_STARTED_BY] if with_user_message else list(_RUN)
    built, start = _cut(rows[0], parts, 0)
    run, version = built[0], built[1]
    assert isinstance(run, Run) and isinstance(version, AssistantVersion)
    run.version = version
    if with_user_message:
        started_by, author = built[2], built[3]
        assert started_by is None or isinstance(started_by, Message)
        assert author is None or isinstance(author, User)
        if started_by is not None:
            started_by.author = author
        run.user_message = started_by
    billed = rows[0][start]
    messages = []
    for row in rows:
        (message, message_version), _ = _cut(row, _MESSAGE, start + 1)
        if message is None:  # the run has none
            break
        assert isinstance(message, Message)
        assert message_version is None or isinstance(message_version, AssistantVersion)
        message.version = message_version
        messages.append(message)
    return RunBlock(run=run, messages=messages, billed=billed)


def _cut(row: tuple[Any, ...], parts: Sequence[JoinedModel], start: int) -> tuple[list[Model | None], int]:
    """The instances of `parts`, read from the row from column `start` on, and the column after them."""
    end = start + sum(len(part.fields) for part in parts)
    return joined_build(row[start:end], parts), end


@dataclass(frozen=True)
class StreamStart:
    """What a stream's open reads once the thread is found in the team: which of the run ids
    the client named (its Last-Event-ID, the runs its page shows as writing) are the thread's,
    and the thread's active runs, oldest first (when asked for)."""

    own: set[int]
    active: list[int]


@cache
def _stream_start_sql() -> str:
    # Only the tables' own names are formatted in; every value is a parameter.
    run_table = Run._meta.db_table
    return (f"SELECT ARRAY(SELECT r.id FROM {run_table} r WHERE r.thread_id = t.id AND r.id = ANY(%(named)s)), "  # noqa: S608
            f"ARRAY(SELECT r.id FROM {run_table} r WHERE r.thread_id = t.id AND r.status = ANY(%(active)s) "
            f"ORDER BY r.id) FROM {Thread._meta.db_table} t WHERE t.id = %(thread)s AND t.team_id = %(team)s")


def team_thread_stream_start(*, team_id: int, thread_id: int, named: Iterable[int],
                             with_active: bool) -> StreamStart | None:
    """The stream's open in one statement where the ORM took a query each (the thread's
    check, the named runs' and the active runs'); None when the thread is not the team's."""
    # An id past PostgreSQL's bigint names no run (Last-Event-ID is the client's text).
    params = {"team": team_id, "thread": thread_id, "named": [run_id for run_id in named if run_id <= MAX_ID],
              "active": [str(status) for status in ACTIVE_STATUSES] if with_active else []}
    [rows] = pipelined_rows([(_stream_start_sql(), params)])
    if not rows:
        return None
    own, active = rows[0]
    return StreamStart(own=set(own), active=list(active))

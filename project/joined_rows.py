"""Model instances read from one SQL row that joins several tables: for the few statements on
a latency-critical path that the ORM cannot say in one round trip (an UPDATE … RETURNING
joined to what the caller needs next), prepared once per connection so PostgreSQL does not
plan them again on every call.

The columns come from the models' own field lists, so a field added to a model is read
without touching the statement; values pass through the same converters the ORM applies
(JSON's, for one), so the instances are what a queryset would have built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from functools import cache, cached_property
from typing import Any

import psycopg
from django.db import connection as db_connection
from django.db.models import Field, Model
from django.db.models.signals import post_save
from psycopg import pq

type Converter = Callable[[Any, Any, Any], Any]


class JoinedModel:
    """One model's part of a joined row: its table alias, its columns, its converters."""

    def __init__(self, model: type[Model], alias: str) -> None:
        self.model, self.alias = model, alias
        self.fields: list[Field[Any, Any]] = list(model._meta.concrete_fields)

    @cached_property
    def _pk_index(self) -> int:
        return next(index for index, field in enumerate(self.fields) if field.primary_key)

    @property
    def columns(self) -> str:
        return ", ".join(f'{self.alias}."{field.column}"' for field in self.fields)

    @cached_property
    def _converters(self) -> list[tuple[int, list[tuple[Converter, Any]]]]:
        # The same for every connection of the one PostgreSQL backend: worked out once.
        found = []
        for index, field in enumerate(self.fields):
            column = field.get_col(self.alias)
            converters = db_connection.ops.get_db_converters(column) + column.get_db_converters(db_connection)
            if converters:
                found.append((index, [(converter, column) for converter in converters]))
        return found

    def build(self, values: Sequence[Any]) -> Model | None:
        """The instance, or None for a LEFT JOIN that found no row (its primary key is NULL)."""
        if values[self._pk_index] is None:
            return None
        values = list(values)
        for index, converters in self._converters:
            for converter, column in converters:
                values[index] = converter(values[index], column, db_connection)
        return self.model.from_db(db_connection.alias, [field.attname for field in self.fields], values)


def joined_fetch(sql: str, params: Sequence[Any] | Mapping[str, Any], parts: Sequence[JoinedModel]) -> list[Model | None] | None:
    """Run `sql` (its SELECT list is each part's `columns`, in order) as a prepared statement on
    this thread's Django connection and build the first row's instances; None when no row.
    A caller that reads other statements in the same round trip runs them with
    `pipelined_rows` and builds the row with `joined_build`.
    Errors come up as Django's database errors, as from the ORM (project.outages retries them)."""
    row = pipelined([(sql, params)])[0]
    return None if row is None else joined_build(row, parts)


def joined_build(row: Sequence[Any], parts: Sequence[JoinedModel]) -> list[Model | None]:
    """The instances of a row whose SELECT list is each part's `columns`, in order."""
    built: list[Model | None] = []
    start = 0
    for part in parts:
        built.append(part.build(row[start:start + len(part.fields)]))
        start += len(part.fields)
    return built


def insert_columns(instance: Model, *, leave_out: Sequence[str] = ()) -> tuple[list[str], list[Any]]:
    """The columns and values the ORM's own INSERT of the unsaved `instance` would write: each
    field's default and pre-save value (auto_now_add stamps it, on the instance too) prepared
    as the ORM prepares them (JSON adapted, foreign keys as ids). The primary key and generated
    columns are the database's; `leave_out` names columns the caller writes itself."""
    fields = [field for field in instance._meta.concrete_fields
              if not field.primary_key and not field.generated and field.column not in leave_out]
    values = [field.get_db_prep_save(field.pre_save(instance, True), connection=db_connection) for field in fields]
    return [str(field.column) for field in fields], values


def insert_statement(instance: Model, *, on_conflict: str = "") -> tuple[str, list[Any]]:
    """The ORM's INSERT of the unsaved `instance` (insert_columns) as one statement returning
    its id, for a caller that runs it with others in one round trip (`pipelined`); `inserted`
    then marks the instance saved. `on_conflict`: an ON CONFLICT clause (the row may come back
    empty, as DO NOTHING returns none)."""
    columns, values = insert_columns(instance)
    return _insert_sql(instance._meta.db_table, tuple(columns), on_conflict), values


@cache
def _insert_sql(table: str, columns: tuple[str, ...], on_conflict: str) -> str:
    # Only the model's own table and column names are formatted in; every value is a parameter.
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "  # noqa: S608
            f"{on_conflict} RETURNING id")


def inserted(instance: Model, pk: Any) -> None:
    """The unsaved `instance` written by a statement of the caller's (insert_statement's, or one
    of its own): its id, its saved state, and the post_save the ORM's save would have sent
    (search's receiver queues a message for embedding). No pre_save: nothing listens to it."""
    instance.pk = pk
    instance._state.adding, instance._state.db = False, db_connection.alias
    post_save.send(sender=type(instance), instance=instance, created=True, update_fields=None, raw=False,
                   using=db_connection.alias)


def pipelined(statements: Sequence[tuple[str, Sequence[Any] | Mapping[str, Any]]]) -> list[tuple[Any, ...] | None]:
    """Run the statements on this thread's Django connection in one round trip (psycopg's
    pipeline mode when there are several), in order, each prepared: each one's first row
    (None when it has none). In the caller's transaction when there is one; each statement
    sees what the ones before it did, and one that waits on a lock holds back the ones after
    it. Server-side-binding cursors of their own: Django's client-side cursors cannot be
    prepared. Errors come up as Django's database errors, as from the ORM."""
    return [rows[0] if rows else None for rows in pipelined_rows(statements)]


def pipelined_rows(statements: Sequence[tuple[str, Sequence[Any] | Mapping[str, Any]]]) -> list[list[tuple[Any, ...]]]:
    """pipelined(), with every row of each statement (none for one that returns no rows)."""
    db_connection.ensure_connection()
    with db_connection.wrap_database_errors:
        raw = db_connection.connection
        assert raw is not None
        cursors = [psycopg.Cursor(raw) for _ in statements]
        try:
            with raw.pipeline() if len(statements) > 1 else nullcontext():
                for cursor, (sql, params) in zip(cursors, statements, strict=True):
                    cursor.execute(sql, params, prepare=True)
            # The result's status, not `description`: that builds a Column for every column of
            # the row, a fifth of a wide read's client-side time.
            return [cursor.fetchall() if _has_rows(cursor) else [] for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()


def _has_rows(cursor: psycopg.Cursor[Any]) -> bool:
    result = cursor.pgresult
    return result is not None and result.status == pq.ExecStatus.TUPLES_OK

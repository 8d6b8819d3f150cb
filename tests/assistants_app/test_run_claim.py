"""A worker takes a queued run in one statement (run_loop.run_claim): what it loads must be
what the ORM would load, the engine it records must be the connection's, and a run can be
taken once."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection as db_connection

from assistants_app.models import Run, RunStatus
from assistants_app.run_engines import _engine_loop
from assistants_app.run_loop import run_claim
from project.providers.connection_facts import connection_model_facts_save
from project.providers.models import Engine, ProviderConnection, ProviderKind
from tests.factories import make_assistant, make_connection, make_message, make_thread

pytestmark = pytest.mark.django_db


def _queued_run(team, connection: ProviderConnection, **config: Any) -> Run:
    """A queued run no worker was told of: the test claims it itself."""
    assistant = make_assistant(team, connection, **config)
    thread = make_thread(team, assistant)
    message = make_message(thread, "hello")
    assert assistant.current_version is not None
    return Run.objects.create(thread=thread, team=team, assistant=assistant, version=assistant.current_version,
                              user_message=message, model=assistant.current_version.model)


def test_the_claim_loads_what_the_orm_loads_and_takes_the_run_once(team, owner) -> None:
    connection = make_connection(team, kind=ProviderKind.COMPATIBLE, api_key="sk-secret-9876")
    connection_model_facts_save(connection=connection, actor=owner, model_id="local-model", context_window=4096,
                                max_output_tokens=512, input_price=Decimal("0.10"), cached_input_price=None,
                                output_price=Decimal("0.30"), free=False, encoding="cl100k_base")
    run = _queued_run(team, connection, model="local-model", tools=[{"type": "function", "name": "lookup"}],
                      response_schema={"type": "object", "properties": {"a": {"type": "string"}}})
    # What the worker would find is the same whichever way it is read.
    orm = Run.objects.select_related("thread", "assistant__connection", "version").get(pk=run.pk)

    claimed = run_claim(run.pk)

    assert claimed is not None
    taken = claimed.run
    assert (taken.status, taken.attempts, taken.engine) == (RunStatus.RUNNING, orm.attempts + 1, Engine.CHAT_COMPLETIONS)
    assert taken.started_at is not None and taken.heartbeat_at == taken.started_at
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.attempts, stored.engine, stored.started_at) == (
        taken.status, taken.attempts, taken.engine, taken.started_at)
    assert taken.thread == orm.thread and taken.thread.title == orm.thread.title
    assert taken.version.tools == orm.version.tools and taken.version.response_schema == orm.version.response_schema
    assert taken.assistant.connection is not None
    assert orm.assistant.connection is not None
    assert taken.assistant.connection.get_api_key() == "sk-secret-9876" == orm.assistant.connection.get_api_key()
    # JSON columns come through the ORM's converters: dicts and lists, not their text.
    assert isinstance(taken.version.tools, list) and isinstance(taken.version.response_schema, dict)
    assert claimed.saved_facts is not None
    assert (claimed.saved_facts.context_window, claimed.saved_facts.output_price) == (4096, Decimal("0.300000"))
    # Taken once: a duplicated task, or a second worker, finds nothing to claim.
    assert run_claim(run.pk) is None
    assert Run.objects.get(pk=run.pk).attempts == taken.attempts


def test_a_run_without_saved_facts_is_claimed(team) -> None:
    run = _queued_run(team, make_connection(team))
    claimed = run_claim(run.pk)
    assert claimed is not None and claimed.saved_facts is None


@pytest.mark.parametrize(("kind", "chosen", "detected"), list(itertools.product(
    [ProviderKind.OPENAI, ProviderKind.AZURE, ProviderKind.COMPATIBLE, ProviderKind.SANDBOX],
    ["", Engine.CHAT_COMPLETIONS, Engine.RESPONSES], ["", Engine.CHAT_COMPLETIONS, Engine.RESPONSES])))
def test_the_claim_records_the_engine_the_connection_runs_on(team, kind, chosen, detected) -> None:
    connection = make_connection(team)
    run = _queued_run(team, connection)
    ProviderConnection.objects.filter(pk=connection.pk).update(kind=kind, engine=chosen, engine_detected=detected)
    connection.refresh_from_db()

    claimed = run_claim(run.pk, choose_loop=_engine_loop)

    assert claimed is not None
    assert claimed.run.engine == connection.run_engine == Run.objects.get(pk=run.pk).engine
    assert (claimed.execute.__module__ == "assistants_app.responses_loop") == (connection.run_engine == Engine.RESPONSES)


@pytest.mark.django_db(transaction=True)
def test_a_column_added_while_workers_run_does_not_break_their_claim(team) -> None:
    # Workers keep the claim prepared on their connections; a migration that adds a column
    # to a joined table while they run must not shift the columns the rows are cut by (a `*`
    # in the statement's SELECT makes this test fail), so the statement names its columns.
    connection = make_connection(team)
    assert run_claim(_queued_run(team, connection).pk) is not None  # prepared on this connection
    tables = ("assistants_app_run", "assistants_app_thread")
    with db_connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN added_by_a_later_release integer")
    try:
        claimed = run_claim(_queued_run(team, connection).pk)
        assert claimed is not None and claimed.run.status == RunStatus.RUNNING
    finally:
        with db_connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ALTER TABLE {table} DROP COLUMN added_by_a_later_release")

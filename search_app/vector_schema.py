"""The pgvector part of the schema: the extension, the embeddings table and its HNSW indexes.

They are made apart from the rest of the migration because a production PostgreSQL may
not have pgvector installed. Failing the migration there would stop `migrate`, and so
every other feature's migrations and `make run`, for one search mode; instead the
migration makes what it can, says what is missing, and the site searches by keyword
until an operator installs pgvector and runs `manage.py search_install_vectors`, which
runs the same code again (every statement is idempotent).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

log = logging.getLogger(__name__)

TABLE = "search_app_messageembedding"
# pgvector 0.6 indexes vectors of at most 2,000 dimensions with HNSW. A partial index per
# common size (a query names the size in the same expression, so the planner can use it);
# other sizes, and the 3,072 of text-embedding-3-large, are searched exactly.
INDEXED_DIMENSIONS = (256, 512, 768, 1024, 1536)
MISSING_MESSAGE = ("This PostgreSQL has no pgvector extension, so search is by keyword only. Install pgvector "
                   "on the database server (for PostgreSQL 15 on Debian: apt-get install postgresql-15-pgvector), "
                   "then run `python manage.py search_install_vectors`.")


def extension_installable(db: BaseDatabaseWrapper) -> bool:
    with db.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return cursor.fetchone() is not None


# A wider candidate list while building (pgvector's default is 64) links the graph better:
# recall holds up on a history of many distinct topics, for a build about twice as long.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128


def index_statements() -> list[str]:
    # HNSW on cosine distance, one partial expression index per size; constants of ours, not input.
    return [
        f"CREATE INDEX IF NOT EXISTS search_embedding_hnsw_{dims} ON {TABLE} "
        f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) WHERE dimensions = {dims}"
        for dims in INDEXED_DIMENSIONS
    ]


def install(db: BaseDatabaseWrapper, model: Any, editor: Any) -> bool:
    """Make the extension, the table (from `model`) and its indexes; False, with a warning,
    when this server cannot. `model` is the historical model in a migration, the current
    one from the management command."""
    if not extension_installable(db):
        log.warning(MISSING_MESSAGE)
        print(f"\n  search_app: {MISSING_MESSAGE}")
        return False
    try:
        with transaction.atomic(using=db.alias):
            editor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except DatabaseError as error:  # available, but this role may not create it
        log.warning("pgvector is available but could not be created (%s). %s", error, MISSING_MESSAGE)
        print(f"\n  search_app: pgvector could not be created ({error}). {MISSING_MESSAGE}")
        return False
    if TABLE not in db.introspection.table_names():
        editor.create_model(model)
        for column, target in (("team_id", "teams_team"), ("message_id", "assistants_app_message"),
                               ("thread_id", "assistants_app_thread")):
            editor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT search_embedding_{column}_fk FOREIGN KEY ({column}) "
                           f"REFERENCES {target} (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED")
    for statement in index_statements():
        editor.execute(statement)
    _ready_cache.clear()
    return True


def uninstall(editor: Any) -> None:
    editor.execute(f"DROP TABLE IF EXISTS {TABLE}")


_ready_cache: dict[str, tuple[bool, float]] = {}
RECHECK_SECONDS = 30.0


def vectors_ready() -> bool:
    """Whether the embeddings table exists on this database: known once true; a false
    answer is asked again after a while, so installing pgvector needs no restart."""
    known = _ready_cache.get(connection.alias)
    if known is not None and (known[0] or time.monotonic() - known[1] < RECHECK_SECONDS):
        return known[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE])
        row = cursor.fetchone()
    ready = bool(row and row[0])
    _ready_cache[connection.alias] = (ready, time.monotonic())
    return ready

"""The check a pooled PostgreSQL connection passes before Django is handed it.

psycopg_pool's own check (`ConnectionPool.check_connection`) finds one dead connection
at a time, and between two it sleeps 1 s, then 2, 4, 8: after a PostgreSQL restart a
pool of a dozen idle connections, all dead, made the next request wait through several
of them and fail with PoolTimeout after 10 s, and the one after it too (4 of 20 thread
list pages right after a restart in `bench fault_drill`). One dead connection says the
others of its age are likely dead too, so they are all tested at once (a round trip
each, none for a closed socket) and the dead ones replaced; the request's next try,
after psycopg_pool's single pause, gets a live connection.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)


def check_pooled_connection(conn: Any) -> None:
    """`ConnectionPool.check_connection`, and when it fails, every idle connection of the
    same pool checked and the dead ones replaced, before the failure goes up to the pool
    (which discards this one and tries again)."""
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        # getconn() marks the connection with its pool while it is out of it.
        pool: ConnectionPool[Any] | None = getattr(conn, "_pool", None)
        if pool is not None:
            log.warning("a pooled database connection was dead; checking the pool's other idle connections")
            pool.check()
        raise

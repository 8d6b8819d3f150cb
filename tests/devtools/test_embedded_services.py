"""The embedded PostgreSQL and Redis of `make run` never outlive it, nor leave folders behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.services import embedded_services


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_embedded_redis_is_stopped_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    import redis

    with embedded_services(tmp_path, {"DATABASE_URL": "postgres://elsewhere/db"}) as urls:
        socket_path = urls.redis_url.removeprefix("unix://").split("?")[0]
        pid = int(redis.Redis(unix_socket_path=socket_path).info("server")["process_id"])
        scratch = Path(socket_path).parent
        assert scratch.is_dir()
    assert not scratch.exists(), f"{scratch} was left behind"
    assert not _alive(pid)
    assert (tmp_path / "redis" / "redis.rdb").exists(), "the data itself is kept for the next start"


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """Run as root, pgserver runs PostgreSQL as its own user, who must reach the data folder
    (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="embedded-pg-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_postgres_restarted_by_hand_or_left_by_a_killed_run_is_stopped(world_readable_dir: Path) -> None:
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import DiskList, PostmasterInfo

    tmp_path = world_readable_dir
    pgdata = tmp_path / "postgres"
    with embedded_services(tmp_path, {"REDIS_URL": "redis://elsewhere/0"}) as urls:
        assert urls.started == ["PostgreSQL"]
        # Someone restarts it by hand while the stack runs...
        user = "pgserver" if os.geteuid() == 0 else None
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "-l",
                        str(pgdata / "log"), "restart"], user=user, check=True, capture_output=True)
        # ...and a run that was killed earlier is still listed as using it.
        killed_run = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                    capture_output=True, text=True, check=True)
        DiskList(pgdata / ".handle_pids.json").get_and_add(int(killed_run.stdout))
        postmaster = PostmasterInfo.read_from_pgdata(pgdata)
        assert postmaster is not None and postmaster.is_running()
    after = PostmasterInfo.read_from_pgdata(pgdata)
    assert after is None or not after.is_running(), "PostgreSQL outlived the stack"
    assert not _alive(postmaster.pid)

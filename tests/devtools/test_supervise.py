"""`make run` keeps its processes alive: a dead child is started again, within a limit."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from devtools.supervise import GaveUp, Supervisor


def _wait_until_exited(supervisor: Supervisor) -> None:
    deadline = time.monotonic() + 10
    while all(child.process.poll() is None for child in supervisor.children):
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.05)


def test_a_child_that_dies_is_started_again_with_a_line_saying_so(tmp_path: Path) -> None:
    marker = tmp_path / "died-once"
    # Dies the first time (as a worker killed by the kernel would), then keeps running.
    script = (f"import pathlib, sys, time; m = pathlib.Path({str(marker)!r})\n"
              "if not m.exists(): m.touch(); sys.exit(3)\n"
              "time.sleep(60)")
    lines: list[str] = []
    supervisor = Supervisor(env={}, cwd=tmp_path, say=lines.append)
    try:
        first = supervisor.start("worker (io)", [sys.executable, "-c", script]).process
        _wait_until_exited(supervisor)
        supervisor.check()
        child = supervisor.children[0]
        assert child.process.pid != first.pid
        time.sleep(0.5)
        assert child.process.poll() is None, "the restarted child should be running"
        assert any("worker (io) exited with code 3; restarted it" in line for line in lines), lines
    finally:
        supervisor.stop(timeout=2)
    assert supervisor.children[0].process.poll() is not None


def test_a_child_that_keeps_dying_stops_the_stack_after_the_restart_limit(tmp_path: Path) -> None:
    lines: list[str] = []
    supervisor = Supervisor(env={}, cwd=tmp_path, max_restarts=2, say=lines.append)
    supervisor.start("web", [sys.executable, "-c", "raise SystemExit(1)"])
    try:
        with pytest.raises(GaveUp, match="web exited with code 1 and was restarted 2 times"):
            for _ in range(3):
                _wait_until_exited(supervisor)
                supervisor.check()
        assert sum("restarted it" in line for line in lines) == 2
    finally:
        supervisor.stop(timeout=2)


def test_stopping_leaves_no_process_of_a_child_behind(tmp_path: Path) -> None:
    # A child whose own worker ignores SIGTERM (as a stuck Celery pool process might).
    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time, pathlib\n"
              "g = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
              f"pathlib.Path({str(pid_file)!r}).write_text(str(g.pid))\n"
              "time.sleep(60)")
    supervisor = Supervisor(env={}, cwd=tmp_path, say=lambda line: None)
    supervisor.start("worker (cpu)", [sys.executable, "-c", script])
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    supervisor.stop(timeout=1)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{grandchild}").exists() and "zombie" not in _state(grandchild):
        assert time.monotonic() < deadline, "the child's own process outlived the stack"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (FileNotFoundError, IndexError):
        return "zombie"


def test_a_childs_own_variables_are_given_to_it_on_top_of_the_stacks_and_again_on_restart(tmp_path: Path) -> None:
    # make run gives the cpu worker and beat a small DATABASE_POOL_SIZE of their own.
    seen = tmp_path / "seen"
    script = ("import os, pathlib, sys, time; p = pathlib.Path(sys.argv[1])\n"
              "first = not p.exists()\n"
              "with p.open('a') as f: f.write(os.environ['SHARED'] + ':' + os.environ['DATABASE_POOL_SIZE'] + '\\n')\n"
              "if first: sys.exit(3)\n"
              "time.sleep(60)")
    supervisor = Supervisor(env={"SHARED": "stack", "DATABASE_POOL_SIZE": "20"}, cwd=tmp_path, say=lambda line: None)
    try:
        supervisor.start("beat", [sys.executable, "-c", script, str(seen)], env={"DATABASE_POOL_SIZE": "2"})
        _wait_until_exited(supervisor)
        supervisor.check()
        deadline = time.monotonic() + 10
        while len(seen.read_text().splitlines()) < 2:
            assert time.monotonic() < deadline, "the restarted child never ran"
            time.sleep(0.05)
        assert seen.read_text().splitlines() == ["stack:2", "stack:2"]
        assert supervisor.env["DATABASE_POOL_SIZE"] == "20"  # the others keep the stack's
    finally:
        supervisor.stop(timeout=2)

"""Keeping `make run`'s processes alive: a child that dies is started again.

A worker killed by the kernel or a crash must not take the whole stack down, nor
leave runs "writing…" with nobody to recover them. Each child is restarted, with a
log line saying so, up to `max_restarts` times within `window` seconds; a child that
keeps dying faster than that is broken, not unlucky, and the stack stops saying why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 300.0


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen[bytes]
    restarted_at: list[float] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's


class GaveUp(Exception):
    """A child died more often than the restart limit allows."""


class Supervisor:
    def __init__(self, *, env: dict[str, str], cwd: Path, max_restarts: int = MAX_RESTARTS,
                 window: float = RESTART_WINDOW_SECONDS, say: Callable[[str], None] | None = None) -> None:
        self.env = env
        self.cwd = cwd
        self.max_restarts = max_restarts
        self.window = window
        self.say = say or (lambda line: print(f"[run] {line}", flush=True))
        self.children: list[Child] = []

    def _popen(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        # Own process group, so Ctrl-C reaches us first and we stop children in order.
        return subprocess.Popen(args, env={**self.env, **(env or {})}, cwd=self.cwd, start_new_session=True)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        """Start a child (`env`: variables of its own, over the supervisor's)."""
        child = Child(name=name, args=args, process=self._popen(args, env), env=env or {})
        self.say(f"started {name} (pid {child.process.pid}): {' '.join(args)}")
        self.children.append(child)
        return child

    def check(self) -> None:
        """Start again every child that has exited; GaveUp past the limit."""
        now = time.monotonic()
        for child in self.children:
            code = child.process.poll()
            if code is None:
                continue
            child.restarted_at = [at for at in child.restarted_at if now - at < self.window]
            if len(child.restarted_at) >= self.max_restarts:
                raise GaveUp(f"{child.name} exited with code {code} and was restarted {self.max_restarts} times "
                             f"within {self.window:.0f} s; stopping everything. Its output above says why.")
            # What the dead child left behind (uvicorn's or Celery's own workers) would hold its port or queue.
            _signal_group(child.process, signal.SIGKILL)
            child.restarted_at.append(now)
            child.process = self._popen(child.args, child.env)
            self.say(f"{child.name} exited with code {code}; restarted it (pid {child.process.pid}, "
                     f"restart {len(child.restarted_at)} of {self.max_restarts} allowed within {self.window:.0f} s)")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to every child, newest first (each stops its own workers); after `timeout`,
        SIGKILL to what is left of each child's process group, so nothing outlives the stack."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)

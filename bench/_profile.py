"""Where the CPU of a benchmark's processes goes, sampled from outside with py-spy.

An in-process profiler slowed uvicorn enough under a burst that its supervisor killed the
workers; py-spy reads the processes' stacks from outside (ptrace) at a fixed rate and
they run as they would. Only samples of threads that were running are kept (py-spy's
default), and frames that wait (a lock, a socket, the event loop's poll) are dropped, so
the shares are of the CPU the process used, roughly.

    with Sampler({"web": [pid], "worker io": [pid]}, seconds=20) as sampler:
        ... the work ...
    sampler.report(frames=25)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import TracebackType

# Leaf frames that are a wait, not work.
_WAITS = ("Condition.wait", "Event.wait", "Connection._recv ", "Runner.run ", "_worker (concurrent", "select (",
          "Connection.wait (psycopg", "_epoll.poll", "BaseSelectorEventLoop.select", "Scheduler.run", "sleep (",
          "_RunWatch._watch", "main (multiprocessing/resource_tracker")
# Our code, whose frames the report lists.
_OURS = re.compile(r"\((?:project|assistants_app|jobs_app|evals_app|search_app|sandbox)/")
_ROOT = str(Path(__file__).resolve().parent.parent)
_SITE = re.compile(r"\(/[^()]*?/(?:site-packages|python3\.\d+)/|\(" + re.escape(_ROOT) + "/")


def _py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


class Sampler:
    def __init__(self, processes: dict[str, list[int]], seconds: float, rate: int = 100) -> None:
        self.processes, self.seconds, self.rate = processes, seconds, rate
        self.folder = Path(tempfile.mkdtemp(prefix="bench-profile-"))
        # (name, pid) -> py-spy recording it, and the file it writes
        self.running: dict[tuple[str, int], tuple[subprocess.Popen[bytes], Path]] = {}
        self.tool = _py_spy()

    def __enter__(self) -> Sampler:
        if self.tool is None:
            print("  (no profile: py-spy is not installed; `make install` installs it)")
            return self
        for name, pids in self.processes.items():
            for pid in pids:
                out = self.folder / f"{re.sub(r'\W+', '_', name)}-{pid}.txt"
                self.running[(name, pid)] = subprocess.Popen(
                    [self.tool, "record", "--format", "raw", "--rate", str(self.rate), "--duration",
                     str(int(self.seconds)), "--subprocesses", "--output", str(out), "--pid", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for process, _ in self.running.values():
            try:
                process.wait(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                process.kill()

    def report(self, frames: int = 20) -> None:
        for (name, _), (_, stacks) in self.running.items():
            if not stacks.exists():
                print(f"  profile of {name}: py-spy wrote nothing (it needs ptrace: run as root or with CAP_SYS_PTRACE)")
                continue
            busy, ours = _shares(stacks.read_text())
            print(f"  where {name}'s CPU went ({busy} busy samples at {self.rate}/s; a frame's share of them, "
                  f"with what it calls):")
            for frame, count in ours.most_common(frames):
                print(f"    {100 * count / max(busy, 1):5.1f}%  {frame}")


def _shares(raw: str) -> tuple[int, Counter[str]]:
    """(busy samples, samples under each of our frames) from py-spy's raw (folded) output."""
    busy = 0
    ours: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", _SITE.sub("(", frame)) for frame in stack.split(";")]
        if any(wait in frames[-1] for wait in _WAITS):
            continue
        busy += int(count)
        for frame in {frame for frame in frames if _OURS.search(frame)}:
            ours[frame] += int(count)
    return busy, ours

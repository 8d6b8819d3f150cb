"""The dashboard's ASGI application with every thread of the process profiled by CPU time,
for `bench/chat_streaming --profile-web DIR`: uvicorn serves `bench._profiled_asgi:application`
instead of `project.asgi:application`, and each web process writes DIR/web-<pid>.prof (pstats)
when it stops. cProfile with time.thread_time counts CPU, not waiting, in the event loop's
thread and in every thread a request's synchronous part runs in; it slows the process several
times over, so a profiled run's timings mean nothing, only its split of the CPU."""

from __future__ import annotations

import atexit
import cProfile
import os
import pstats
import threading
import time
from collections.abc import Callable
from pathlib import Path

_DIRECTORY = Path(os.environ["BENCH_PROFILE_DIR"])
_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _profiled(run: Callable[[threading.Thread], None]) -> Callable[[threading.Thread], None]:
    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        with _lock:
            _profiles.append(profile)
        profile.enable()
        try:
            run(self)
        finally:
            profile.disable()

    return profiled_run


def _write() -> None:
    _main.disable()
    with _lock:
        profiles = list(_profiles)
    stats: pstats.Stats | None = None
    for profile in profiles:
        try:
            stats = pstats.Stats(profile) if stats is None else stats.add(profile)  # type: ignore[arg-type]
        except TypeError:  # a thread that never ran anything
            continue
    if stats is not None:
        stats.dump_stats(_DIRECTORY / f"web-{os.getpid()}.prof")


setattr(threading.Thread, "run", _profiled(threading.Thread.run))  # noqa: B010 - every thread started from now on
_main = cProfile.Profile(time.thread_time)
_profiles.append(_main)
atexit.register(_write)
_main.enable()

from project.asgi import application  # noqa: E402 - imported (and Django set up) under the profiler

__all__ = ["application"]

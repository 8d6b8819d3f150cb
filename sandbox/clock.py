"""Simulated time: every job and batch progresses by scaled wall-clock time.

State is never advanced by a loop; it is computed from stored real timestamps on
each read, so a restart (or a slow reader) sees exactly the same history.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self, time_scale: float) -> None:
        self.scale = time_scale if time_scale > 0 else 1.0

    def now(self) -> float:
        return time.time()

    def sim_elapsed(self, since: float, until: float | None = None, paused: float = 0.0) -> float:
        """Simulated seconds between two real timestamps, minus real seconds spent paused."""
        end = self.now() if until is None else until
        return max(0.0, (end - since - paused) * self.scale)

    def real_at(self, start: float, sim_offset: float, paused: float = 0.0) -> float:
        """The real timestamp at which sim_offset simulated seconds have passed since start."""
        return start + paused + sim_offset / self.scale

"""A reply's display takes text every FLUSH_SECONDS, and less often while the worker
process streams many replies at once (a burst's CPU goes on the flushes, not the text):
its first words still go at once, and the provider's reads keep the same pace."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from assistants_app.run_attempt import (
    BUSY_FLUSH_SECONDS,
    BUSY_RUNS,
    FLUSH_SECONDS,
    _Watched,
    flush_seconds,
    run_watch,
)
from assistants_app.run_loop import _Outbox


@pytest.fixture
def busy() -> Iterator[Callable[[int], None]]:
    """Makes the process's run watch hold `count` more runs (ids no real run has)."""
    added: list[tuple[int, int]] = []

    def runs(count: int) -> None:
        for _ in range(count):
            key = (-1_000_000 - len(added), 1)
            run_watch.runs[key] = _Watched(key[0], 1, threading.Event(), threading.Event())
            added.append(key)

    yield runs
    for key in added:
        run_watch.runs.pop(key, None)


@dataclass
class _Display:
    written: list[str] = field(default_factory=list)

    def publish(self, kind: str, data: str = "") -> None:
        self.written.append(data)


@dataclass
class _Pacer:
    holds: list[float] = field(default_factory=list)

    def hold_until(self, at: float) -> None:
        self.holds.append(at)


def test_the_flush_interval_grows_with_the_replies_the_process_streams_past_its_threshold(busy) -> None:
    before = len(run_watch.runs)
    assert flush_seconds() == FLUSH_SECONDS
    busy(BUSY_RUNS - before)
    assert flush_seconds() == FLUSH_SECONDS
    busy(BUSY_RUNS)
    assert flush_seconds() == pytest.approx(2 * FLUSH_SECONDS)
    busy(10 * BUSY_RUNS)
    assert flush_seconds() == BUSY_FLUSH_SECONDS


def test_a_busy_process_still_shows_the_first_words_at_once_then_gathers_longer(busy) -> None:
    busy(2 * BUSY_RUNS)
    display, pacer = _Display(), _Pacer()
    outbox = _Outbox(display, pacer)  # type: ignore[arg-type]
    outbox.add("Hello")
    outbox.add(" there")
    assert display.written == ["Hello"]  # the first words, not held back
    assert outbox.interval >= 2 * FLUSH_SECONDS - 1e-9
    assert pacer.holds == [pytest.approx(outbox.last + outbox.interval)]  # the reads wait as long
    outbox.flush()
    assert display.written == ["Hello", " there"]

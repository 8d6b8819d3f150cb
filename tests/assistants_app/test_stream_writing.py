"""How a worker reads a provider's stream and writes the run's display, without a worker:
the server-sent events read off raw bytes (however the reads split them), and the first
delta of a reply published at once, later ones gathered per flush, nothing lost or
reordered. Time is held still, so what is asserted is order and grouping, not speed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from assistants_app import responses_stream, run_attempt, run_loop


class _Bytes:
    http_request = None

    def __init__(self, *blocks: bytes) -> None:
        self.blocks = blocks

    def iter_bytes(self) -> Iterator[bytes]:
        return iter(self.blocks)


class _Live:
    down = False  # Redis answers

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def publish(self, kind: str, data: str = "") -> None:
        self.published.append((kind, data))


@pytest.fixture
def still_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """time.monotonic() never moves: only the first delta can go out before a flush."""
    monkeypatch.setattr(run_loop.time, "monotonic", lambda: 1000.0)


def test_events_are_read_whatever_the_reads_split_and_every_line_ending() -> None:
    body = (b': ping\r\n\r\ndata: {"a": 1}\r\n\r\nevent: x\ndata: {"b":\ndata: 2}\n\n'
            b'data: {"c": 3}\r\rdata: [DONE]\n\n')
    idle: list[int] = []
    whole = list(run_loop.sse_data(_Bytes(body), on_idle=lambda: idle.append(1)))  # type: ignore[arg-type]
    assert whole == [b'{"a": 1}', b'{"b":\n2}', b'{"c": 3}', b"[DONE]"] and idle == [1]
    # Split at every byte: a CRLF torn in two is still one line ending.
    bytewise = list(run_loop.sse_data(_Bytes(*(body[i:i + 1] for i in range(len(body))))))  # type: ignore[arg-type]
    assert bytewise == whole


def test_an_event_cut_off_before_its_blank_line_is_not_read() -> None:
    assert list(run_loop.sse_data(_Bytes(b'data: {"a": 1}\n\ndata: {"b": 2}'))) == [b'{"a": 1}']  # type: ignore[arg-type]


def test_a_replys_first_delta_is_published_at_once_and_later_ones_per_flush(still_clock: Any) -> None:
    live = _Live()
    outbox = run_loop._Outbox(live)  # type: ignore[arg-type]
    outbox.add("Hel")
    assert live.published == [("delta", "Hel")]  # before any flush: the time to first token
    outbox.add("lo")
    outbox.add(" world")
    assert live.published == [("delta", "Hel")]  # gathered, not one write per token
    outbox.flush()
    assert live.published == [("delta", "Hel"), ("delta", "lo world")]


def test_the_responses_engine_publishes_the_first_thinking_and_the_first_text_at_once_with_a_cursor(
        still_clock: Any) -> None:
    live = _Live()
    publisher = responses_stream._Publisher(live, background=True)  # type: ignore[arg-type]
    publisher.add("thinking", "Hm", 1)
    assert live.published == [("thinking", "Hm"), ("cursor", "1:0:2")]
    publisher.add("thinking", " ok", 2)
    publisher.add("delta", "Hel", 3)  # the reply's first words do not wait behind the thinking's flush
    assert live.published[2:] == [("thinking", " ok"), ("delta", "Hel"), ("cursor", "3:3:5")]
    publisher.add("delta", "lo", 4)
    publisher.add("delta", " you", 5)
    assert len(live.published) == 5
    publisher.flush()
    assert live.published[5:] == [("delta", "lo you"), ("cursor", "5:9:5")]


@pytest.mark.django_db
def test_one_update_writes_the_heartbeats_of_the_attempts_that_still_own_their_runs(team: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from assistants_app.models import Run, RunStatus
    from tests.factories import make_assistant, make_run, make_thread

    thread = make_thread(team, make_assistant(team))
    old = timezone.now() - timedelta(minutes=1)
    mine = make_run(thread, status=RunStatus.RUNNING, attempts=1, heartbeat_at=old)
    taken_over = make_run(thread, status=RunStatus.RUNNING, attempts=2, heartbeat_at=old)  # sent again by the sweep
    ended = make_run(thread, status=RunStatus.SUCCEEDED, attempts=1, heartbeat_at=old)
    owned = run_attempt.heartbeats_write([(mine.pk, 1), (taken_over.pk, 1), (ended.pk, 1)])
    assert owned == {(mine.pk, 1)}
    beats = dict(Run.objects.values_list("pk", "heartbeat_at"))
    assert beats[mine.pk] != old and beats[taken_over.pk] == old and beats[ended.pk] == old


class _Redis:
    def __init__(self, stopped: set[int]) -> None:
        self.stopped = stopped

    def mget(self, keys: list[str]) -> list[bytes | None]:
        from assistants_app.models import cancel_key

        return [b"1" if any(key == cancel_key(run_id) for run_id in self.stopped) else None for key in keys]


def test_the_run_watch_reads_every_runs_stop_in_one_request_and_tells_only_those_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from assistants_app import streams

    monkeypatch.setattr(streams, "redis_client", lambda: _Redis({2}))
    watched = [run_attempt._Watched(run_id, 1, threading.Event(), threading.Event()) for run_id in (1, 2, 3)]
    run_attempt._RunWatch._stops(watched)
    assert [w.cancelled.is_set() for w in watched] == [False, True, False]
    assert not any(w.superseded.is_set() for w in watched)


def test_a_run_stops_at_its_check_in_once_the_watch_saw_a_stop_or_a_takeover() -> None:
    clock = run_attempt.Clock(_Live())  # type: ignore[arg-type]
    run_attempt.check_in(None, clock)  # type: ignore[arg-type]  # nothing seen: goes on
    clock.cancelled.set()
    with pytest.raises(run_attempt.RunCancelled):
        run_attempt.check_in(None, clock)  # type: ignore[arg-type]
    clock.superseded.set()
    with pytest.raises(run_attempt.RunSuperseded):
        run_attempt.check_in(None, clock)  # type: ignore[arg-type]

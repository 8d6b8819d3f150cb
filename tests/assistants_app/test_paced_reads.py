"""A streamed reply's reads held to the display's pace (project.providers.paced_reads): a
provider that sends one token per event is read a flush's worth at a time, the reply's
first words are not held, nothing is lost, and the connection goes back to the pool
reading at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from assistants_app import run_attempt, run_loop
from project.providers import paced_reads
from project.providers.models import ProviderKind
from project.providers.paced_reads import PacedStream, read_pacer
from tests.factories import make_connection


class _Stream:
    """A network stream that records when each read began."""

    def __init__(self) -> None:
        self.reads: list[float] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.reads.append(time.monotonic())
        return b"x"


class _Live:
    down = False

    def __init__(self) -> None:
        self.published: list[tuple[float, str, str]] = []

    def publish(self, kind: str, data: str = "") -> None:
        self.published.append((time.monotonic(), kind, data))


def test_a_held_read_waits_once_and_the_reads_after_it_do_not() -> None:
    inner = _Stream()
    stream = PacedStream(inner)  # type: ignore[arg-type]
    held = time.monotonic() + 0.05
    stream.not_before = held
    stream.read(10)
    stream.read(10)
    assert inner.reads[0] >= held
    assert inner.reads[1] - inner.reads[0] < 0.04  # only the next read is held


@pytest.mark.django_db
def test_a_paced_reply_is_read_a_flush_at_a_time_whole_and_its_first_words_at_once(
        team: Any, paced_sandbox: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[float] = []
    real_read = PacedStream.read

    def counted(self: PacedStream, max_bytes: int, timeout: float | None = None) -> bytes:
        data = real_read(self, max_bytes, timeout)
        reads.append(time.monotonic())
        return data

    monkeypatch.setattr(paced_reads.PacedStream, "read", counted)
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    body = {"model": "gpt-4.1-mini", "stream": True, "messages": [{"role": "user", "content": "write 150 words"}]}
    live, text, chunks = _Live(), "", 0
    with run_attempt.provider_stream(connection, "/chat/completions", body) as response, \
            read_pacer(response) as pacer:
        assert pacer.stream is not None  # the provider's client reads through a PacedStream
        outbox = run_loop._Outbox(live, pacer)  # type: ignore[arg-type]
        for chunk in run_loop._chunks(response):
            chunks += 1
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    text += choice["delta"]["content"]
                    outbox.add(choice["delta"]["content"])
        outbox.flush()
    assert pacer.stream.not_before == 0.0  # released: the pooled connection's next request is not held
    shown = "".join(data for _, kind, data in live.published if kind == "delta")
    assert shown == text and len(text.split()) == 150
    # 400 tokens a second for ~0.4 s: one read per token unpaced, about one per flush paced.
    assert chunks > 150 and len(reads) < chunks / 4
    # The first words went out as they came: only the reads of the head and the first
    # events came before them, none held.
    first_at = live.published[0][0]
    assert sum(1 for at in reads if at <= first_at) <= 5

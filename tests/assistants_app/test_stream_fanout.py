"""The web process's stream hub: one XREAD feeds every open page, several runs at once
and several pages per run, each page getting its own run's text whole and in order,
including a page that joins a run the hub has already read past."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aredis
from django.test import AsyncClient

from assistants_app import streams
from assistants_app.models import Run, RunStatus, stream_key
from assistants_app.stream_hub import StreamHub, stream_hub
from tests.assistants_app.test_streaming import (
    _read_until,
    _running_run,
    _text_of,
    page_reading,
    parse_sse,
    run_async,
    until_received,
)

pytestmark = pytest.mark.django_db(transaction=True)

PIECES = 40


def test_one_reader_streams_several_runs_to_several_pages_whole_and_in_order(team, owner, monkeypatch) -> None:
    runs = [_running_run(team, owner, None) for _ in range(3)]
    reads = {"in_flight": 0, "most": 0}
    real_xread = aredis.Redis.xread

    async def counted_xread(self: aredis.Redis, *args: Any, **kwargs: Any) -> Any:
        reads["in_flight"] += 1
        reads["most"] = max(reads["most"], reads["in_flight"])
        try:
            return await real_xread(self, *args, **kwargs)
        finally:
            reads["in_flight"] -= 1

    monkeypatch.setattr(aredis.Redis, "xread", counted_xread)
    # Runs interleave, and the text carries its position, so a lost, repeated or
    # reordered piece (or one from another run) shows in the comparison.
    pieces = {run.pk: [f"[{run.pk}.{i}] " for i in range(PIECES)] for run in runs}
    ids: dict[int, list[str]] = {run.pk: [] for run in runs}

    async def publish(start: int, stop: int) -> None:
        for i in range(start, stop):
            for run in runs:
                ids[run.pk].append(await asyncio.to_thread(streams.publish, run.pk, "delta", pieces[run.pk][i]))

    async def scenario() -> dict[tuple[int, str], str]:
        client = AsyncClient()
        await client.aforce_login(owner)
        received: dict[tuple[int, str], list[str]] = {}

        def page(run: Run, name: str, headers: dict[str, str] | None = None) -> asyncio.Task[str]:
            into = received.setdefault((run.pk, name), [])
            return asyncio.create_task(_read_until(client, f"/threads/{run.thread_id}/events/", f"done-{run.pk}",
                                                   headers, into=into))

        async def until(check: Any) -> None:
            for _ in range(500):
                if check():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"timed out: {received}")

        first = [page(run, "first") for run in runs]
        await until(lambda: all("id: " in "".join(received[(run.pk, "first")]) for run in runs))
        await publish(0, PIECES // 2)
        # The hub has read half of each run before the second pages come; they resume
        # after the tenth piece they saw (Last-Event-ID), behind the hub.
        await until(lambda: all(pieces[run.pk][PIECES // 2 - 1] in "".join(received[(run.pk, "first")])
                                for run in runs))
        second = [page(run, "second", {"Last-Event-ID": f"0-0;{run.pk}={ids[run.pk][9]}"}) for run in runs]
        await until(lambda: all("id: " in "".join(received.get((run.pk, "second"), [])) for run in runs))
        await publish(PIECES // 2, PIECES)
        for run in runs:
            await Run.objects.filter(pk=run.pk).aupdate(status=RunStatus.SUCCEEDED)
            await asyncio.to_thread(streams.publish_end, run.pk)
        texts = await asyncio.gather(*first, *second)
        return dict(zip([(run.pk, "first") for run in runs] + [(run.pk, "second") for run in runs], texts,
                        strict=True))

    texts = run_async(scenario)
    for run in runs:
        first, second = parse_sse(texts[(run.pk, "first")]), parse_sse(texts[(run.pk, "second")])
        assert _text_of(first, run.pk) == "".join(pieces[run.pk])
        assert _text_of(second, run.pk) == "".join(pieces[run.pk][10:])
        assert first[-1]["event"] == second[-1]["event"] == f"done-{run.pk}"
    # Six pages on three runs, one process: one XREAD at a time, not one per page.
    assert reads["most"] == 1


def test_a_page_that_starts_following_a_run_gets_the_words_already_written_without_the_hubs_next_read(
        monkeypatch) -> None:
    """A run just started may have written its first words before the page's stream
    follows it: they go out at once, not after the hub's next read (woken, a round trip
    later), and what the hub reads afterwards is not sent twice."""
    run_id = 987_654_321
    key = stream_key(run_id).encode()
    streams.redis_client().delete(key)
    first = [streams.publish(run_id, "delta", word) for word in ("Hello", " there")]
    real_xread = aredis.Redis.xread
    hub_may_read = asyncio.Event()

    async def held_xread(self: aredis.Redis, *args: Any, **kwargs: Any) -> Any:
        await hub_may_read.wait()
        return await real_xread(self, *args, **kwargs)

    async def scenario() -> tuple[list[Any], list[Any]]:
        monkeypatch.setattr(aredis.Redis, "xread", held_xread)
        subscription = stream_hub().subscribe()
        try:
            caught = await asyncio.wait_for(subscription.follow(key, "0-0"), 5)
            await asyncio.to_thread(streams.publish, run_id, "delta", " again")
            hub_may_read.set()
            later = await subscription.next(5)
            return caught, later
        finally:
            subscription.close()

    try:
        caught, later = run_async(scenario)
    finally:
        streams.redis_client().delete(key)
    assert [entry_id.decode() for entry_id, _ in caught] == first
    assert [fields[b"d"] for _, fields in caught] == [b"Hello", b" there"]
    assert [(stream, [fields[b"d"] for _, fields in entries]) for stream, entries in later] == [(key, [b" again"])]


def test_a_page_that_joins_as_the_idle_hub_closes_its_connections_gets_a_reader_of_its_own(monkeypatch) -> None:
    # The hub's reader ends when no page follows anything, and closes its pooled connections.
    # A page that joined while that close was awaited found the reader's task still running
    # (so none was started for it: nothing new reached it) and could read through a
    # connection the close then shut ("Connection closed by server": its stream broke).
    key = f"sb:test:hub-idle:{uuid.uuid4().hex}".encode()
    writer = streams.redis_client()

    async def add(text: str) -> None:
        await asyncio.to_thread(writer.xadd, key, {"t": "delta", "d": text})

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        hub = StreamHub()
        pool = hub.client.connection_pool
        closing, closed = asyncio.Event(), asyncio.Event()
        real_disconnect = pool.disconnect

        async def slow_disconnect(*args: Any, **kwargs: Any) -> None:
            closing.set()
            await asyncio.sleep(0.3)  # a page joins meanwhile
            await real_disconnect(*args, **kwargs)
            closed.set()

        monkeypatch.setattr(pool, "disconnect", slow_disconnect)
        first = hub.subscribe()
        await first.follow(key, "0-0")
        await add("a")
        assert await first.next(5)
        first.close()
        await add("b")  # read for nobody: the reader ends and closes its connections
        await asyncio.wait_for(closing.wait(), 15)
        second = hub.subscribe()
        caught_up = await second.follow(key, "0-0")
        await asyncio.wait_for(closed.wait(), 5)
        await add("c")
        later = await second.next(5)
        second.close()
        return ([fields[b"d"] for _, fields in caught_up],
                [fields[b"d"] for _, entries in later for _, fields in entries])

    caught_up, later = run_async(scenario)
    assert caught_up == [b"a", b"b"] and later == [b"c"]


def _count_reads(streams_followed: int, monkeypatch: Any) -> tuple[int, int, dict[bytes, list[bytes]]]:
    """Pages following `streams_followed` streams, each written every 10 ms for half a
    second: (the hub's XREADs, the writes, what each stream's page received)."""
    monkeypatch.setattr("assistants_app.stream_hub.BUSY_STREAMS", 4)
    reads = {"n": 0}
    real_xread = aredis.Redis.xread

    async def counted_xread(self: aredis.Redis, *args: Any, **kwargs: Any) -> Any:
        reads["n"] += 1
        return await real_xread(self, *args, **kwargs)

    monkeypatch.setattr(aredis.Redis, "xread", counted_xread)
    keys = [f"sb:test:hub:{uuid.uuid4().hex}".encode() for _ in range(streams_followed)]
    writes = 50

    async def scenario() -> dict[bytes, list[bytes]]:
        hub = StreamHub()
        pages = {key: hub.subscribe() for key in keys}
        received: dict[bytes, list[bytes]] = {key: [] for key in keys}
        for key, page in pages.items():
            await page.follow(key, "0-0")

        async def read(key: bytes) -> None:
            while len(received[key]) < writes:
                for _, entries in await pages[key].next(5):
                    received[key] += [fields[b"i"] for _, fields in entries]

        readers = [asyncio.create_task(read(key)) for key in keys]
        for i in range(writes):
            pipe = hub.client.pipeline(transaction=False)
            for key in keys:
                pipe.xadd(key, {"i": str(i)})
            await pipe.execute()
            await asyncio.sleep(0.01)
        await asyncio.wait_for(asyncio.gather(*readers), 10)
        for page in pages.values():
            page.close()
        await hub.client.delete(*keys)
        return received

    received = run_async(scenario)
    return reads["n"], writes, received


def test_past_busy_streams_the_hub_gathers_writes_into_fewer_reads_and_loses_none(monkeypatch) -> None:
    """Each XREAD names every followed stream: with many, the hub waits GATHER_SECONDS
    after a read that brought something, so half a second of writes every 10 ms to six
    streams takes about ten reads, not fifty; every page still gets every entry in order."""
    reads, writes, received = _count_reads(6, monkeypatch)
    assert all(entries == [str(i).encode() for i in range(writes)] for entries in received.values())
    assert reads <= 20


def test_a_hub_following_a_few_streams_reads_each_write_at_once(monkeypatch) -> None:
    reads, writes, received = _count_reads(2, monkeypatch)
    assert all(entries == [str(i).encode() for i in range(writes)] for entries in received.values())
    assert reads >= writes * 0.6


def test_words_the_page_caught_itself_and_the_hub_reads_again_are_not_taken_for_quiet(team, owner) -> None:
    """A page that follows a run from its announcement reads the words already written
    itself; the hub then reads them again. That repeat is not a quiet stream: taken for
    one, the page asked whether the run had ended, found it finished in the database (a
    fast reply), and ended it before the rest of its text arrived."""
    run = _running_run(team, owner, None)
    # Its reply is saved already (a fast one), its text still on its way to the stream; the
    # page opens before it is announced.
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    with page_reading(owner, f"/threads/{run.thread_id}/events/", f"done-{run.pk}") as (received, reading):
        until_received(received, "id: ", "the page's stream did not open")  # open, with no active run
        streams.publish(run.pk, "delta", "First words")
        streams.announce_run(run.thread_id, run.pk)
        until_received(received, "First words", "the page did not show the first words")
        time.sleep(0.3)
        streams.publish(run.pk, "delta", ", and the rest.")
        streams.publish_end(run.pk)
        events = parse_sse(reading.result(timeout=20))
    assert _text_of(events, run.pk) == "First words, and the rest."
    assert events[-1]["event"] == f"done-{run.pk}"


def test_a_repeat_alone_does_not_end_the_wait_and_a_quiet_one_still_times_out() -> None:
    key = b"sb:test:seen"
    seen = [(b"5-0", {b"t": b"delta", b"d": b"seen"})]
    new = [(b"6-0", {b"t": b"delta", b"d": b"new"})]

    async def scenario() -> tuple[Any, Any, float]:
        page = StreamHub().subscribe()
        page.cursors[key] = (5, 0)
        page.queue.put_nowait([(key, seen)])
        asyncio.get_running_loop().call_later(0.1, page.queue.put_nowait, [(key, new)])
        fresh = await page.next(5)
        page.queue.put_nowait([(key, new)])  # seen now
        started = time.monotonic()
        quiet = await page.next(0.3)
        return fresh, quiet, time.monotonic() - started

    fresh, quiet, waited = run_async(scenario)
    assert fresh == [(key, new)]
    assert quiet == [] and waited >= 0.29

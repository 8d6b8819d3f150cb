"""Fault drill: chats on two web processes and two io workers against one PostgreSQL
and one Redis, while the things they stand on fail. Every reply must end exactly once:
saved once, never lost, failed only for a provider's reason, and what the reader of the
page's event stream assembled must be the saved reply.

Each chat is what a thread page does: the page's event stream is read on web B while
its message is posted through web A (a reader whose web process dies reconnects to the
other with Last-Event-ID, as a browser does). Scenarios, each over --runs chats at once:

    multi     one io worker and web B are SIGKILLed mid-run (the stale-run sweep requeues)
    worker    one io worker SIGKILLed at a random moment of the replies (early to the very end)
    redis2    Redis SIGKILLed and started again (empty) 2 s later, mid-stream
    redis10   the same, for 10 s
    load      (not in the default list) while the replies stream, 400 thread-list and search
              requests, 20 at a time, on both webs: errors, latency, PostgreSQL connections
    postgres  PostgreSQL restarted mid-stream (pg_ctl restart -m fast; an embedded pgserver),
              or, for a server we cannot restart, every connection to it terminated

    make bench ARGS="fault_drill --runs=20"
    make bench ARGS="fault_drill --scenarios=redis2,postgres --runs=20 --words=120"

Redis is one of the drill's own (tests/outages.py), so killing it touches nothing else;
the database is the one `make bench` gives. The sweep runs in a process of its own with a
short threshold (--stale seconds; production waits 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import httpx2
from django.db import connection
from django.test import Client

from assistants_app.models import Message, Run, RunStatus, Thread
from bench.chat_streaming import parse_events, start, stop, wait_port
from devtools.asgi_thread import free_port
from project.providers.models import ProviderKind
from project.teams.models import Team
from tests.factories import make_assistant, make_connection, make_team, make_user
from tests.outages import StoppableRedis

PYTHON = sys.executable
RUN_ID = re.compile(r'id="run-(\d+)"')
SCENARIOS = ("multi", "worker", "redis2", "redis10", "postgres")
# Not a fault: the pages people open while many replies stream (run it with more --runs).
EXTRA_SCENARIOS = ("load",)


@dataclass
class Stack:
    """The processes of the drill: sandbox, two webs, two io workers, the sweep."""

    tmp: Path
    env: dict[str, str]
    redis: StoppableRedis
    webs: dict[str, tuple[int, subprocess.Popen[bytes] | None]] = field(default_factory=dict)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_web(self, name: str, port: int | None = None) -> None:
        port = port or free_port()
        process = start([PYTHON, "-m", "uvicorn", "project.asgi:application", "--port", str(port), "--log-level",
                         "warning", "--no-access-log"], self.env, self.tmp / f"web-{name}.log")
        self.webs[name] = (port, process)
        wait_port(port, timeout=180)  # a loaded machine takes long to import Django

    def start_worker(self, name: str, threads: int) -> None:
        self.workers[name] = start(
            [PYTHON, "-m", "celery", "-A", "project.celery", "worker", "-P", "threads", "-c", str(threads), "-Q", "io",
             "-n", f"{name}@%h", "-l", "warning", "--without-gossip", "--without-mingle"],
            self.env, self.tmp / f"worker-{name}.log")

    def kill_web(self, name: str) -> None:
        port, process = self.webs[name]
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.webs[name] = (port, None)

    def kill_worker(self, name: str) -> None:
        os.killpg(self.workers[name].pid, signal.SIGKILL)
        self.workers[name].wait()

    def url(self, name: str) -> str | None:
        port, process = self.webs[name]
        return f"http://127.0.0.1:{port}" if process is not None else None

    def stop_all(self) -> None:
        for _, process in self.webs.values():
            if process is not None:
                stop(process)
        for process in [*self.workers.values(), *self.others]:
            if process.poll() is None:
                stop(process)


@dataclass
class Chat:
    thread_id: int
    run_id: int | None = None
    # The stream's events as they came, kept from the start: a run's first words can reach the
    # stream before the POST's answer names the run (as on a page, which draws them either way).
    events: list[tuple[str, str]] = field(default_factory=list)
    # What the page shows once the run ends: its "done" event, rendered from the database.
    final: str = ""
    reconnects: int = 0
    error: str = ""
    words_before_answer: bool = False  # the run's first words came before the POST's answer

    @property
    def text(self) -> str:
        """The run's live text as the page shows it: its deltas since its last reset."""
        text = ""
        for kind, data in self.events:
            if kind == f"reset-{self.run_id}":
                text = ""
            elif kind == f"delta-{self.run_id}":
                text += unescape(re.sub(r"</?span>", "", data))
        return text


async def follow(stack: Stack, cookies: dict[str, str], chat: Chat, posted: asyncio.Event, deadline: float) -> None:
    """Read the thread's event stream, preferring web B, until the run's done event; a
    broken connection comes back (to whichever web answers) with the last id seen."""
    last_id = ""
    while time.monotonic() < deadline:
        base = stack.url("B") or stack.url("A")
        assert base is not None
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with (httpx2.AsyncClient(base_url=base, cookies=cookies, timeout=httpx2.Timeout(30, read=25)) as http,
                        http.stream("GET", f"/threads/{chat.thread_id}/events/", headers=headers) as stream):
                buffer = ""
                async for piece in stream.aiter_text():
                    buffer += piece
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        for line in block.split("\n"):
                            if line.startswith("id: "):
                                last_id = line[4:]
                        posted.set()  # the stream is open: the message may be posted
                        for kind, data in parse_events(block + "\n\n"):
                            chat.events.append((kind, data))
                            if chat.run_id is not None and kind == f"done-{chat.run_id}":
                                chat.final = unescape(re.sub(r"<[^>]+>", "", data))
                                return
        except (httpx2.HTTPError, OSError):
            pass
        chat.reconnects += 1
        await asyncio.sleep(0.5)
    chat.error = "the stream never said done"


async def one_chat(stack: Stack, cookies: dict[str, str], csrf: str, chat: Chat, words: int, timeout: float) -> None:
    posted = asyncio.Event()
    deadline = time.monotonic() + timeout
    reader = asyncio.create_task(follow(stack, cookies, chat, posted, deadline))
    await asyncio.wait_for(posted.wait(), 30)
    base = stack.url("A")
    assert base is not None
    async with httpx2.AsyncClient(base_url=base, cookies=cookies, timeout=30) as http:
        response = await http.post(f"/threads/{chat.thread_id}/messages/", data={"text": f"write {words} words"},
                                   headers={"HX-Request": "true", "X-CSRFToken": csrf})
    match = RUN_ID.search(response.text)
    if match is None:
        reader.cancel()
        chat.error = f"post answered {response.status_code}: {response.text[:200]}"
        return
    chat.run_id = int(match.group(1))
    chat.words_before_answer = any(kind == f"delta-{chat.run_id}" for kind, _ in chat.events)
    await reader


def streaming(run_ids: list[int], words: int) -> bool:
    """Whether every run is running (so a fault now hits replies mid-stream)."""
    try:
        return Run.objects.filter(pk__in=run_ids, status=RunStatus.RUNNING).count() == len(run_ids)
    finally:
        connection.close()


async def probe_pages(stack: Stack, cookies: dict[str, str], count: int) -> tuple[int, int]:
    """The thread list, asked `count` times on each live web right after a fault: (asked, not 200)."""
    asked = bad = 0
    for name in ("A", "B"):
        base = stack.url(name)
        if base is None:
            continue
        async with httpx2.AsyncClient(base_url=base, cookies=cookies, timeout=30) as http:
            for _ in range(count):
                asked += 1
                try:
                    bad += (await http.get("/threads/")).status_code != 200
                except httpx2.HTTPError:
                    bad += 1
    return asked, bad


async def drill(stack: Stack, cookies: dict[str, str], csrf: str, threads: list[int], words: int,
                fault: Callable[[list[int]], None], timeout: float) -> list[Chat]:
    chats = [Chat(thread_id) for thread_id in threads]
    tasks = [asyncio.create_task(one_chat(stack, cookies, csrf, chat, words, timeout)) for chat in chats]
    started = time.monotonic()
    while any(chat.run_id is None for chat in chats) and time.monotonic() - started < 30:
        await asyncio.sleep(0.05)
    run_ids = [chat.run_id for chat in chats if chat.run_id is not None]
    while not await asyncio.to_thread(streaming, run_ids, words) and time.monotonic() - started < 30:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a few words in
    await asyncio.to_thread(fault, run_ids)
    pages = asyncio.create_task(probe_pages(stack, cookies, 10))
    await asyncio.gather(*tasks, return_exceptions=True)
    asked, bad = await pages
    print(f"  thread list right after the fault: {bad} of {asked} requests not answered 200", flush=True)
    return chats


def verdict(name: str, chats: list[Chat], words: int) -> dict[str, int]:
    counts = {"runs": len(chats), "exactly once": 0, "lost": 0, "duplicated": 0, "failed (provider)": 0,
              "failed (not the provider)": 0, "live text differs from saved": 0, "final page lacks the reply": 0,
              "reader errors": 0, "first words before the POST's answer": 0}
    for chat in chats:
        counts["first words before the POST's answer"] += chat.words_before_answer
        if chat.error:
            counts["reader errors"] += 1
            print(f"  {name}: thread {chat.thread_id}: {chat.error}")
        if chat.run_id is None:
            counts["lost"] += 1
            continue
        run = Run.objects.get(pk=chat.run_id)
        replies = list(Message.objects.filter(run=run, role="assistant").values_list("text", flat=True))
        if run.status == RunStatus.FAILED:
            provider = run.error.startswith(("The provider", "Could not reach the provider", "The connection to the"))
            counts["failed (provider)" if provider else "failed (not the provider)"] += 1
            print(f"  {name}: run {run.pk} failed: {run.error}")
        elif len(replies) == 0:
            counts["lost"] += 1
            print(f"  {name}: run {run.pk} is {run.status} with no reply")
        elif len(replies) > 1:
            counts["duplicated"] += 1
        elif len(replies[0].split()) == words:
            counts["exactly once"] += 1
            # Live text that missed part of the reply (Redis came back empty after the reply
            # ended) is replaced by the saved reply when the run's "done" arrives.
            counts["live text differs from saved"] += chat.text != replies[0]
            counts["final page lacks the reply"] += replies[0] not in chat.final
        else:
            counts["lost"] += 1
            print(f"  {name}: run {run.pk} saved {len(replies[0].split())} words of {words}")
    return counts


def page_load(stack: Stack, cookies: dict[str, str], *, requests: int, at_once: int) -> str:
    """Thread list and search pages, `at_once` in flight, alternating the webs, while the
    replies stream; with the most PostgreSQL connections seen meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    bases = [base for base in (stack.url("A"), stack.url("B")) if base]
    paths = ["/threads/", "/threads/?q=words"]
    clients = [httpx2.Client(base_url=base, cookies=cookies, timeout=30) for base in bases]
    most_connections = 0
    stop_sampling = False

    def sample() -> None:
        nonlocal most_connections
        while not stop_sampling:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
                most_connections = max(most_connections, cursor.fetchone()[0])
            time.sleep(0.2)
        connection.close()

    def ask(number: int) -> tuple[int, float]:
        started = time.perf_counter()
        try:
            status = clients[number % len(clients)].get(paths[number % 2]).status_code
        except httpx2.HTTPError:
            status = 0
        return status, (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(at_once + 1) as pool:
        sampler = pool.submit(sample)
        results = list(pool.map(ask, range(requests)))
        stop_sampling = True
        sampler.result()
    for client in clients:
        client.close()
    times = sorted(ms for _, ms in results)
    bad = sum(status != 200 for status, _ in results)
    return (f"pages under load: {bad} of {requests} not 200; median {times[len(times) // 2]:.0f} ms, "
            f"p95 {times[int(len(times) * 0.95)]:.0f} ms; at most {most_connections} PostgreSQL connections "
            "(two webs, two workers, the sweep and the drill)")


def restart_postgres() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        data_dir = cursor.fetchone()[0]
    connection.close()
    try:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        owner = Path(data_dir).owner()
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=data_dir, user=owner if os.getuid() == 0 else None, timeout=60)
        return "restarted (pg_ctl restart -m fast)"
    except Exception as error:  # noqa: BLE001 - not ours to restart: drop every connection instead
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return f"connections terminated ({type(error).__name__}: {str(error)[:80]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20, help="chats at once in each scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--words", type=int, default=120)
    parser.add_argument("--tokens-per-second", type=float, default=40.0)
    parser.add_argument("--worker-threads", type=int, default=32)
    parser.add_argument("--stale", type=float, default=8.0, help="the sweep's threshold (heartbeats come every 5 s)")
    args = parser.parse_args(argv)
    scenarios = [name for name in args.scenarios.split(",") if name]

    tmp = Path(tempfile.mkdtemp(prefix="fault-drill-"))
    redis = StoppableRedis()
    redis.start()
    sandbox_port = free_port()
    env = {**os.environ, "REDIS_URL": redis.url, "CELERY_BROKER_URL": redis.url, "SANDBOX_PORT": str(sandbox_port),
           "SANDBOX_DATA_DIR": str(tmp / "sandbox"), "SANDBOX_TTFT_MS": "0", "SANDBOX_HOST": "127.0.0.1",
           "SANDBOX_TOKENS_PER_SECOND": str(args.tokens_per_second), "DATABASE_POOL_SIZE": "20",
           "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1", "FAULT_DRILL_STALE_SECONDS": str(args.stale)}
    stack = Stack(tmp=tmp, env=env, redis=redis)
    print(f"logs in {tmp}", flush=True)
    try:
        stack.others.append(start([PYTHON, "-m", "sandbox"], env, tmp / "sandbox.log"))
        stack.others.append(start([PYTHON, "-m", "bench._sweeper"], env, tmp / "sweeper.log"))
        wait_port(sandbox_port)
        for name in ("A", "B"):
            stack.start_web(name)
        for name in ("w1", "w2"):
            stack.start_worker(name, args.worker_threads)

        Team.objects.filter(name="Fault drill").delete()
        user = make_user(f"drill{int(time.time())}")
        team = make_team("Fault drill", owner=user)
        provider = make_connection(team, base_url=f"http://127.0.0.1:{sandbox_port}/v1", kind=ProviderKind.SANDBOX)
        assistant = make_assistant(team, provider, name="Drill", instructions="")
        browser = Client()
        browser.force_login(user)
        browser.get("/threads/")
        cookies = {"sessionid": browser.cookies["sessionid"].value, "csrftoken": browser.cookies["csrftoken"].value}
        csrf = cookies["csrftoken"]
        time.sleep(3)  # the workers connect

        def fresh_threads(count: int) -> list[int]:
            made = Thread.objects.bulk_create([Thread(team=team, assistant=assistant, title="drill")
                                               for _ in range(count)])
            return [thread.pk for thread in made]

        reply_seconds = args.words * 2 / args.tokens_per_second  # words and the spaces between them

        def fault_for(name: str) -> Callable[[list[int]], None]:
            def multi(run_ids: list[int]) -> None:
                stack.kill_worker("w1")
                stack.kill_web("B")
                print("  killed io worker w1 and web B", flush=True)

            def worker(run_ids: list[int]) -> None:
                time.sleep(random.uniform(0, reply_seconds))
                stack.kill_worker("w1")
                print("  killed io worker w1", flush=True)

            def redis_down(seconds: float) -> Callable[[list[int]], None]:
                def fault(run_ids: list[int]) -> None:
                    redis.kill()
                    time.sleep(seconds)
                    redis.start()
                    print(f"  Redis killed, back empty {seconds:.0f} s later", flush=True)
                return fault

            def postgres(run_ids: list[int]) -> None:
                print(f"  PostgreSQL {restart_postgres()}", flush=True)

            def load(run_ids: list[int]) -> None:
                print("  " + page_load(stack, cookies, requests=400, at_once=20), flush=True)

            return {"multi": multi, "worker": worker, "redis2": redis_down(2), "redis10": redis_down(10),
                    "postgres": postgres, "load": load}[name]

        status = 0
        for name in scenarios:
            if "B" not in stack.webs or stack.webs["B"][1] is None:
                stack.start_web("B")
            if stack.workers.get("w1") is None or stack.workers["w1"].poll() is not None:
                stack.start_worker("w1", args.worker_threads)
                time.sleep(3)
            print(f"\n[{name}] {args.runs} chats of {args.words} words at {args.tokens_per_second:g} tokens/s",
                  flush=True)
            started = time.monotonic()
            chats = asyncio.run(drill(stack, cookies, csrf, fresh_threads(args.runs), args.words, fault_for(name),
                                      timeout=120 + args.stale * 4))
            connection.close()  # the drill's own connection may not have outlived the fault
            counts = verdict(name, chats, args.words)
            reconnects = sum(chat.reconnects for chat in chats)
            print(f"  {name}: " + ", ".join(f"{key} {value}" for key, value in counts.items())
                  + f"; reader reconnects {reconnects}; {time.monotonic() - started:.1f} s", flush=True)
            if counts["exactly once"] + counts["failed (provider)"] != counts["runs"]:
                status = 1
        return status
    finally:
        stack.stop_all()
        if redis.process is not None:
            redis.kill()


if __name__ == "__main__":
    raise SystemExit(main())

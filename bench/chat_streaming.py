"""Streaming through the dashboard, end to end over real processes started as `make run`
starts them (DEBUG on, WEB_PROCESSES uvicorn processes, an `io` thread-pool worker of
IO_CONCURRENCY threads and a `cpu` worker):
sandbox -> Celery worker -> Redis Stream -> uvicorn (the async SSE view) -> SSE client (httpx2).

The client does what a thread page does: it holds the thread's event stream open,
posts a message, and reads the reply from that stream. Every streamed reply is
compared with the saved one (a lost or reordered delta shows as a mismatch).

1. Added time to first token, pacing off: N sequential chats, TTFT from the POST to
   the first delta minus the sandbox's own TTFT; the median timeline of each step,
   and the POST's own steps (the view's Server-Timing header, sent when DEBUG is on).
2. Concurrency, pacing on (300 ms to the first token, 80 tokens a second, 200-word
   replies): C chats posted at once (no client-side limit), for each C in --concurrent:
   POST latency under the burst, how far apart the run rows were created, added TTFT,
   and CPU-seconds per 100 chats over the whole process tree (web, workers, PostgreSQL,
   Redis; psutil), split by process.

    python -m devtools.testrun --bench chat_streaming --runs=200 --concurrent=100,200
    python -m devtools.testrun --bench chat_streaming --runs=0 --concurrent=200 --profile=15   # and where the CPU goes

Needs DATABASE_URL / REDIS_URL (a migrated database) like the tests. It starts and
stops its own sandboxes, uvicorn and Celery worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import httpx2
import openai
import psutil
from django.db import connection
from django.test import Client

from assistants_app import streams
from assistants_app.models import Message, Run, Thread, stream_key
from bench._profile import Sampler
from bench._setup import pct, summary
from devtools.asgi_thread import free_port
from devtools.run import ONE_AT_A_TIME_ENV, io_concurrency
from project.providers.models import ProviderKind
from project.teams.models import Team
from tests.factories import make_assistant, make_connection, make_team, make_user

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RUN_ID = re.compile(r'id="run-(\d+)"')
SERVER_TIMING = re.compile(r"([\w-]+);dur=([\d.]+)")
PACED = {"SANDBOX_TTFT_MS": "300", "SANDBOX_TOKENS_PER_SECOND": "80"}
PACED_WORDS = 200


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


class CpuMeter:
    """CPU-seconds (user + system) of named process trees. PostgreSQL's connections are
    processes that come and go: the postmaster's reaped-children times count them."""

    def __init__(self, groups: dict[str, list[int]], *, alone: frozenset[int] = frozenset()) -> None:
        """`alone`: processes counted without their children (the bench's own, the parent
        of everything it started)."""
        self.groups = {name: [psutil.Process(pid) for pid in pids] for name, pids in groups.items()}
        self.alone = alone

    def _tree(self, process: psutil.Process) -> dict[int, float]:
        if process.pid in self.alone:
            times = process.cpu_times()
            return {process.pid: times.user + times.system}
        seconds: dict[int, float] = {}
        for each in [process, *process.children(recursive=True)]:
            try:
                times = each.cpu_times()
            except psutil.NoSuchProcess:
                continue
            seconds[each.pid] = times.user + times.system + times.children_user + times.children_system
        return seconds

    def sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, processes in self.groups.items():
            out[name] = {}
            for process in processes:
                out[name].update(self._tree(process))
        return out

    @staticmethod
    def spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
        return {name: {pid: seconds - before[name].get(pid, 0.0) for pid, seconds in pids.items()}
                for name, pids in after.items()}


class CpuTimeline:
    """The meter sampled every `every` seconds in a thread while a burst runs, so the CPU
    of a stretch inside it (the run rows being created) can be read by process."""

    def __init__(self, meter: CpuMeter, every: float = 0.1) -> None:
        self.meter, self.every = meter, every
        self.samples: list[tuple[float, dict[str, dict[int, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), self.meter.sample()))
            if self._stop.wait(self.every):
                self.samples.append((time.time(), self.meter.sample()))
                return

    def __enter__(self) -> CpuTimeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> tuple[float, dict[str, dict[int, float]]]:
        """The sampled stretch that covers [start, end] (epoch seconds): its length and the
        CPU each process spent in it."""
        first = max((s for s in self.samples if s[0] <= start), key=lambda s: s[0], default=self.samples[0])
        last = min((s for s in self.samples if s[0] >= end), key=lambda s: s[0], default=self.samples[-1])
        return last[0] - first[0], CpuMeter.spent(first[1], last[1])


def parse_events(raw: str) -> list[tuple[str, str]]:
    out = []
    for block in raw.split("\n\n"):
        kind, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            out.append((kind, "\n".join(data)))
    return out


class Dashboard:
    def __init__(self, base: str, session: str, csrf: str) -> None:
        self.base, self.session, self.csrf = base, session, csrf
        self.post_ms: list[float] = []
        self.delivery_ms: list[float] = []
        self.post_steps: dict[str, list[float]] = {}
        self.timelines: dict[int, dict[str, float]] = {}
        self.texts: dict[int, str] = {}

    def reset(self) -> None:
        self.post_ms, self.delivery_ms, self.post_steps, self.timelines, self.texts = [], [], {}, {}, {}

    def http(self, streams_open: int = 1) -> httpx2.AsyncClient:
        limits = httpx2.Limits(max_connections=2 * streams_open + 10, max_keepalive_connections=2 * streams_open)
        return httpx2.AsyncClient(base_url=self.base, cookies={"sessionid": self.session, "csrftoken": self.csrf},
                                  timeout=120, limits=limits)

    async def chat(self, http: httpx2.AsyncClient, thread_id: int, text: str,
                   go: asyncio.Event | None = None, ready: Any = None) -> float:
        """As a thread page does: open the thread's event stream, post a message, read
        the reply from that stream. Returns ms from the POST to the first delta; `go`
        holds the POST back until every chat's stream is open (a burst)."""
        events: list[tuple[float, float, str, str]] = []  # (perf_counter, wall clock, event, data)
        caught_up = asyncio.Event()
        async with http.stream("GET", f"/threads/{thread_id}/events/") as stream:
            async def read() -> None:
                buffer = ""
                async for chunk in stream.aiter_text():
                    buffer += chunk
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        if block.startswith("id: "):
                            caught_up.set()
                        for kind, data in parse_events(block + "\n\n"):
                            events.append((time.perf_counter(), time.time(), kind, data))
                            if kind.startswith("done-"):
                                return

            reader = asyncio.create_task(read())
            await asyncio.wait_for(caught_up.wait(), 60)
            if go is not None:
                ready()
                await asyncio.wait_for(go.wait(), 120)
            started = time.perf_counter()
            timeline = {"post sent": time.time() * 1000}
            response = await http.post(f"/threads/{thread_id}/messages/", data={"text": text},
                                       headers={"HX-Request": "true", "X-CSRFToken": self.csrf})
            self.post_ms.append((time.perf_counter() - started) * 1000)
            timeline["POST answered"] = time.time() * 1000
            for step, ms in SERVER_TIMING.findall(response.headers.get("server-timing", "")):
                self.post_steps.setdefault(step, []).append(float(ms))
            match = RUN_ID.search(response.text)
            if not match:
                reader.cancel()
                raise RuntimeError(f"post failed: {response.status_code} {response.text[:200]}")
            run_id = int(match.group(1))
            self.timelines[run_id] = timeline
            await asyncio.wait_for(reader, 300)
        if not events or events[-1][2] != f"done-{run_id}":
            raise RuntimeError(f"stream of run {run_id} ended without done")
        deltas = [(at, wall, data) for at, wall, kind, data in events if kind == f"delta-{run_id}"]
        announced = [wall for _, wall, kind, _ in events if kind == "run"]
        if announced:
            timeline["run shown on the page (SSE run event)"] = announced[0] * 1000
        self.texts[run_id] = unescape(re.sub(r"</?span>", "", "".join(data for _, _, data in deltas)))
        if not deltas:
            return (events[-1][0] - started) * 1000
        first, first_wall = deltas[0][0], deltas[0][1]
        entries: Any = await streams_client_xrange(run_id)
        added = next((int(i.split(b"-")[0]) for i, f in entries if f and f[b"t"] == b"delta"), None)
        if added is not None:
            self.delivery_ms.append(first_wall * 1000 - added)
            timeline["first delta XADDed by the worker"] = float(added)
        timeline["first delta at the SSE client"] = first_wall * 1000
        return (first - started) * 1000

    def mismatches(self) -> int:
        """Replies whose streamed text differs from the saved reply (lost, repeated or reordered deltas)."""
        saved = dict(Message.objects.filter(run_id__in=list(self.texts), role="assistant")
                     .values_list("run_id", "text"))
        wrong = [run_id for run_id, text in self.texts.items() if saved.get(run_id) != text]
        for run_id in wrong[:2]:
            print(f"  run {run_id} streamed {self.texts[run_id][:200]!r}\n  saved {saved.get(run_id, '')[:200]!r}")
        return len(wrong)


async def streams_client_xrange(run_id: int) -> Any:
    return await asyncio.to_thread(streams.redis_client().xrange, stream_key(run_id), "-", "+", 3)


def run_rows(dash: Dashboard, thread_ids: list[int]) -> list[tuple[Any, ...]]:
    """Add the database's times of each run to its timeline and return, per run,
    (queue ms, worker ms to first token, id, created at ms, claimed at ms)."""
    ids = list(Run.objects.filter(thread_id__in=thread_ids).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT extract(epoch FROM started_at - created_at) * 1000, ttft_ms, id, "
                       "extract(epoch FROM created_at) * 1000, extract(epoch FROM started_at) * 1000 "
                       "FROM assistants_app_run WHERE id = ANY(%s)", [ids])
        rows = cursor.fetchall()
    for row in rows:
        if row[2] in dash.timelines:
            dash.timelines[row[2]].update({"run row saved": float(row[3]), "run claimed by the worker": float(row[4])})
    return rows


def print_timeline(timelines: dict[int, dict[str, float]]) -> None:
    """Median time of each step after the POST was sent, in the order they happen, to
    show which path (the worker's or the SSE connection's) the first token waits for."""
    steps: dict[str, list[float]] = {}
    for timeline in timelines.values():
        for step, at in timeline.items():
            steps.setdefault(step, []).append(at - timeline["post sent"])
    print("  median timeline from the POST (ms):")
    for step, offsets in sorted(steps.items(), key=lambda item: statistics.median(item[1])):
        print(f"    {statistics.median(offsets):7.1f}  {step}")


def print_post_steps(dash: Dashboard) -> None:
    if not dash.post_steps:
        print("  (no Server-Timing header: the view sends it only with DEBUG on)")
        return
    print("  the POST's steps in the view (Server-Timing; median / p95 ms):")
    for step, values in dash.post_steps.items():
        print(f"    {step:<10} {statistics.median(values):6.2f} / {pct(values, 95):6.2f}")
    view = dash.post_steps.get("view")
    if view:
        outside = statistics.median(dash.post_ms) - statistics.median(view)
        print(f"    outside the view (client, uvicorn, Django's handler, middleware) {outside:6.2f} "
              "(median round trip - median view)")
        before = dash.post_steps.get("before-view")
        if before:
            print(f"      of which before the view (body, handler thread, middleware: session, user, team, CSRF) "
                  f"{statistics.median(before):6.2f}; the rest (response, uvicorn, client) "
                  f"{outside - statistics.median(before):6.2f}")


def direct_ttft(base_url: str, runs: int, words: int = 50) -> list[float]:
    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    times = []
    for i in range(runs):
        started = time.perf_counter()
        stream = client.chat.completions.create(model="gpt-4.1-mini", stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": f"write {words} words {i}"}])
        first = None
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
        times.append(((first or time.perf_counter()) - started) * 1000)
    return times


async def sequential(dash: Dashboard, threads: list[int]) -> list[float]:
    async with dash.http() as http:
        return [await dash.chat(http, thread_id, f"write 50 words {i}") for i, thread_id in enumerate(threads)]


async def burst(dash: Dashboard, threads: list[int], words: int) -> tuple[list[float], list[BaseException]]:
    """Every chat opens its stream; once all are open, every POST goes at once."""
    go = asyncio.Event()
    opened = 0

    def ready() -> None:
        nonlocal opened
        opened += 1
        if opened == len(threads):
            go.set()

    async with dash.http(len(threads)) as http:
        chats = [asyncio.create_task(dash.chat(http, t, f"write {words} words {i}", go, ready))
                 for i, t in enumerate(threads)]
        results = await asyncio.gather(*chats, return_exceptions=True)
    return [r for r in results if isinstance(r, float)], [r for r in results if isinstance(r, BaseException)]


@dataclass
class Processes:
    web: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    sandboxes: list[subprocess.Popen[bytes]]
    all: list[subprocess.Popen[bytes]] = field(default_factory=list)


def start_dashboard(env: dict[str, str], tmp: Path, web_port: int, web_processes: int, io_threads: int,
                    sandbox_ports: tuple[int, int]) -> Processes:
    """What `make run` starts, with the bench's ports: uvicorn (--workers when more than
    one process), the io worker (threads) and the cpu worker; and two sandboxes, one
    with pacing off and one paced like a real provider."""
    fast, paced = sandbox_ports
    sandboxes = [
        start([PYTHON, "-m", "sandbox", "--port", str(fast)],
              {**env, "SANDBOX_DATA_DIR": str(tmp / "fast"), "SANDBOX_TTFT_MS": "0", "SANDBOX_TOKENS_PER_SECOND": "0"},
              tmp / "sandbox-fast.log"),
        start([PYTHON, "-m", "sandbox", "--port", str(paced)], {**env, "SANDBOX_DATA_DIR": str(tmp / "paced"), **PACED},
              tmp / "sandbox-paced.log"),
    ]
    web_cmd = [PYTHON, "-m", "uvicorn", "project.asgi:application", "--host", "127.0.0.1", "--port", str(web_port),
               "--lifespan", "off", "--log-level", "warning", "--no-access-log"]
    if web_processes > 1:
        web_cmd += ["--workers", str(web_processes)]
    web = start(web_cmd, env, tmp / "web.log")
    celery = [PYTHON, "-m", "celery", "-A", "project.celery"]
    workers = [
        start([*celery, "worker", "-Q", "io", "-P", "threads", "-c", str(io_threads), "-n", f"benchio{web_port}@%h",
               "--loglevel", "WARNING", "--without-gossip", "--without-mingle"], env, tmp / "worker-io.log"),
        start([*celery, "worker", "-Q", "cpu", "-c", env.get("CPU_CONCURRENCY", "2"), "-n", f"benchcpu{web_port}@%h",
               "--loglevel", "WARNING", "--without-gossip", "--without-mingle"], {**env, **ONE_AT_A_TIME_ENV},
              tmp / "worker-cpu.log"),
    ]
    return Processes(web, workers, sandboxes, [*sandboxes, web, *workers])


def cpu_meter(processes: Processes) -> CpuMeter:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    postmaster = psutil.Process(backend).parent()
    assert postmaster is not None
    redis_pid = int(streams.redis_client().info("server")["process_id"])
    return CpuMeter({"web (uvicorn)": [processes.web.pid], "worker io": [processes.workers[0].pid],
                     "worker cpu": [processes.workers[1].pid], "postgresql": [postmaster.pid], "redis": [redis_pid],
                     "sandbox (the provider; not counted)": [p.pid for p in processes.sandboxes],
                     "bench client (not counted)": [os.getpid()]}, alone=frozenset({os.getpid()}))


def print_cpu(spent: dict[str, dict[int, float]], chats: int) -> None:
    counted = {name: sum(pids.values()) for name, pids in spent.items() if "not counted" not in name}
    total = sum(counted.values())
    print(f"  CPU over the whole tree: {total:.1f} s for {chats} chats = {total * 100 / chats:.1f} CPU-s per 100 chats")
    for name, pids in spent.items():
        seconds = sum(pids.values())
        busy = [f"{pid}: {s:.1f}" for pid, s in sorted(pids.items()) if s >= 0.05]
        split = f"  ({', '.join(busy)})" if len(busy) > 1 else ""
        print(f"    {name:<36} {seconds:6.1f} s = {seconds * 100 / chats:5.1f} per 100 chats{split}")


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200, help="sequential chats, pacing off (added TTFT)")
    parser.add_argument("--concurrent", default="100,200", help="chats posted at once, pacing on; comma-separated")
    parser.add_argument("--web-processes", type=int,
                        default=int(os.environ.get("WEB_PROCESSES") or os.cpu_count() or 1),
                        help="uvicorn processes (make run: WEB_PROCESSES, default one per core)")
    parser.add_argument("--io-threads", type=int, default=int(io_concurrency(dict(os.environ))),
                        help="threads of the io worker (make run: IO_CONCURRENCY)")
    parser.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                        help="sample the web and io worker with py-spy for the first SECONDS of each part and "
                             "print where their CPU went (bench/_profile.py)")
    args = parser.parse_args(argv)
    bursts = [int(c) for c in args.concurrent.split(",") if c.strip() and int(c) > 0]

    tmp = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    env = {**os.environ, "DEBUG": "true", "SANDBOX_HOST": "127.0.0.1"}
    fast_port, paced_port, web_port = free_port(), free_port(), free_port()
    processes = start_dashboard(env, tmp, web_port, args.web_processes, args.io_threads, (fast_port, paced_port))
    print(f"web: {args.web_processes} uvicorn process(es); io worker: {args.io_threads} threads; "
          f"{os.cpu_count()} cores; {load()}")
    try:
        for port in (fast_port, paced_port, web_port):
            wait_port(port)
        fast_url, paced_url = f"http://127.0.0.1:{fast_port}/v1", f"http://127.0.0.1:{paced_port}/v1"
        Team.objects.filter(name="Streaming bench").delete()
        user = make_user(f"bench{int(time.time())}")
        team = make_team("Streaming bench", owner=user)
        fast = make_assistant(team, make_connection(team, base_url=fast_url, kind=ProviderKind.SANDBOX, name="Fast"),
                              name="Fast", instructions="")
        paced = make_assistant(team, make_connection(team, base_url=paced_url, kind=ProviderKind.SANDBOX, name="Paced"),
                               name="Paced", instructions="")
        warm = 20
        Thread.objects.bulk_create([Thread(team=team, assistant=fast, title=f"fast {i}") for i in range(args.runs + warm)]
                                   + [Thread(team=team, assistant=paced, title=f"paced {i}") for i in range(sum(bursts))])
        fast_threads = list(Thread.objects.filter(team=team, assistant=fast).order_by("id").values_list("id", flat=True))
        paced_threads = list(Thread.objects.filter(team=team, assistant=paced).order_by("id").values_list("id", flat=True))
        client = Client()
        client.force_login(user)
        client.get(f"/threads/{fast_threads[0]}/")
        dash = Dashboard(f"http://127.0.0.1:{web_port}", client.cookies["sessionid"].value,
                         client.cookies["csrftoken"].value)
        asyncio.run(sequential(dash, fast_threads[-warm:]))  # warm up worker, pools, connections
        meter = cpu_meter(processes)

        if args.runs:
            direct = direct_ttft(fast_url, 200)
            dash.reset()
            print(f"\n1. Added time to first token, pacing off, {args.runs} chats one after another ({load()})")
            print(summary("  TTFT sandbox directly", direct))
            before = meter.sample()
            sampler = Sampler({"web (uvicorn)": [processes.web.pid], "worker io": [processes.workers[0].pid]},
                              seconds=args.profile) if args.profile else None
            with sampler or nullcontext():
                via = asyncio.run(sequential(dash, fast_threads[: args.runs]))
                spent = CpuMeter.spent(before, meter.sample())
            print(summary("  TTFT via the dashboard (POST sent -> first delta at the SSE client)", via))
            added = [v - statistics.median(direct) for v in via]
            print(summary("  ADDED TTFT (via the dashboard - median direct)", added))
            print(summary("  POST round trip", dash.post_ms))
            print_post_steps(dash)
            print(summary("  first delta: XADD by the worker -> received by the SSE client", dash.delivery_ms))
            rows = run_rows(dash, fast_threads[: args.runs])
            print_timeline(dash.timelines)
            print(summary("  queue: run saved -> claimed by the worker", [float(r[0]) for r in rows]))
            print(summary("  worker: claimed -> first token from the provider",
                          [float(r[1]) for r in rows if r[1] is not None]))
            print(f"  replies whose streamed deltas differ from the saved reply: {dash.mismatches()} of {len(via)}")
            print("  CPU per chat (stream opened, message posted, 50-word reply streamed), load-independent:")
            for name, pids in spent.items():
                print(f"    {name:<36} {sum(pids.values()) * 1000 / len(via):6.1f} ms")
            if sampler is not None:
                sampler.report()

        direct_paced = statistics.median(direct_ttft(paced_url, 5, words=5))
        offset = 0
        for chats in bursts:
            threads = paced_threads[offset: offset + chats]
            offset += chats
            dash.reset()
            print(f"\n2. {chats} chats posted at once, pacing on ({PACED['SANDBOX_TTFT_MS']} ms to the first token, "
                  f"{PACED['SANDBOX_TOKENS_PER_SECOND']} tokens/s, {PACED_WORDS}-word replies; {load()})")
            before = meter.sample()
            started = time.perf_counter()
            sampler = Sampler({"web (uvicorn)": [processes.web.pid], "worker io": [processes.workers[0].pid]},
                              seconds=args.profile) if args.profile else None
            with sampler or nullcontext(), CpuTimeline(meter) as timeline:
                times, errors = asyncio.run(burst(dash, threads, PACED_WORDS))
                wall = time.perf_counter() - started
                spent = CpuMeter.spent(before, meter.sample())
            for error in errors[:3]:
                print("  error:", repr(error))
            rows = run_rows(dash, threads)
            created = sorted(float(r[3]) for r in rows)
            not_succeeded = Run.objects.filter(thread_id__in=threads).exclude(status="succeeded").count()
            print(f"  {chats} chats in {wall:.1f} s; client errors {len(errors)}, runs not succeeded {not_succeeded}")
            print(summary(f"  POST latency under a burst of {chats}", dash.post_ms or [0.0]))
            if created:
                print(f"  run rows created: the last {created[-1] - created[0]:.0f} ms after the first "
                      f"(median {statistics.median(created) - created[0]:.0f} ms)")
                stretch, in_rows = timeline.between(created[0] / 1000, created[-1] / 1000)
                busy = {name: sum(pids.values()) for name, pids in in_rows.items()}
                print(f"  CPU while the rows were created ({stretch:.2f} s sampled, {os.cpu_count()} cores: "
                      f"{sum(busy.values()):.2f} CPU-s in all): "
                      + ", ".join(f"{name} {seconds:.2f}" for name, seconds in busy.items() if seconds >= 0.01))
            print(f"  sandbox's own TTFT (paced, median of 5 direct): {direct_paced:.0f} ms")
            print(summary("  ADDED TTFT (via the dashboard - direct)", [t - direct_paced for t in times] or [0.0]))
            print_timeline(dash.timelines)
            print_cpu(spent, chats)
            print(f"  replies whose streamed deltas differ from the saved reply: {dash.mismatches()} of {chats}")
            if sampler is not None:
                sampler.report()
    finally:
        for process in reversed(processes.all):
            stop(process)
    print(f"\n(logs in {tmp}; {load()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Streaming through the dashboard, end to end over real processes:
sandbox (pacing off) <- Celery worker (threads pool, queue io) -> Redis Stream ->
uvicorn (ASGI, the async SSE view) -> SSE client (httpx2).

The client does what a thread page does: it holds the thread's event stream open,
posts a message, and reads the reply from that stream.

1. Overhead: time to first token seen by an SSE client of the dashboard (from the
   POST of the message) minus time to first token from the sandbox directly; and
   over N sequential runs, every delta compared with the saved reply (lost or
   reordered deltas would show as a mismatch).
2. Concurrency: C chats posted and streamed at once; none may fail; p95 TTFT.

    python bench/chat_streaming.py [--runs 1000] [--concurrent 200] [--worker-threads 40]

Needs DATABASE_URL / REDIS_URL (a migrated database) like the tests. It starts and
stops its own sandbox, uvicorn and Celery worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from html import unescape
from pathlib import Path
from typing import Any

import httpx2
import openai
from django.db import connection
from django.test import Client

from assistants_app import streams
from assistants_app.models import Message, Run, Thread, stream_key
from bench._setup import summary
from devtools.asgi_thread import free_port
from project.providers.models import ProviderKind
from project.teams.models import Team
from tests.factories import make_assistant, make_connection, make_team, make_user

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RUN_ID = re.compile(r'id="run-(\d+)"')


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
        self.post_ms, self.delivery_ms = [], []
        self.timelines: dict[int, dict[str, float]] = {}

    post_ms: list[float]
    delivery_ms: list[float]

    async def chat(self, http: httpx2.AsyncClient, thread_id: int, text: str,
                   posting: asyncio.Semaphore | None = None) -> tuple[float, str, int]:
        """As a thread page does: open the thread's event stream, post a message, read
        the reply from that stream. (ms from the POST to the first delta, streamed text, run id)."""
        gate = posting or asyncio.Semaphore(1)
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
            await asyncio.wait_for(caught_up.wait(), 30)
            async with gate:  # the POST holds a database connection; the open stream does not
                started = time.perf_counter()
                timeline = {"post sent": time.time() * 1000}
                response = await http.post(f"/threads/{thread_id}/messages/", data={"text": text},
                                           headers={"HX-Request": "true", "X-CSRFToken": self.csrf})
                self.post_ms.append((time.perf_counter() - started) * 1000)
                timeline["POST answered"] = time.time() * 1000
            match = RUN_ID.search(response.text)
            if not match:
                reader.cancel()
                raise RuntimeError(f"post failed: {response.status_code} {response.text[:200]}")
            run_id = int(match.group(1))
            self.timelines[run_id] = timeline
            await asyncio.wait_for(reader, 120)
        if not events or events[-1][2] != f"done-{run_id}":
            raise RuntimeError(f"stream of run {run_id} ended without done")
        deltas = [(at, wall, data) for at, wall, kind, data in events if kind == f"delta-{run_id}"]
        announced = [wall for _, wall, kind, _ in events if kind == "run"]
        if announced:
            timeline["run shown on the page (SSE run event)"] = announced[0] * 1000
        streamed = unescape(re.sub(r"</?span>", "", "".join(data for _, _, data in deltas)))
        if not deltas:
            return (events[-1][0] - started) * 1000, streamed, run_id
        first, first_wall = deltas[0][0], deltas[0][1]
        entries: Any = streams.redis_client().xrange(stream_key(run_id), count=3)
        added = next(int(i.split(b"-")[0]) for i, f in entries if f and f[b"t"] == b"delta")
        self.delivery_ms.append(first_wall * 1000 - added)
        timeline["first delta XADDed by the worker"] = float(added)
        timeline["first delta at the SSE client"] = first_wall * 1000
        return (first - started) * 1000, streamed, run_id


def run_times(dash: Dashboard, thread_ids: list[int]) -> list[tuple[Any, ...]]:
    """Add the database's times of each run to its timeline, print the median timeline,
    and return (queue ms, worker ms to first token) per run."""
    ids = list(Run.objects.filter(thread_id__in=thread_ids).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT extract(epoch FROM started_at - created_at) * 1000, ttft_ms, id, "
                       "extract(epoch FROM created_at) * 1000, extract(epoch FROM started_at) * 1000 "
                       "FROM assistants_app_run WHERE id = ANY(%s)", [ids])
        rows = cursor.fetchall()
    for row in rows:
        if row[2] in dash.timelines:
            dash.timelines[row[2]].update({"run row saved": float(row[3]), "run claimed by the worker": float(row[4])})
    print_timeline({run_id: dash.timelines[run_id] for run_id in ids if run_id in dash.timelines})
    return rows


def print_timeline(timelines: dict[int, dict[str, float]]) -> None:
    """Median time of each step after the POST was sent, in the order they happen, to
    show which path (the worker's or the SSE connection's) the first token waits for."""
    import statistics

    steps: dict[str, list[float]] = {}
    for timeline in timelines.values():
        for step, at in timeline.items():
            steps.setdefault(step, []).append(at - timeline["post sent"])
    print("  median timeline from the POST (ms):")
    for step, offsets in sorted(steps.items(), key=lambda item: statistics.median(item[1])):
        print(f"    {statistics.median(offsets):7.1f}  {step}")


def direct_ttft(base_url: str, runs: int) -> list[float]:
    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    times = []
    for i in range(runs):
        started = time.perf_counter()
        stream = client.chat.completions.create(model="gpt-4.1-mini", stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": f"write 50 words {i}"}])
        first = None
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
        times.append(((first or time.perf_counter()) - started) * 1000)
    return times


async def sequential(dash: Dashboard, threads: list[int], runs: int) -> tuple[list[float], int]:
    times, mismatches = [], 0
    async with httpx2.AsyncClient(base_url=dash.base, cookies={"sessionid": dash.session, "csrftoken": dash.csrf},
                                  timeout=60) as http:
        for i in range(runs):
            ttft, text, run_id = await dash.chat(http, threads[i], f"write 50 words {i}")
            times.append(ttft)
            saved = await Message.objects.filter(run_id=run_id, role="assistant").values_list("text", flat=True).afirst()
            if saved != text:
                mismatches += 1
                if mismatches <= 2:
                    print(f"  run {run_id} streamed {text!r}\n  saved {saved!r}")
    return times, mismatches


async def concurrent(dash: Dashboard, threads: list[int]) -> tuple[list[float], int, float]:
    limits = httpx2.Limits(max_connections=2 * len(threads) + 10, max_keepalive_connections=2 * len(threads))
    async with httpx2.AsyncClient(base_url=dash.base, cookies={"sessionid": dash.session, "csrftoken": dash.csrf},
                                  timeout=120, limits=limits) as http:
        # PostgreSQL here allows 100 connections for everyone; a POST holds one, so at most
        # 20 are in flight. Every page's stream stays open at once: the chats run concurrently.
        posting = asyncio.Semaphore(20)
        started = time.perf_counter()
        results = await asyncio.gather(*(dash.chat(http, t, f"write 100 words {i}", posting)
                                         for i, t in enumerate(threads)),
                                       return_exceptions=True)
        wall = time.perf_counter() - started
    times = [r[0] for r in results if isinstance(r, tuple)] or [0.0]
    errors = [r for r in results if not isinstance(r, tuple)]
    for error in errors[:3]:
        print("  error:", repr(error))
    return times, len(errors), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--worker-threads", type=int, default=40)
    parser.add_argument("--worker-processes", type=int, default=1, help="io worker processes (each a thread pool)")
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn processes (production runs one per core)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    env = dict(os.environ)
    sandbox_port, web_port = free_port(), free_port()
    env.update({"SANDBOX_PORT": str(sandbox_port), "SANDBOX_DATA_DIR": str(tmp / "sandbox"), "SANDBOX_TTFT_MS": "0",
                "SANDBOX_TOKENS_PER_SECOND": "0", "SANDBOX_HOST": "127.0.0.1"})
    processes = [
        start([PYTHON, "-m", "sandbox"], env, tmp / "sandbox.log"),
        start([PYTHON, "-m", "uvicorn", "project.asgi:application", "--port", str(web_port), "--log-level", "warning",
               "--no-access-log", "--workers", str(args.web_workers)],
              env, tmp / "web.log"),
    ]
    processes += [
        start([PYTHON, "-m", "celery", "-A", "project.celery", "worker", "-P", "threads", "-c", str(args.worker_threads),
               "-Q", "io,cpu", "-n", f"bench{number}@%h", "-l", "warning", "--without-gossip", "--without-mingle"],
              env, tmp / f"worker{number}.log")
        for number in range(args.worker_processes)
    ]
    try:
        wait_port(sandbox_port)
        wait_port(web_port)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}/v1"
        Team.objects.filter(name="Streaming bench").delete()
        user = make_user(f"bench{int(time.time())}")
        team = make_team("Streaming bench", owner=user)
        provider = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")
        assistant = make_assistant(team, provider, name="Bench", instructions="")
        total = args.runs + args.concurrent + 20
        Thread.objects.bulk_create([Thread(team=team, assistant=assistant, title=f"bench {i}") for i in range(total)])
        thread_ids = list(Thread.objects.filter(team=team).order_by("id").values_list("id", flat=True))
        client = Client()
        client.force_login(user)
        client.get(f"/threads/{thread_ids[0]}/")
        dash = Dashboard(f"http://127.0.0.1:{web_port}", client.cookies["sessionid"].value,
                         client.cookies["csrftoken"].value)
        asyncio.run(sequential(dash, thread_ids[-20:], 20))  # warm up worker, pools, connections

        if args.skip_sequential:
            args.runs = 0
        direct = direct_ttft(sandbox_url, 200)
        print(summary("TTFT sandbox directly", direct))
        dash.post_ms, dash.delivery_ms = [], []
        if args.runs:
            via, mismatches = asyncio.run(sequential(dash, thread_ids[: args.runs], args.runs))
            print(summary("TTFT via dashboard SSE (POST -> first delta)", via))
            print(summary("  of which the POST (message + run saved, task sent, fragment rendered)", dash.post_ms))
            print(summary("  first delta: XADD by the worker -> received by the SSE client", dash.delivery_ms))
            rows = run_times(dash, thread_ids[: args.runs])
            print(summary("  queue: run saved -> claimed by the worker", [float(r[0]) for r in rows]))
            print(summary("  worker: claimed -> first token from the provider", [float(r[1]) for r in rows if r[1] is not None]))
            import statistics

            overhead = statistics.median(via) - statistics.median(direct)
            print(f"overhead (median via dashboard - median direct): {overhead:.1f} ms")
            print(f"sequential runs: {args.runs}, replies whose streamed deltas differ from the saved reply: {mismatches}")

        times, failed, wall = asyncio.run(concurrent(dash, thread_ids[args.runs: args.runs + args.concurrent]))
        runs = Run.objects.filter(thread_id__in=thread_ids[args.runs: args.runs + args.concurrent])
        failed_runs = runs.exclude(status="succeeded").count()
        print(summary(f"TTFT with {args.concurrent} concurrent chats ({args.worker_processes} worker process(es) "
                      f"of {args.worker_threads} threads)", times))
        print(f"concurrent: {args.concurrent} chats in {wall:.1f} s; client errors {failed}, runs not succeeded {failed_runs}")
        if args.concurrent:
            run_times(dash, thread_ids[args.runs: args.runs + args.concurrent])
    finally:
        for process in processes:
            stop(process)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The Responses engine, end to end over real processes (sandbox, uvicorn, Celery workers):

1. Time to first token through the dashboard (the thread page's SSE stream, from the POST)
   on a Responses connection and on a Chat Completions one, the runs interleaved, beside
   the sandbox's own TTFT on /v1/responses and /v1/chat/completions.
2. Background runs whose worker is killed (SIGKILL) mid-stream: a new worker and the
   stale-run sweep take them over; every saved reply is compared with what the run's
   stream showed (characters lost or repeated), and the sandbox's count of create calls
   says whether any response was generated twice.

3. With --polled=N, background runs whose every stream breaks: their workers hand them to
   polling and a real celery beat's ticks fetch them to their end (responses_poll).

    make bench ARGS="responses_engine [--runs=200] [--killed=100] [--per-kill=10] [--polled=0]"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
from django.test import Client

from assistants_app import recovery, streams
from assistants_app.models import Message, Run, RunStatus, Thread
from assistants_app.services import thread_post_message
from bench._setup import summary
from bench.chat_streaming import PYTHON, Dashboard, start, stop, wait_port
from devtools.asgi_thread import free_port
from project.providers.models import Engine, ProviderConnection, ProviderKind
from project.teams.models import Team
from tests.factories import make_assistant, make_connection, make_team, make_user


def _direct_ttft(base_url: str, runs: int) -> tuple[list[float], list[float]]:
    """The sandbox's own TTFT for a 50-word reply: (chat completions, responses), interleaved."""
    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    chat, responses = [], []
    for i in range(runs):
        started = time.perf_counter()
        for chunk in client.chat.completions.create(model="gpt-4.1-mini", stream=True,
                                                    messages=[{"role": "user", "content": f"write 50 words {i}"}]):
            if chunk.choices and chunk.choices[0].delta.content:
                chat.append((time.perf_counter() - started) * 1000)
                break
        started = time.perf_counter()
        with client.responses.create(model="gpt-4.1-mini", stream=True, store=False,
                                     input=f"write 50 words {i}") as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    responses.append((time.perf_counter() - started) * 1000)
                    break
    return chat, responses


def _connection(team: Team, url: str, engine: str) -> ProviderConnection:
    connection = make_connection(team, base_url=url, kind=ProviderKind.SANDBOX, name=engine)
    connection.engine = engine
    connection.save(update_fields=["engine"])
    return connection


async def _interleaved(dash: Dashboard, chat_threads: list[int], responses_threads: list[int]) -> dict[str, Any]:
    times: dict[str, list[float]] = {Engine.CHAT_COMPLETIONS: [], Engine.RESPONSES: []}
    mismatches = 0
    async with httpx2.AsyncClient(base_url=dash.base, cookies={"sessionid": dash.session, "csrftoken": dash.csrf},
                                  timeout=60) as http:
        for i, (chat_thread, responses_thread) in enumerate(zip(chat_threads, responses_threads, strict=True)):
            for engine, thread_id in ((Engine.CHAT_COMPLETIONS, chat_thread), (Engine.RESPONSES, responses_thread)):
                ttft = await dash.chat(http, thread_id, f"write 50 words {i}")
                run_id, text = next(reversed(dash.texts.items()))  # this chat's run: the last one streamed
                times[engine].append(ttft)
                saved = await Message.objects.filter(run_id=run_id, role="assistant").values_list(
                    "text", flat=True).afirst()
                mismatches += saved != text
    return {"times": times, "mismatches": mismatches}


def _ttft(env: dict[str, str], runs: int, tmp: Path) -> None:
    sandbox_port, web_port = free_port(), free_port()
    env = {**env, "SANDBOX_PORT": str(sandbox_port), "SANDBOX_DATA_DIR": str(tmp / "sandbox-ttft"),
           "SANDBOX_TTFT_MS": "0", "SANDBOX_TOKENS_PER_SECOND": "0", "SANDBOX_HOST": "127.0.0.1"}
    processes = [
        start([PYTHON, "-m", "sandbox"], env, tmp / "sandbox-ttft.log"),
        start([PYTHON, "-m", "uvicorn", "project.asgi:application", "--port", str(web_port), "--log-level", "warning",
               "--no-access-log"], env, tmp / "web.log"),
        start([PYTHON, "-m", "celery", "-A", "project.celery", "worker", "-P", "threads", "-c", "8", "-Q", "io,cpu",
               "-n", "bench-ttft@%h", "-l", "warning", "--without-gossip", "--without-mingle"], env, tmp / "worker.log"),
    ]
    try:
        wait_port(sandbox_port)
        wait_port(web_port)
        url = f"http://127.0.0.1:{sandbox_port}/v1"
        Team.objects.filter(name="Responses bench").delete()
        user = make_user(f"rbench{int(time.time())}")
        team = make_team("Responses bench", owner=user)
        threads = {}
        for engine in (Engine.CHAT_COMPLETIONS, Engine.RESPONSES):
            assistant = make_assistant(team, _connection(team, url, engine), name=engine, instructions="")
            Thread.objects.bulk_create([Thread(team=team, assistant=assistant, title=f"{engine} {i}")
                                        for i in range(runs + 10)])
            threads[engine] = list(Thread.objects.filter(assistant=assistant).order_by("id").values_list("id", flat=True))
        client = Client()
        client.force_login(user)
        client.get(f"/threads/{threads[Engine.RESPONSES][0]}/")
        dash = Dashboard(f"http://127.0.0.1:{web_port}", client.cookies["sessionid"].value,
                         client.cookies["csrftoken"].value)
        asyncio.run(_interleaved(dash, threads[Engine.CHAT_COMPLETIONS][-10:], threads[Engine.RESPONSES][-10:]))  # warm up
        direct_chat, direct_responses = _direct_ttft(url, runs)
        result = asyncio.run(_interleaved(dash, threads[Engine.CHAT_COMPLETIONS][:runs], threads[Engine.RESPONSES][:runs]))
        via_chat, via_responses = result["times"][Engine.CHAT_COMPLETIONS], result["times"][Engine.RESPONSES]
        print(summary("TTFT sandbox directly, /v1/chat/completions", direct_chat))
        print(summary("TTFT sandbox directly, /v1/responses", direct_responses))
        print(summary("TTFT via dashboard, Chat Completions engine", via_chat))
        print(summary("TTFT via dashboard, Responses engine", via_responses))
        ratio = statistics.median(via_responses) / statistics.median(via_chat)
        added = statistics.median(via_responses) - statistics.median(direct_responses)
        print(f"Responses engine median / Chat Completions engine median: {ratio:.3f} "
              f"({(ratio - 1) * 100:+.1f} %)")
        print(f"added by the dashboard on the Responses engine (median via - median direct): {added:.1f} ms")
        print(f"replies whose streamed deltas differ from the saved reply: {result['mismatches']}")
    finally:
        for process in processes:
            stop(process)


def _worker(env: dict[str, str], tmp: Path, name: str) -> Any:
    return start([PYTHON, "-m", "celery", "-A", "project.celery", "worker", "-P", "threads", "-c", "16", "-Q", "io,cpu",
                  "-n", f"{name}@%h", "-l", "warning", "--without-gossip", "--without-mingle"], env,
                 tmp / f"{name}.log")


def _shown(run_id: int) -> str:
    shown, _, _ = streams.fold(streams.redis_client().xrange(streams.stream_key(run_id)))
    return "".join(data for kind, data in shown if kind == "delta")


def _killed(env: dict[str, str], total: int, per_kill: int, tmp: Path) -> None:
    sandbox_port = free_port()
    # The background clock at 5x: a 300-word reply is written in about 1.5 s.
    env = {**env, "SANDBOX_PORT": str(sandbox_port), "SANDBOX_DATA_DIR": str(tmp / "sandbox-bg"),
           "SANDBOX_TIME_SCALE": "5", "SANDBOX_HOST": "127.0.0.1"}
    processes = [start([PYTHON, "-m", "sandbox"], env, tmp / "sandbox-bg.log")]
    worker = None
    try:
        wait_port(sandbox_port)
        url = f"http://127.0.0.1:{sandbox_port}/v1"
        user = make_user(f"rbg{int(time.time())}")
        team = make_team("Background bench", owner=user)
        connection = _connection(team, url, Engine.RESPONSES)
        assistant = make_assistant(team, connection, name="Long", instructions="", long_running=True)
        runs: list[Run] = []
        killed_mid_stream = 0
        rounds = 0
        while len(runs) < total:
            rounds += 1
            worker = _worker(env, tmp, f"bg{rounds}")
            batch = []
            for _ in range(min(per_kill, total - len(runs))):
                thread = Thread.objects.create(team=team, assistant=assistant, title="bg")
                batch.append(thread_post_message(thread=thread, actor=user, text="write 300 words")[1])
            # Kill when the replies are part written: some text shown, none finished.
            deadline = time.monotonic() + 60
            while not all(_shown(run.pk) for run in batch) and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(random.uniform(0.0, 0.6))
            worker.kill()
            worker.wait()
            running = Run.objects.filter(pk__in=[r.pk for r in batch], status=RunStatus.RUNNING).count()
            killed_mid_stream += running
            worker = _worker(env, tmp, f"bg{rounds}b")
            time.sleep(2.0)  # the new worker is up
            recovery.runs_recover_stale(stale_after_seconds=0.0)
            deadline = time.monotonic() + 120
            while Run.objects.filter(pk__in=[r.pk for r in batch], status__in=("queued", "running")).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("runs did not finish after the takeover")
                time.sleep(0.1)
            stop(worker)
            worker = None
            runs += batch
        lost = repeated = differ = failed = 0
        for run in Run.objects.filter(pk__in=[r.pk for r in runs]):
            if run.status != RunStatus.SUCCEEDED:
                failed += 1
                continue
            saved = Message.objects.get(run=run, role="assistant").text
            shown = _shown(run.pk)
            if saved.startswith(shown):
                lost += len(saved) - len(shown)
            elif shown.startswith(saved):
                repeated += len(shown) - len(saved)
            else:
                differ += 1
        stats = httpx2.get(f"http://127.0.0.1:{sandbox_port}/sandbox/responses/stats",
                           headers={"Authorization": f"Bearer {connection.get_api_key()}"}).json()
        print(f"background runs: {len(runs)} in {rounds} kills; running (mid-stream) when their worker was killed: "
              f"{killed_mid_stream}; not succeeded: {failed}")
        print(f"characters lost: {lost}; characters shown twice: {repeated}; "
              f"replies whose stream differs otherwise: {differ}")
        print(f"responses created at the provider: {stats['create_requests']} for {len(runs)} runs")
    finally:
        if worker is not None:
            worker.kill()
        for process in processes:
            stop(process)


def _no_resume_proxy(upstream: str) -> Any:
    """A provider that will not stream a background response again: in front of the sandbox
    (which breaks every created stream after its first events), it refuses
    GET /v1/responses/{id}?stream=true with a 400 and passes everything else on."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        if request.method == "GET" and request.query_params.get("stream") == "true":
            refused = JSONResponse({"error": {"message": "Streaming is not available for this response.",
                                              "type": "invalid_request_error", "param": "stream", "code": None}},
                                   status_code=400)
            await refused(scope, receive, send)
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        body, status, kind = b"", 502, "application/json"
        async with httpx2.AsyncClient(timeout=60) as client:
            try:
                async with client.stream(request.method, upstream + request.url.path, params=request.query_params,
                                         headers=headers, content=await request.body()) as answer:
                    status, kind = answer.status_code, answer.headers.get("content-type", kind)
                    async for chunk in answer.aiter_raw():
                        body += chunk
            except httpx2.HTTPError:
                pass  # the sandbox broke the stream: pass on what it sent
        await Response(body, status_code=status, media_type=kind)(scope, receive, send)

    return app


def _polled(env: dict[str, str], total: int, tmp: Path) -> None:
    """Background runs whose stream cannot be followed (it breaks after its first events and
    the provider refuses to stream it again): each worker hands its run to polling and
    returns, and a real celery beat's ticks fetch the responses until they end."""
    from devtools.asgi_thread import serving_in_thread

    sandbox_port = free_port()
    env = {**env, "SANDBOX_PORT": str(sandbox_port), "SANDBOX_DATA_DIR": str(tmp / "sandbox-polled"),
           "SANDBOX_TIME_SCALE": "5", "SANDBOX_HOST": "127.0.0.1", "SANDBOX_FAULT_RATE_BREAK_STREAM": "1.0"}
    processes = [start([PYTHON, "-m", "sandbox"], env, tmp / "sandbox-polled.log")]
    proxy = contextlib.ExitStack()
    try:
        wait_port(sandbox_port)
        proxy_port = proxy.enter_context(serving_in_thread(_no_resume_proxy(f"http://127.0.0.1:{sandbox_port}"),
                                                           name="no-resume"))
        processes.append(_worker(env, tmp, "polled"))
        processes.append(start([PYTHON, "-m", "celery", "-A", "project.celery", "beat", "-l", "info",
                                "-s", str(tmp / "beat-schedule")], env, tmp / "beat.log"))
        deadline = time.monotonic() + 120
        while "Starting..." not in (tmp / "beat.log").read_text(errors="replace"):  # beat is up
            if time.monotonic() > deadline:
                raise RuntimeError("celery beat did not start")
            time.sleep(0.2)
        url = f"http://127.0.0.1:{proxy_port}/v1"
        user = make_user(f"rpoll{int(time.time())}")
        team = make_team("Polled bench", owner=user)
        connection = _connection(team, url, Engine.RESPONSES)
        assistant = make_assistant(team, connection, name="Long", instructions="", long_running=True)
        time.sleep(2.0)  # the worker is up
        started = time.monotonic()
        runs = [thread_post_message(thread=Thread.objects.create(team=team, assistant=assistant, title="polled"),
                                    actor=user, text="write 300 words")[1] for _ in range(total)]
        ids = [run.pk for run in runs]
        handed = 0
        deadline = time.monotonic() + 300
        handed_at: dict[int, float] = {}  # when the bench first saw each run awaiting the provider
        ended_at: dict[int, float] = {}
        while len(ended_at) < len(ids):
            now = time.monotonic()
            polled = list(Run.objects.filter(pk__in=ids, status="running", poll_at__isnull=False)
                          .values_list("pk", flat=True))
            handed = max(handed, len(polled))
            for run_id in polled:
                handed_at.setdefault(run_id, now)
            for run_id in Run.objects.filter(pk__in=ids).exclude(status__in=("queued", "running")).values_list(
                    "pk", flat=True):
                ended_at.setdefault(run_id, now)
            if now > deadline:
                raise RuntimeError("polled runs did not finish")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        finished = list(Run.objects.filter(pk__in=ids))
        failed = sum(run.status != RunStatus.SUCCEEDED for run in finished)
        lost = repeated = differ = 0
        for run in finished:
            if run.status != RunStatus.SUCCEEDED:
                continue
            saved, shown = Message.objects.get(run=run, role="assistant").text, _shown(run.pk)
            lost += len(saved) - len(shown) if saved.startswith(shown) else 0
            repeated += len(shown) - len(saved) if shown.startswith(saved) and not saved.startswith(shown) else 0
            differ += not (saved.startswith(shown) or shown.startswith(saved))
        stats = httpx2.get(f"http://127.0.0.1:{sandbox_port}/sandbox/responses/stats",
                           headers={"Authorization": f"Bearer {connection.get_api_key()}"}).json()
        looks = [run.poll_attempts for run in finished]
        print(f"polled runs: {len(finished)}; awaiting the provider at once (most seen): {handed}; "
              f"polled at least once: {sum(1 for n in looks if n)}; not succeeded: {failed}; all ended in {elapsed:.1f} s")
        print(f"GETs per run: median {statistics.median(looks):.0f}, max {max(looks)}")
        print(summary("run time of the attempt that polled, claim to end", [float(run.total_ms or 0) for run in finished]))
        print(summary("post to handed to polling (as the bench saw it)",
                      [(handed_at[i] - started) * 1000 for i in ids if i in handed_at]))
        print(summary("handed to polling to ended (as the bench saw it)",
                      [(ended_at[i] - handed_at[i]) * 1000 for i in ids if i in handed_at]))
        print(f"characters lost: {lost}; characters shown twice: {repeated}; replies whose stream differs otherwise: "
              f"{differ}; responses created at the provider: {stats['create_requests']} for {len(finished)} runs")
    finally:
        for process in processes:
            stop(process)
        proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200, help="TTFT runs per engine")
    parser.add_argument("--killed", type=int, default=100, help="background runs whose worker is killed")
    parser.add_argument("--per-kill", type=int, default=10, help="background runs in flight at each kill")
    parser.add_argument("--polled", type=int, default=0, help="background runs whose stream always breaks (polled)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="responses-bench-"))
    env = dict(os.environ)
    if args.runs:
        _ttft(env, args.runs, tmp)
    if args.killed:
        _killed(env, args.killed, args.per_kill, tmp)
    if args.polled:
        _polled(env, args.polled, tmp)
    return 0

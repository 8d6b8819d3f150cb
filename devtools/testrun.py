"""`make test` and `make bench`: run against real services.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set (CI sets them to
the machine's own servers); otherwise embedded ones are started for the run. A
DATABASE_URL server without the pgvector extension (semantic search needs it) is
replaced by the embedded PostgreSQL, which ships it, with one line saying so.
Secrets for the test settings are made fresh each run.

    python -m devtools.testrun [--no-lint] [pytest args]   ruff, mypy, import contracts, then pytest
    python -m devtools.testrun --bench [names] [--flags]   migrate a database, then the benchmarks
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet

from devtools.services import embedded_services, lacks_pgvector

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@contextmanager
def service_environment() -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", "test-" + "x" * 40)
    env.setdefault("FIELD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    env.setdefault("DEBUG", "false")
    env.setdefault("SECURE_COOKIES", "false")
    env.setdefault("ALLOWED_HOSTS", "*")
    env.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    # The tests' sandboxes, tool endpoints and fake providers listen on 127.0.0.1, in the
    # test process and in the worker processes some tests start.
    env.setdefault("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1")
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    if env.get("DATABASE_URL") and lacks_pgvector(env["DATABASE_URL"]):
        # Semantic search's tests need pgvector; the embedded PostgreSQL ships it.
        print("[test] the PostgreSQL at DATABASE_URL has no pgvector extension: using the embedded PostgreSQL", flush=True)
        del env["DATABASE_URL"]
    with embedded_services(BASE_DIR / ".data" / "test-services", env) as services:
        env["DATABASE_URL"] = services.database_url
        env["REDIS_URL"] = services.redis_url
        if services.started:
            print(f"[test] embedded {' and '.join(services.started)}", flush=True)
        yield env


def run_tests(args: list[str]) -> int:
    with service_environment() as env:
        if not args or args[0] != "--no-lint":
            # lint-imports checks the import contracts in pyproject.toml (no cycles, the
            # platform imports no feature, features meet only through a published module).
            steps = {"ruff check .": [PYTHON, "-m", "ruff", "check", "."], "mypy .": [PYTHON, "-m", "mypy", "."],
                     "lint-imports": [str(Path(PYTHON).with_name("lint-imports")), "--no-cache"]}
            for label, step in steps.items():
                print(f"[test] {label}", flush=True)
                result = subprocess.run(step, cwd=BASE_DIR, env=env)
                if result.returncode != 0:
                    return result.returncode
        else:
            args = args[1:]
        # Pages under test load htmx and the CSS as the production build serves them.
        subprocess.run([PYTHON, "manage.py", "collectstatic", "--no-input", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
        print("[test] pytest", flush=True)
        return subprocess.run([PYTHON, "-m", "pytest", *args], cwd=BASE_DIR, env=env).returncode


def run_benchmarks(args: list[str]) -> int:
    with service_environment() as env:
        subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
        return subprocess.run([PYTHON, "-m", "bench", *args], cwd=BASE_DIR, env=env).returncode


def main(args: list[str]) -> int:
    if args and args[0] == "--bench":
        return run_benchmarks(args[1:])
    return run_tests(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`make test`: ruff, mypy and the whole pytest suite against real services.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set (CI sets them to
the machine's own servers); otherwise embedded ones are started for the run.
Secrets for the test settings are made fresh each run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from project.devservices import embedded_services

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def main(pytest_args: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", "test-" + "x" * 40)
    env.setdefault("FIELD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    env.setdefault("DEBUG", "false")
    env.setdefault("SECURE_COOKIES", "false")
    env.setdefault("ALLOWED_HOSTS", "*")
    env.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    env.setdefault("PLAYWRIGHT_BROWSERS_PATH", "0")
    if not pytest_args or pytest_args[0] != "--no-lint":
        for step in (["ruff", "check", "."], ["mypy", "."]):
            print(f"[test] {' '.join(step)}", flush=True)
            result = subprocess.run([PYTHON, "-m", *step], cwd=BASE_DIR, env=env)
            if result.returncode != 0:
                return result.returncode
    else:
        pytest_args = pytest_args[1:]
    with embedded_services(BASE_DIR / ".data" / "test-services", env) as services:
        env["DATABASE_URL"] = services.database_url
        env["REDIS_URL"] = services.redis_url
        if services.started:
            print(f"[test] embedded {' and '.join(services.started)}", flush=True)
        # Pages under test load htmx and the CSS as the production build serves them.
        subprocess.run([PYTHON, "manage.py", "collectstatic", "--no-input", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
        print("[test] pytest", flush=True)
        return subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=BASE_DIR, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Shared fixtures. Tests use the real PostgreSQL and Redis named by DATABASE_URL /
REDIS_URL (make test provides them) and reach the sandbox over real HTTP."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from django.conf import settings
from django.test import Client, TransactionTestCase

from devtools.asgi_thread import serving_in_thread
from tests import factories

# Playwright's sync API runs an event loop in the test thread; the ORM calls made
# by the same tests are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _caused_by_deadlock(error: BaseException | None) -> bool:
    while error is not None:
        if "deadlock detected" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _flush_through_deadlocks(teardown: Callable[[TransactionTestCase], None]) -> Callable[[TransactionTestCase], None]:
    """A transactional test ends by emptying every table (one TRUNCATE). Work the test left
    running in the background (the in-process Celery worker finishing a reply, an event
    stream of the ASGI server reading its runs) can hold a lock the TRUNCATE needs while
    waiting for one it holds: PostgreSQL then aborts the TRUNCATE as a deadlock, and the
    test's rows would stay for the next test. The other side goes on once ours is aborted,
    so the flush is tried again."""
    def flush(case: TransactionTestCase) -> None:
        for attempt in range(4):
            try:
                teardown(case)
                return
            except Exception as error:
                if attempt == 3 or not _caused_by_deadlock(error):
                    raise
                time.sleep(0.2 * (attempt + 1))
    return flush


# Django's own hook (not in the stubs): the flush of every transactional test.
setattr(TransactionTestCase, "_fixture_teardown",  # noqa: B010
        _flush_through_deadlocks(getattr(TransactionTestCase, "_fixture_teardown")))  # noqa: B009


@pytest.fixture(scope="session", autouse=True)
def _clean_redis() -> None:
    redis_lib.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> None:
    """Uploads and chat pictures go to the test's own folder, never the checkout's .data/."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _outbound_to_loopback(settings: Any) -> None:
    """The tests' servers (sandboxes, tool endpoints, fake providers) listen on 127.0.0.1,
    which an operator allows with OUTBOUND_ALLOWED_HOSTS; the guard's own tests set their list."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sandbox provider over real HTTP, fast clock, no stream pacing."""
    from sandbox.testing import running_sandbox

    with running_sandbox(tmp_path_factory.mktemp("sandbox"), time_scale=2000.0, ttft_ms=0,
                         tokens_per_second=0) as url:
        yield url


@pytest.fixture
def owner(db: None) -> factories.User:
    return factories.make_user("olivia")


@pytest.fixture
def team(owner: factories.User) -> factories.Team:
    return factories.make_team("Acme", owner=owner)


@pytest.fixture
def other_team(db: None) -> factories.Team:
    return factories.make_team("Globex")


def client_for(user: factories.User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner_client(owner: factories.User, team: factories.Team) -> Client:
    return client_for(owner)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"Chromium not found at {executable}: install Debian's chromium package (see .ci/run).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup: None, django_db_blocker: object) -> Iterator[object]:
    """A real Celery worker in this process, consuming both queues from the real
    Redis broker. Tests that use it need `django_db(transaction=True)` so the
    worker's threads see their rows."""
    from celery.contrib.testing.worker import start_worker

    from project.celery import app

    with (
        django_db_blocker.unblock(),  # type: ignore[attr-defined]
        start_worker(app, pool="threads", concurrency=8, perform_ping_check=False, queues=["io", "cpu"],
                     shutdown_timeout=30) as worker,
    ):
        yield worker


@pytest.fixture(scope="session")
def asgi_url(django_db_setup: None, django_db_blocker: object) -> Iterator[str]:
    """The dashboard under uvicorn, as in production, against the test database."""
    from project.asgi import application

    with django_db_blocker.unblock(), serving_in_thread(application, name="dashboard") as port:  # type: ignore[attr-defined]
        yield f"http://127.0.0.1:{port}"

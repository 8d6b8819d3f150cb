"""A web process serves a synchronous view's request in one thread of its own pool
(project/asgi_handler.py): the signals, the middleware and the view in that thread, no
thread started per request, and the database connection back in the pool once it is
answered; async views (the event streams) and streamed responses keep Django's path."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx2
import pytest
from django.core import signals
from django.db import connection

from devtools.asgi_thread import serving_in_thread
from project import asgi_handler
from project.asgi_handler import BoundedASGIHandler
from tests import factories
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def _connections_out() -> int:
    """How many of the pool's connections are handed out now (this test's own among them)."""
    pool = getattr(connection, "pool", None)  # PostgreSQL's wrapper has it; the base class does not
    assert pool is not None, "the settings give every process a connection pool"
    stats = pool.get_stats()
    return int(stats.get("pool_size", 0)) - int(stats.get("pool_available", 0))


@pytest.fixture
def served(team: Any, owner: Any) -> Any:
    handler = BoundedASGIHandler(in_flight=4)
    browser = client_for(owner)
    thread = factories.make_thread(team, factories.make_assistant(team))
    with serving_in_thread(handler, name="one-hop") as port, httpx2.Client(
            base_url=f"http://127.0.0.1:{port}", cookies={"sessionid": browser.cookies["sessionid"].value},
            timeout=30) as http:
        yield handler, http, thread


def test_a_page_is_served_in_one_thread_of_the_pool_with_no_thread_started_per_request(served: Any) -> None:
    handler, http, thread = served
    seen: list[tuple[str, str]] = []

    def on_started(**kwargs: Any) -> None:
        seen.append(("started", threading.current_thread().name))

    def on_finished(**kwargs: Any) -> None:
        seen.append(("finished", threading.current_thread().name))

    assert http.get(f"/threads/{thread.pk}/").status_code == 200  # the pool's threads start
    signals.request_started.connect(on_started)
    signals.request_finished.connect(on_finished)
    try:
        threads_before = threading.active_count()
        for _ in range(10):
            answer = http.get(f"/threads/{thread.pk}/")
            assert answer.status_code == 200 and thread.title in answer.text
        threads_after = threading.active_count()
    finally:
        signals.request_started.disconnect(on_started)
        signals.request_finished.disconnect(on_finished)
    assert len(seen) == 20
    # Each request's signals come from one thread of the handler's pool, in order.
    for started, finished in zip(seen[::2], seen[1::2], strict=True):
        assert started[0] == "started" and finished[0] == "finished"
        assert started[1] == finished[1] and started[1].startswith("request")
    assert threads_after <= threads_before
    assert handler.waiting == 0


def test_the_database_connection_is_back_in_the_pool_when_the_answer_is_sent(served: Any, team: Any) -> None:
    _, http, thread = served
    group: Any = factories.make_batch_group(team)
    out_before = _connections_out()
    answers = [http.get(f"/threads/{thread.pk}/").status_code for _ in range(6)]
    answers.append(http.get("/no-such-page/").status_code)
    streamed = http.get(f"/batches/{group.pk}/results.jsonl")  # read by Django's path after the view's thread
    assert answers == [200] * 6 + [404]
    assert streamed.status_code == 200 and streamed.text.count("\n") == 3 and '"custom_id": "req-0"' in streamed.text
    # Not held by the pool's threads until their next request: every one given back (the
    # download's, once the server has closed it, which may come just after the client read it).
    deadline = time.monotonic() + 5
    while _connections_out() != out_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _connections_out() == out_before


def test_the_event_stream_keeps_djangos_path_and_ends_when_the_client_leaves(served: Any, monkeypatch) -> None:
    """An async view is not run in the pool: Django's path listens for the client
    leaving, which ends the stream (a stream that never heard it would run on)."""
    _, http, thread = served
    one_hop: list[str] = []
    real = asgi_handler._BoundedSyncWork._respond

    def spy(self: Any, scope: dict[str, Any], body: Any) -> Any:
        one_hop.append(scope["path"])
        return real(self, scope, body)

    monkeypatch.setattr(asgi_handler._BoundedSyncWork, "_respond", spy)
    with http.stream("GET", f"/threads/{thread.pk}/events/") as events:
        assert events.status_code == 200
        first = next(events.iter_bytes())
        assert b"retry:" in first
    assert one_hop == []
    assert http.get(f"/threads/{thread.pk}/").status_code == 200
    assert one_hop == [f"/threads/{thread.pk}/"]

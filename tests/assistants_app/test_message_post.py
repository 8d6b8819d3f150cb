"""The message POST does only what must come before the reply: it is answered from what
it has just done (no round trip to ask Redis how it is, no read of a plain chat's server
capabilities), and two POSTs to one web process are served at the same time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
import redis

from assistants_app import services, streams
from assistants_app.models import Run, RunStatus
from tests import factories
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def _post(browser: Any, thread: Any, text: str = "Hello") -> str:
    answer = browser.post(f"/threads/{thread.pk}/messages/", {"text": text}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    return str(answer.content.decode())


def test_the_post_says_live_updates_are_paused_from_its_own_announcement_not_a_ping(team, owner, chat_connection,
                                                                                  monkeypatch) -> None:
    assistant = factories.make_assistant(team, chat_connection)
    first, second = factories.make_thread(team, assistant), factories.make_thread(team, assistant)
    browser = client_for(owner)

    def no_ping(*args: Any) -> bool:
        raise AssertionError("the POST asked Redis how it is")

    monkeypatch.setattr(streams.redis_client(), "ping", no_ping)

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis is down")

    with monkeypatch.context() as down:
        down.setattr(streams, "run_clear", unreachable)
        down.setattr(streams, "announce_run", unreachable)
        assert "Live updates are paused" in _post(browser, first)
    assert Run.objects.get(thread=first).status == RunStatus.QUEUED  # saved; the sweep sends it later
    assert "Live updates are paused" not in _post(browser, second)


def test_the_run_goes_to_a_worker_before_the_pages_are_told(team, owner, chat_connection, monkeypatch) -> None:
    """The open pages' reading of a new run (a query and a template in each web process)
    must not delay the worker's start; its stream is cleared before a worker can write it."""
    steps: list[str] = []
    monkeypatch.setattr(streams, "run_clear", lambda run_id: steps.append("cleared"))
    monkeypatch.setattr(services, "task_send", lambda name, run_id, *thread: steps.append("sent"))
    monkeypatch.setattr(streams, "announce_run", lambda thread_id, run_id, html="": steps.append("announced"))
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    _post(client_for(owner), thread)
    assert steps == ["cleared", "sent", "announced"]


def test_the_run_goes_to_a_worker_before_the_message_waits_for_search(team, owner, chat_connection,
                                                                       monkeypatch) -> None:
    steps: list[str] = []
    monkeypatch.setattr(services, "task_send", lambda name, run_id, *thread: steps.append("sent"))
    monkeypatch.setattr("search_app.pending.pending_push", lambda team_id, message_id: steps.append("search"))
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    _post(client_for(owner), thread)
    assert steps == ["sent", "search"]


def test_a_run_sent_to_a_worker_counts_as_sent_when_the_pages_cannot_be_told(team, owner, chat_connection,
                                                                           monkeypatch) -> None:
    sent: list[int] = []

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(services, "task_send", lambda name, run_id, *thread: sent.append(run_id))
    monkeypatch.setattr(streams, "announce_run", unreachable)
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    assert "Live updates are paused" in _post(client_for(owner), thread)
    run = Run.objects.get(thread=thread)
    assert sent == [run.pk]
    assert services.run_dispatch(run.pk, thread.pk, again=True)  # the sweep counts it as sent


def test_a_plain_chat_post_reads_no_server_capabilities(team, owner, chat_connection, monkeypatch) -> None:
    def read(*args: Any) -> None:
        raise AssertionError("read the connection's capabilities")

    monkeypatch.setattr(services, "connection_capabilities", read)
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    answer = _post(client_for(owner), thread)
    assert f'id="run-{Run.objects.get(thread=thread).pk}"' in answer


def test_two_posts_to_one_web_process_are_served_at_the_same_time(team, owner, chat_connection, asgi_url,
                                                                 monkeypatch) -> None:
    """Both POSTs reach the service before either leaves it: neither waits for the other
    (under uvicorn, as in production)."""
    assistant = factories.make_assistant(team, chat_connection)
    threads = [factories.make_thread(team, assistant) for _ in range(2)]
    browser = client_for(owner)
    browser.get(f"/threads/{threads[0].pk}/")
    cookies = {name: browser.cookies[name].value for name in ("sessionid", "csrftoken")}
    both_inside = threading.Barrier(2, timeout=15)
    real_post = services.thread_post_message

    def meet_the_other(**kwargs: Any) -> Any:
        both_inside.wait()  # BrokenBarrierError (a 500) when the other POST is not in here too
        return real_post(**kwargs)

    monkeypatch.setattr(services, "thread_post_message", meet_the_other)

    def post(thread: Any) -> httpx2.Response:
        with httpx2.Client(base_url=asgi_url, cookies=cookies, timeout=30) as http:
            return http.post(f"/threads/{thread.pk}/messages/", data={"text": "Hello"},
                             headers={"HX-Request": "true", "X-CSRFToken": cookies["csrftoken"]})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(post, threads))
    assert [answer.status_code for answer in answers] == [200, 200]
    for thread, answer in zip(threads, answers, strict=True):
        assert f'id="run-{Run.objects.get(thread=thread).pk}"' in answer.text


def test_past_its_bound_a_web_process_serves_the_next_request_when_one_is_done(team, owner, chat_connection,
                                                                             monkeypatch) -> None:
    """The second POST waits for its turn (no thread, no database connection) while the
    first is in its synchronous part, then is served: none of them fails for want of a
    connection in a burst."""
    from devtools.asgi_thread import serving_in_thread
    from project.asgi_handler import BoundedASGIHandler

    handler = BoundedASGIHandler(in_flight=1)
    assistant = factories.make_assistant(team, chat_connection)
    threads = [factories.make_thread(team, assistant) for _ in range(2)]
    browser = client_for(owner)
    browser.get(f"/threads/{threads[0].pk}/")
    cookies = {name: browser.cookies[name].value for name in ("sessionid", "csrftoken")}
    inside: list[str] = []
    real_post = services.thread_post_message

    def one_at_a_time(**kwargs: Any) -> Any:
        inside.append("in")
        if len(inside) == 1:  # the first: stay until the second is seen waiting for its turn
            deadline = time.monotonic() + 15
            while handler.waiting != 1:
                assert time.monotonic() < deadline, "the second POST never waited for its turn"
                time.sleep(0.01)
        try:
            return real_post(**kwargs)
        finally:
            inside.append("out")

    monkeypatch.setattr(services, "thread_post_message", one_at_a_time)
    with serving_in_thread(handler, name="bounded") as port, ThreadPoolExecutor(2) as pool:
        def post(thread: Any) -> httpx2.Response:
            with httpx2.Client(base_url=f"http://127.0.0.1:{port}", cookies=cookies, timeout=30) as http:
                return http.post(f"/threads/{thread.pk}/messages/", data={"text": "Hello"},
                                 headers={"HX-Request": "true", "X-CSRFToken": cookies["csrftoken"]})

        answers = list(pool.map(post, threads))
    assert [answer.status_code for answer in answers] == [200, 200]
    assert inside == ["in", "out", "in", "out"]
    assert handler.waiting == 0



def test_two_messages_posted_to_a_thread_at_the_same_moment_start_one_reply(team, owner, chat_connection,
                                                                           monkeypatch) -> None:
    """Both POSTs wait on the thread's row (held here, as a slow first POST would hold it);
    once it is free, the one that takes it second sees the other's run and is refused, and
    nothing of it is stored."""
    from django.db import connections, transaction

    from assistants_app.models import Message, Thread

    monkeypatch.setattr(services, "task_send", lambda *args: None)  # no worker takes the run
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    clients = [client_for(owner), client_for(owner)]

    def post(browser: Any, text: str) -> str:
        try:
            return _post(browser, thread, text)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        with transaction.atomic():
            Thread.objects.filter(pk=thread.pk).update(title="held")
            answers = [pool.submit(post, browser, text) for browser, text in zip(clients, ("one", "two"), strict=True)]
            time.sleep(0.5)  # both POSTs are waiting on the lock by now
            assert not any(answer.done() for answer in answers)
        pages = [answer.result(timeout=15) for answer in answers]
    assert sum("still being written" in page for page in pages) == 1
    assert Run.objects.filter(thread=thread).count() == 1
    assert list(Message.objects.filter(thread=thread).values_list("text", flat=True)) in (["one"], ["two"])

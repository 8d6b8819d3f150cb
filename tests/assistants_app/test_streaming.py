"""The thread page's SSE endpoint and the live side of a run: replay, resume from
Last-Event-ID, runs announced to open pages, several viewers, Stop mid-stream, and
retries that honour retry-after."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from django.test import AsyncClient, Client

from assistants_app import streams
from assistants_app.models import Message, Run, RunStatus
from assistants_app.services import run_cancel, thread_post_message
from project.providers.models import ProviderKind
from sandbox.testing import running_sandbox
from tests.assistants_app.conftest import ended_stream_entries, wait_for_run
from tests.factories import add_member, make_assistant, make_connection, make_thread, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def parse_sse(raw: str) -> list[dict[str, str]]:
    """The named events (position-only and retry blocks left out)."""
    events = []
    for block in raw.split("\n\n"):
        if "event: " not in block:
            continue
        event: dict[str, str] = {"event": "message", "data": ""}
        data = []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "data":
                data.append(value)
            elif field in ("event", "id"):
                event[field] = value
        event["data"] = "\n".join(data)
        events.append(event)
    return events


def _text_of(events: list[dict[str, str]], run_id: int) -> str:
    html = "".join(e["data"] for e in events if e["event"] == f"delta-{run_id}")
    return unescape(re.sub(r"</?span>", "", html))


async def _read_until(client: AsyncClient, url: str, last_event: str, headers: dict[str, str] | None = None,
                      into: list[str] | None = None) -> str:
    """What the thread's stream sends up to and including the first event whose name
    starts with `last_event` (the stream itself stays open as long as the page does);
    `into` shows it as it arrives."""
    response = await client.get(url, headers=headers or {})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    content = response.streaming_content  # type: ignore[attr-defined]
    received = into if into is not None else []

    async def read() -> None:
        async for chunk in content:
            received.append(chunk.decode())
            text = "".join(received)
            if f"event: {last_event}" in text and text.endswith("\n\n"):
                return

    try:
        await asyncio.wait_for(read(), timeout=15)
    finally:
        await content.aclose()
    return "".join(received)


@contextmanager
def page_reading(user: Any, url: str, last_event: str) -> Iterator[tuple[list[str], Future[str]]]:
    """A page holding its event stream open while the test acts, read in a thread of its
    own up to `last_event` (_read_until): what has arrived so far, and the whole text."""
    received: list[str] = []

    async def read() -> str:
        client = AsyncClient()
        await client.aforce_login(user)
        return await _read_until(client, url, last_event, into=received)

    with ThreadPoolExecutor(max_workers=1) as pool:
        yield received, pool.submit(lambda: asyncio.run(read()))


def until_received(received: list[str], text: str, failure: str, *, timeout: float = 10,
                   reading: Future[str] | None = None) -> None:
    """Wait until the page has received `text`; `reading` must not have ended first."""
    deadline = time.monotonic() + timeout
    while text not in "".join(received):
        assert time.monotonic() < deadline and not (reading is not None and reading.done()), failure
        time.sleep(0.01)


def run_async[T](make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run in a thread of its own: Playwright's sync API keeps a loop running in this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _running_run(team, owner, connection) -> Run:
    assistant = make_assistant(team, connection)
    thread = make_thread(team, assistant)
    version = assistant.current_version
    assert version is not None
    return Run.objects.create(thread=thread, team=team, assistant=assistant, version=version, model=version.model,
                              status=RunStatus.RUNNING)


def test_a_fresh_page_gets_a_replay_and_a_reconnect_resumes_after_its_last_event_id(team, owner) -> None:
    run = _running_run(team, owner, None)
    ids = [streams.publish(run.pk, "delta", piece) for piece in ("Hel", "lo ", "<b>wor", "ld</b>")]
    streams.publish_end(run.pk)
    url = f"/threads/{run.thread_id}/events/"

    async def read_twice() -> tuple[str, str]:
        client = AsyncClient()
        await client.aforce_login(owner)
        return (await _read_until(client, url, f"done-{run.pk}"),
                await _read_until(client, url, f"done-{run.pk}", {"Last-Event-ID": f"0-0;{run.pk}={ids[1]}"}))

    first, second = run_async(read_twice)
    fresh = parse_sse(first)
    assert fresh[0]["event"] == f"reset-{run.pk}"
    assert _text_of(fresh, run.pk) == "Hello <b>world</b>"
    assert "&lt;b&gt;" in "".join(e["data"] for e in fresh)  # model text is escaped, never HTML
    assert fresh[-1]["event"] == f"done-{run.pk}" and f'id="run-{run.pk}"' in fresh[-1]["data"]

    resumed = parse_sse(second)
    assert _text_of(resumed, run.pk) == "<b>world</b>"  # nothing repeated, nothing lost
    assert [e["event"] for e in resumed][-1] == f"done-{run.pk}"
    assert all(e.get("id") for e in resumed if e["event"].startswith("delta-"))


def test_a_page_that_names_its_feed_position_gets_its_active_runs_replayed(team, owner) -> None:
    # The page's stream (?feed=) reads the active runs with the thread's check, not after the feed.
    run = _running_run(team, owner, None)
    for piece in ("Hel", "lo"):
        streams.publish(run.pk, "delta", piece)

    async def read() -> str:
        client = AsyncClient()
        await client.aforce_login(owner)
        return await _read_until(client, f"/threads/{run.thread_id}/events/?feed=0-0", f"delta-{run.pk}")

    events = parse_sse(run_async(read))
    assert events[0]["event"] == f"reset-{run.pk}" and _text_of(events, run.pk) == "Hello"


def test_the_event_stream_needs_a_logged_in_member_of_a_team(team, owner) -> None:
    run = _running_run(team, owner, None)
    teamless = make_user("teamless")

    async def statuses() -> list[int]:
        anonymous, outsider = AsyncClient(), AsyncClient()
        await outsider.aforce_login(teamless)
        return [(await client.get(f"/threads/{run.thread_id}/events/")).status_code for client in (anonymous, outsider)]

    assert run_async(statuses) == [403, 403]


def test_a_reply_that_ends_between_the_page_and_its_stream_is_ended_on_the_page(team, owner) -> None:
    # #13 item 12: seen once in nine reloads, "writing… / Stop" stayed after the reply was done.
    run = _running_run(team, owner, None)
    page = Client()
    page.force_login(owner)
    html = page.get(f"/threads/{run.thread_id}/").content.decode()
    assert "writing…" in html
    stream_url = unescape(re.search(r'sse-connect="([^"]+)"', html)[1])  # type: ignore[index]
    # The reply is saved and the run ends after the page was rendered, before its stream connects.
    Message.objects.create(thread_id=run.thread_id, team=team, role="assistant", text="All done here.", run=run,
                           version=run.version)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    streams.publish(run.pk, "delta", "All done here.")
    streams.publish_end(run.pk)

    async def read() -> str:
        client = AsyncClient()
        await client.aforce_login(owner)
        return await _read_until(client, stream_url, f"done-{run.pk}")

    events = parse_sse(run_async(read))
    ended = [e for e in events if e["event"] == f"done-{run.pk}"]
    assert ended and "All done here." in ended[0]["data"] and "writing…" not in ended[0]["data"]


def test_a_stream_renders_only_this_threads_runs_whatever_the_page_says_it_shows(team, owner) -> None:
    theirs = _running_run(team, owner, None)  # another thread's run, made first: it would be sent first
    mine = _running_run(team, owner, None)
    Run.objects.filter(pk__in=[theirs.pk, mine.pk]).update(status=RunStatus.SUCCEEDED)
    url = f"/threads/{mine.thread_id}/events/?live={theirs.pk},{mine.pk},abc,{'9' * 30}"

    async def read() -> str:
        client = AsyncClient()
        await client.aforce_login(owner)
        return await _read_until(client, url, f"done-{mine.pk}")

    received = run_async(read)
    assert f"done-{mine.pk}" in received and f"done-{theirs.pk}" not in received


def test_a_page_open_before_a_post_is_told_of_the_run_and_follows_it_to_the_end(team, owner, monkeypatch) -> None:
    # The test plays the worker: a real one (left running by other tests) must not take the run.
    from assistants_app.tasks import run_execute_task

    monkeypatch.setattr(run_execute_task, "delay", lambda *args: None)
    connection = make_connection(team, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection))
    colleague = make_user("colleague")
    add_member(team, colleague)
    page = Client()
    page.force_login(colleague)
    html = page.get(f"/threads/{thread.pk}/").content.decode()
    url = unescape(re.search(r'sse-connect="([^"]+)"', html)[1])  # type: ignore[index]
    assert url.startswith(f"/threads/{thread.pk}/events/?feed=")

    with page_reading(colleague, url, "done-") as (received, reading):
        until_received(received, "id: ", "the page's stream did not open")  # it is open and has caught up
        # Someone else posts after the page was rendered; then the worker writes the reply.
        message, run = thread_post_message(thread=thread, actor=owner, text="Anyone <there>?")
        until_received(received, "event: run\n", "the page was not told of the run")
        for piece in ("Yes, ", "here."):
            streams.publish(run.pk, "delta", piece)
        Message.objects.create(thread=thread, team=team, role="assistant", text="Yes, here.", run=run,
                               version=run.version)
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
        streams.publish_end(run.pk)
        events = parse_sse(reading.result(timeout=20))
    names = [e["event"] for e in events]
    assert names[0] == "run" and names[-1] == f"done-{run.pk}" and set(names[1:-1]) == {f"delta-{run.pk}"}
    started = events[0]["data"]
    assert f'id="m-{message.pk}"' in started and "Anyone &lt;there&gt;?" in started and owner.username in started
    assert f'sse-swap="delta-{run.pk}"' in started  # the live block listens for this run's text
    assert _text_of(events, run.pk) == "Yes, here."
    assert "Yes, here." in events[-1]["data"] and "succeeded" in events[-1]["data"]


def test_a_quiet_page_keeps_its_stream_past_the_redis_clients_default_timeout(team, owner, monkeypatch) -> None:
    # redis-py's sockets time out after 5 s by default; an idle page blocks longer than that.
    from assistants_app import views_stream

    monkeypatch.setattr(views_stream, "BLOCK_MS", 6_000)
    thread = make_thread(team, make_assistant(team, make_connection(team, kind=ProviderKind.SANDBOX)))
    with page_reading(owner, f"/threads/{thread.pk}/events/", "run") as (received, reading):
        # A whole quiet BLOCK went by, the stream still open.
        until_received(received, ": still here", "the stream ended or said nothing", timeout=12, reading=reading)
        _, run = thread_post_message(thread=thread, actor=owner, text="Still there?")
        events = parse_sse(reading.result(timeout=10))
    assert events[-1]["event"] == "run" and f'id="run-{run.pk}"' in events[-1]["data"]


def test_the_event_stream_of_another_teams_thread_is_not_found(team, owner, other_team) -> None:
    run = _running_run(other_team, owner, None)

    async def read() -> int:
        client = AsyncClient()
        await client.aforce_login(owner)
        return (await client.get(f"/threads/{run.thread_id}/events/")).status_code

    assert run_async(read) == 404


def test_a_forged_last_event_id_does_not_follow_another_teams_run(team, owner, other_team, monkeypatch) -> None:
    from assistants_app import views_stream

    monkeypatch.setattr(views_stream, "BLOCK_MS", 300)
    theirs = _running_run(other_team, make_user("stranger"), None)
    streams.publish(theirs.pk, "delta", "their secret")
    Message.objects.create(thread=theirs.thread, team=other_team, role="assistant", text="their saved secret",
                           run=theirs, version=theirs.version)
    Run.objects.filter(pk=theirs.pk).update(status=RunStatus.SUCCEEDED)  # ended: a follower would render it
    streams.publish_end(theirs.pk)
    mine = make_thread(team, make_assistant(team, make_connection(team, kind=ProviderKind.SANDBOX)))

    async def read() -> str:
        client = AsyncClient()
        await client.aforce_login(owner)
        response = await client.get(f"/threads/{mine.pk}/events/", headers={"Last-Event-ID": f"0-0;{theirs.pk}=0-0"})
        assert response.status_code == 200
        received = ""
        content = response.streaming_content  # type: ignore[attr-defined]
        try:
            async for chunk in content:
                received += chunk.decode()
                if ": still here" in received:  # a whole quiet BLOCK went by
                    break
        finally:
            await content.aclose()
        return received

    received = run_async(read)
    assert ": still here" in received
    assert "secret" not in received and f"-{theirs.pk}" not in received and f"{theirs.pk}=" not in received


def _watch(base: str, session: str, thread_id: int, run_id: int, into: list[str]) -> None:
    received = ""
    with httpx2.Client(base_url=base, cookies={"sessionid": session}, timeout=30) as http, \
            http.stream("GET", f"/threads/{thread_id}/events/") as response:
        for chunk in response.iter_text():
            received += chunk
            if f"event: done-{run_id}\n" in received and received.endswith("\n\n"):
                break
    into.append(received)


@pytest.mark.usefixtures("celery_worker_session")
def test_several_viewers_over_asgi_all_see_the_whole_reply_as_it_streams(team, owner, paced_sandbox, asgi_url) -> None:
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection))
    colleague = make_user()
    add_member(team, colleague)
    sessions = []
    for user in (owner, colleague):
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)
    _, run = thread_post_message(thread=thread, actor=owner, text="write 300 words")
    seen: list[list[str]] = [[], []]
    watchers = [threading.Thread(target=_watch, args=(asgi_url, session, thread.pk, run.pk, out))
                for session, out in zip(sessions, seen, strict=True)]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join(30)
    run = wait_for_run(run.pk)
    reply = Message.objects.get(run=run, role="assistant").text
    assert len(reply.split()) == 300
    for raw in seen:
        events = parse_sse(raw[0])
        assert _text_of(events, run.pk) == reply
        assert events[-1]["event"] == f"done-{run.pk}" and reply.split()[0] in events[-1]["data"]


@pytest.mark.usefixtures("celery_worker_session")
def test_stop_ends_a_streaming_reply_and_keeps_what_was_written(team, owner, paced_sandbox) -> None:
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="write 3000 words")
    deadline = time.monotonic() + 10
    while not streams.redis_client().xlen(streams.stream_key(run.pk)):
        assert time.monotonic() < deadline, "no delta arrived"
        time.sleep(0.02)
    run_cancel(run=Run.objects.get(pk=run.pk), actor=owner)
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.CANCELLED and run.error == "Stopped by a person."
    partial = Message.objects.get(run=run, role="assistant").text
    assert 0 < len(partial.split()) < 3000
    assert run.total_ms is not None and run.total_ms < 6000


@pytest.fixture
def flaky_sandbox(tmp_path: Path) -> Iterator[str]:
    # The sandbox draws its faults from random.Random(1234): at a 50% rate the draws
    # go pass, 429, 429, pass. The first request is spent by the test itself.
    with running_sandbox(tmp_path, fault_rate_429=0.5) as url:
        openai.OpenAI(base_url=url, api_key="sk-test").models.list()
        yield url


@pytest.mark.usefixtures("celery_worker_session")
def test_rate_limits_are_retried_after_the_time_the_provider_asks_for(team, owner, chat_connection,
                                                                      flaky_sandbox) -> None:
    # The team's default connection is the other sandbox (chat_connection, first by name): what
    # works through the default one (embedding the message for search) draws none of the
    # flaky sandbox's faults.
    connection = make_connection(team, base_url=flaky_sandbox, kind=ProviderKind.SANDBOX,
                                 name="Sandbox (flaky)")
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: made it")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert Message.objects.get(run=run, role="assistant").text == "made it"
    assert run.total_ms is not None and run.total_ms >= 2000  # two waits of retry-after: 1 s


@pytest.mark.usefixtures("celery_worker_session")
def test_a_provider_that_keeps_refusing_fails_the_run_with_its_reason(team, owner, tmp_path) -> None:
    with running_sandbox(tmp_path, fault_rate_429=1.0) as url:
        connection = make_connection(team, base_url=url, kind=ProviderKind.SANDBOX)
        thread = make_thread(team, make_assistant(team, connection))
        message, run = thread_post_message(thread=thread, actor=owner, text="hello")
        run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert "Rate limited" in run.error
    assert Message.objects.filter(pk=message.pk).exists()


@pytest.fixture
def breaking_sandbox(tmp_path: Path) -> Iterator[str]:
    # Drawn from random.Random(1234) at a 50% rate: pass, break, break, pass. The first
    # completion is the test's own, so the run's first two attempts break midway.
    with running_sandbox(tmp_path, fault_rate_break_stream=0.5) as url:
        client = openai.OpenAI(base_url=url, api_key="sk-test")
        client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
        yield url


@pytest.mark.usefixtures("celery_worker_session")
def test_a_reply_whose_stream_breaks_midway_is_retried_and_shown_once(team, owner, breaking_sandbox) -> None:
    connection = make_connection(team, base_url=breaking_sandbox, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: made it through in the end")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
    assert list(Message.objects.filter(run=run).values_list("text", flat=True)) == ["made it through in the end"]
    entries = ended_stream_entries(run.pk)
    kinds = [fields[b"t"].decode() for _, fields in entries]
    # Each broken attempt had shown some text; a reset tells viewers to drop it.
    assert kinds.count("reset") == 2 and kinds.index("delta") < kinds.index("reset")
    shown, _, ended = streams.fold(entries)
    assert ended and "".join(data for kind, data in shown if kind == "delta") == "made it through in the end"


@pytest.mark.usefixtures("celery_worker_session")
def test_an_error_event_in_the_middle_of_a_reply_is_retried_then_fails_the_run_with_it(team, owner, tmp_path,
                                                                                      monkeypatch) -> None:
    from assistants_app import run_attempt, run_loop

    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)  # the worker runs in this process
    with running_sandbox(tmp_path, fault_rate_stream_error=1.0) as url:
        connection = make_connection(team, base_url=url, kind=ProviderKind.SANDBOX)
        thread = make_thread(team, make_assistant(team, connection))
        message, run = thread_post_message(thread=thread, actor=owner, text="write 100 words")
        run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error == ("The provider failed in the middle of the reply: "
                         "The server had an error while processing your request. Sorry about that!")
    entries = ended_stream_entries(run.pk)
    notes = [fields[b"d"].decode() for _, fields in entries if fields[b"t"] == b"note"]
    assert len(notes) == run_loop.MAX_ATTEMPTS_PER_CALL - 1 and all("Retrying" in note for note in notes)
    assert Message.objects.filter(pk=message.pk).exists() and not Message.objects.filter(run=run).exists()


@pytest.mark.usefixtures("celery_worker_session")
def test_a_stream_that_breaks_on_every_attempt_fails_saying_the_connection_broke(team, owner, tmp_path,
                                                                                 monkeypatch) -> None:
    from assistants_app import run_attempt

    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)  # the worker runs in this process
    with running_sandbox(tmp_path, fault_rate_break_stream=1.0) as url:
        connection = make_connection(team, base_url=url, kind=ProviderKind.SANDBOX)
        thread = make_thread(team, make_assistant(team, connection))
        _, run = thread_post_message(thread=thread, actor=owner, text="write 100 words")
        run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    # It was reached and began the reply: not "the host is unreachable".
    assert run.error.startswith("The connection to the provider broke in the middle of the reply"), run.error

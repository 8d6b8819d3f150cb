"""The message POST sends its run to a worker as soon as the run's row is written, before
its transaction commits, so the worker's start overlaps the rest of the POST; the worker's
claim waits for the POST's lock on the thread and so reads the run once it is committed,
or nothing when the post was refused and rolled back."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections, transaction

from assistants_app import services
from assistants_app.models import Message, Role, Run, RunStatus, Thread
from assistants_app.run_loop import Claimed, run_claim
from project.spend.budgets import BudgetExceeded
from tests import factories
from tests.assistants_app.conftest import wait_for_run
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def _claim_in_another_connection(run_id: int, thread_id: int) -> Claimed | None:
    try:
        return run_claim(run_id, posted_in=thread_id)
    finally:
        connections.close_all()


def _run_seen_elsewhere(run_id: int) -> bool:
    """Whether another connection (as a worker's) sees the run yet."""
    with ThreadPoolExecutor(1) as pool:
        def look() -> bool:
            try:
                return Run.objects.filter(pk=run_id).exists()
            finally:
                connections.close_all()
        return pool.submit(look).result(timeout=10)


def test_the_run_is_sent_before_the_post_commits_and_names_its_thread(team, owner, chat_connection,
                                                                      monkeypatch) -> None:
    sent: list[tuple[Any, ...]] = []

    def send(name: str, *args: Any) -> None:
        sent.append((name, *args, _run_seen_elsewhere(int(args[0]))))

    monkeypatch.setattr(services, "task_send", send)
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    answer = client_for(owner).post(f"/threads/{thread.pk}/messages/", {"text": "Hello"}, HTTP_HX_REQUEST="true")

    assert answer.status_code == 200
    run = Run.objects.get(thread=thread)
    # Sent while the run was not yet visible to any other connection: before the commit.
    assert sent == [("assistants_app.run_execute", run.pk, thread.pk, False)]
    assert run.status == RunStatus.QUEUED


def test_a_claim_sent_early_waits_for_the_post_to_commit_then_takes_the_run(team, chat_connection) -> None:
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    version = thread.assistant.current_version
    assert version is not None
    with ThreadPoolExecutor(1) as pool, transaction.atomic():
        # As the POST does: the thread's row locked, then the message and the run written.
        Thread.objects.filter(pk=thread.pk).update(title="Hello")
        message = factories.make_message(thread, "Hello")
        run = Run.objects.create(thread=thread, team=team, assistant=thread.assistant, version=version,
                                 user_message=message, model=version.model)
        claim: Future[Claimed | None] = pool.submit(_claim_in_another_connection, run.pk, thread.pk)
        with pytest.raises(TimeoutError):
            claim.result(timeout=0.5)  # waits on the thread's lock, not giving up on a row it cannot see
        # The transaction commits as this block ends; the claim goes on.
    claimed = claim.result(timeout=10)
    assert claimed is not None and claimed.run.pk == run.pk
    assert claimed.run.user_message_id == message.pk
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_a_claim_sent_early_for_a_refused_post_takes_nothing(team, owner, chat_connection, monkeypatch) -> None:
    """A post refused after its run was sent (a spending limit): the transaction is rolled back,
    the worker's claim finds no run, and nothing of the post is left."""
    claims: list[Future[Claimed | None]] = []
    pool = ThreadPoolExecutor(1)

    def send(name: str, run_id: int, thread_id: int) -> None:
        claims.append(pool.submit(_claim_in_another_connection, run_id, thread_id))

    def refuse(**kwargs: Any) -> None:
        raise BudgetExceeded("The team's monthly limit is used up.")

    monkeypatch.setattr(services, "task_send", send)
    monkeypatch.setattr(services, "run_budget_reserve", refuse)
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    answer = client_for(owner).post(f"/threads/{thread.pk}/messages/", {"text": "Hello"}, HTTP_HX_REQUEST="true")

    assert "monthly limit is used up" in answer.content.decode()
    assert len(claims) == 1
    assert claims[0].result(timeout=10) is None
    pool.shutdown()
    assert not Run.objects.filter(thread=thread).exists() and not Message.objects.filter(thread=thread).exists()


def test_inside_a_callers_transaction_the_run_is_sent_when_it_commits(team, chat_connection, monkeypatch) -> None:
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(services, "task_send", lambda name, *args: sent.append(args))
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    with transaction.atomic():
        _, run = services.thread_post_message(thread=thread, actor=None, text="Hello")
        assert sent == []  # its commit is the caller's, and may never come
    assert sent == [(run.pk,)]


def test_a_run_whose_worker_arrives_before_the_commit_is_answered_end_to_end(team, owner, chat_connection,
                                                                          celery_worker_session) -> None:
    """Through a real worker: the reply is written although the worker was sent the run before
    the POST committed (the commit is held back here so the worker surely arrives first)."""
    real_reserve = services.run_budget_reserve

    def slow_reserve(**kwargs: Any) -> None:
        time.sleep(0.5)  # the worker reaches its claim meanwhile, and waits on the thread's lock
        real_reserve(**kwargs)

    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "run_budget_reserve", slow_reserve)
        answer = client_for(owner).post(f"/threads/{thread.pk}/messages/", {"text": "Hello"}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    run = wait_for_run(Run.objects.get(thread=thread).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 1
    assert Message.objects.filter(thread=thread, role=Role.ASSISTANT).exclude(text="").exists()


def test_a_run_sent_early_starts_from_the_history_read_with_its_claim(team, owner, chat_connection, monkeypatch,
                                                                    django_assert_num_queries) -> None:
    """The claim of a run just posted reads the history's newest messages in its own round
    trip: the history the worker sends is the one the ORM builds (a tool result still waiting
    for a person and an empty reply left out), with no query of its own."""
    from functools import partial

    from assistants_app.conversation import build_history
    from assistants_app.run_loop import _execute
    from project.providers.connection_facts import connection_model_facts_given

    monkeypatch.setattr(services, "task_send", lambda *args: None)
    thread = factories.make_thread(team, factories.make_assistant(team, chat_connection))
    factories.make_message(thread, "First question")
    factories.make_message(thread, "", role=Role.ASSISTANT)  # an empty reply: left out
    factories.make_message(thread, "Earlier answer", role=Role.ASSISTANT,
                           tool_calls=[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}])
    factories.make_message(thread, "still waiting", role=Role.TOOL, pending=True)  # not sendable yet
    _, run = services.thread_post_message(thread=thread, actor=owner, text="And now?")

    claimed = run_claim(run.pk, posted_in=thread.pk)
    assert claimed is not None and isinstance(claimed.execute, partial) and claimed.execute.func is _execute
    first_page = claimed.execute.keywords["first_page"]
    facts = connection_model_facts_given(claimed.run.assistant.connection, claimed.run.model, claimed.saved_facts)
    with django_assert_num_queries(0):
        prefetched = build_history(thread=claimed.run.thread, version=claimed.run.version, facts=facts,
                                   first_page=first_page)
    assert prefetched == build_history(thread=claimed.run.thread, version=claimed.run.version, facts=facts)
    assert [m["content"] for m in prefetched.messages] == ["First question", "Earlier answer", "And now?"]

"""Chat's spend in the ledger, on a real worker against the sandbox: a reply, a reply
stopped midway, attempts whose stream broke, and a thread deleted afterwards; a hard
budget limit refusing a reply."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from assistants_app import streams
from assistants_app.models import Message, Run, RunStatus
from assistants_app.reply_budget import output_budget
from assistants_app.services import ChatError, run_cancel, thread_delete, thread_post_message
from project.providers.connection_facts import connection_model_facts_save
from project.providers.model_facts import model_facts
from project.providers.models import ProviderKind
from project.spend.budgets import budget_save
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature, SpendEntry, SpendReservation
from project.teams.templatetags.display import format_usd
from sandbox.testing import running_sandbox
from tests.assistants_app.conftest import wait_for_run
from tests.conftest import client_for
from tests.factories import make_assistant, make_connection, make_thread


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker_session")
def test_a_reply_is_in_the_ledger_and_stays_there_when_its_thread_is_deleted(team, owner, chat_connection) -> None:
    assistant = make_assistant(team, chat_connection, model="gpt-4.1-mini", name="Helpdesk")
    thread = make_thread(team, assistant)
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Counted once.")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED
    entry = SpendEntry.objects.get(team=team, source_kind="run", source_id=run.pk)
    assert (entry.feature, entry.person_id, entry.person_name, entry.assistant_name, entry.version_number,
            entry.model) == (Feature.CHAT, owner.pk, owner.username, "Helpdesk", 1, "gpt-4.1-mini")
    assert (entry.input_tokens, entry.output_tokens, entry.calls) == (run.input_tokens, run.output_tokens, 1)
    assert entry.cost_usd is not None and entry.cost_usd == run.cost_usd and entry.cost_usd > 0
    assert not entry.estimated
    assert entry.connection_id == chat_connection.pk
    assert not SpendReservation.objects.exists()  # no hard limit: nothing reserved, nothing left over

    thread_delete(thread=thread, actor=owner)
    assert not Run.objects.filter(pk=run.pk).exists()
    assert SpendEntry.objects.filter(pk=entry.pk).exists()
    html = client_for(owner).get("/usage/").content.decode()
    assert f"<strong>{format_usd(entry.cost_usd)}</strong>" in html
    assert "Helpdesk" in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker_session")
def test_a_reply_stopped_midway_is_billed_for_its_prompt_and_what_streamed(team, owner, paced_sandbox) -> None:
    connection = make_connection(team, base_url=paced_sandbox, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4.1-mini"))
    _, run = thread_post_message(thread=thread, actor=owner, text="write 2000 words")
    deadline = time.monotonic() + 10
    while True:
        shown, _, _ = streams.fold(streams.redis_client().xrange(streams.stream_key(run.pk)))
        if len("".join(data for kind, data in shown if kind == "delta").split()) >= 40:
            break
        assert time.monotonic() < deadline, "no reply streamed"
        time.sleep(0.02)
    run.refresh_from_db()
    run_cancel(run=run, actor=owner)
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.CANCELLED
    entry = SpendEntry.objects.get(source_kind="run", source_id=run.pk)
    assert entry.estimated and entry.calls == 1
    assert entry.input_tokens > 0 and 40 <= entry.output_tokens < 2000
    assert entry.cost_usd is not None and entry.cost_usd > 0
    assert (run.input_tokens, run.output_tokens, run.usage_estimated) == (entry.input_tokens, entry.output_tokens, True)


@pytest.fixture
def breaking_sandbox(tmp_path: Path) -> Iterator[str]:
    # As in test_streaming: random.Random(1234) at 50% gives pass, break, break, pass; the
    # first completion is this fixture's, so the run's first two attempts break midway.
    with running_sandbox(tmp_path, fault_rate_break_stream=0.5) as url:
        client = openai.OpenAI(base_url=url, api_key="sk-test")
        client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
        yield url


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker_session")
def test_attempts_whose_stream_broke_are_billed_with_the_one_that_succeeded(team, owner, breaking_sandbox) -> None:
    connection = make_connection(team, base_url=breaking_sandbox, kind=ProviderKind.SANDBOX)
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4.1-mini"))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: made it through in the end")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED
    entry = SpendEntry.objects.get(source_kind="run", source_id=run.pk)
    assert entry.calls == 3 and entry.estimated  # two broken (counted by us) and the one that finished
    single_prompt = Message.objects.get(run=None, thread=thread).token_count
    assert entry.input_tokens >= 3 * single_prompt


@pytest.mark.django_db
def test_a_hard_limit_refuses_a_reply_before_anything_is_stored(team, owner) -> None:
    connection = make_connection(team, kind=ProviderKind.SANDBOX, name="Sandbox")
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4.1-mini"))
    budget_save(team=team, connection=None, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="gpt-4.1-mini", source_kind="run", key="old",
                           input_tokens=2_500_000))  # $1.00
    with pytest.raises(ChatError, match=r"the team's budget of \$1.00 a month is used up"):
        thread_post_message(thread=thread, actor=owner, text="hello")
    assert not Run.objects.filter(thread=thread).exists() and not Message.objects.filter(thread=thread).exists()
    # Through the page: the composer shows the reason.
    response = client_for(owner).post(f"/threads/{thread.pk}/messages/", {"text": "hello"}, HTTP_HX_REQUEST="true")
    assert "used up" in response.content.decode()


@pytest.mark.django_db
def test_under_a_hard_limit_a_reply_reserves_its_most_cost_and_a_stop_releases_it(team, owner) -> None:
    connection = make_connection(team, kind=ProviderKind.SANDBOX, name="Sandbox")
    thread = make_thread(team, make_assistant(team, connection, model="gpt-4.1-mini"))
    budget_save(team=team, connection=None, amount_usd=Decimal("5"), thresholds=[], hard_limit=True, actor=owner)
    _, run = thread_post_message(thread=thread, actor=owner, text="hello")
    reservation = SpendReservation.objects.get(key=f"run:{run.pk}")
    # The thread's history (summed by the database in the reserving statement) and the
    # output budget, at the model's prices.
    facts = model_facts("gpt-4.1-mini")
    output = output_budget(run.version, facts)
    history = sum(Message.objects.filter(thread=thread).values_list("token_count", flat=True))
    assert history > 0
    input_price, output_price = facts.price("input"), facts.price("output")
    assert input_price is not None and output_price is not None
    expected = (history * input_price + output * output_price) / 1_000_000
    assert reservation.amount_usd == expected.quantize(Decimal("0.000001"))
    run_cancel(run=run, actor=owner)
    assert not SpendReservation.objects.filter(key=f"run:{run.pk}").exists()


def test_a_replys_hold_is_priced_as_its_ledger_row_will_be_by_the_connections_prices(team, owner) -> None:
    # A model the catalog does not price, priced on its connection, is held at that price
    # (it was held at $0, so a hard limit let any number of replies through); a model set
    # free on its connection holds nothing (it was held at the catalog's price).
    connection = make_connection(team, kind=ProviderKind.SANDBOX, name="Sandbox")
    connection_model_facts_save(connection=connection, actor=owner, model_id="house-model", context_window=8192,
                                max_output_tokens=1000, input_price=Decimal("2"), cached_input_price=None,
                                output_price=Decimal("10"), free=False, encoding="")
    connection_model_facts_save(connection=connection, actor=owner, model_id="gpt-4.1-mini", context_window=None,
                                max_output_tokens=None, input_price=None, cached_input_price=None,
                                output_price=None, free=True, encoding="")
    budget_save(team=team, connection=None, amount_usd=Decimal("5"), thresholds=[], hard_limit=True, actor=owner)

    priced = make_thread(team, make_assistant(team, connection, model="house-model", max_output_tokens=1000))
    _, run = thread_post_message(thread=priced, actor=owner, text="hello")
    history = sum(Message.objects.filter(thread=priced).values_list("token_count", flat=True))
    expected = (history * Decimal("2") + 1000 * Decimal("10")) / 1_000_000
    assert SpendReservation.objects.get(key=f"run:{run.pk}").amount_usd == expected.quantize(Decimal("0.000001"))

    free = make_thread(team, make_assistant(team, connection, model="gpt-4.1-mini"))
    _, run = thread_post_message(thread=free, actor=owner, text="hello")
    assert SpendReservation.objects.get(key=f"run:{run.pk}").amount_usd == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker_session")
def test_a_run_that_failed_after_streaming_is_billed_for_every_attempt(team, owner, tmp_path, monkeypatch) -> None:
    from assistants_app import run_attempt, run_loop

    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)  # the worker runs in this process
    with running_sandbox(tmp_path, fault_rate_break_stream=1.0) as url:
        connection = make_connection(team, base_url=url, kind=ProviderKind.SANDBOX)
        thread = make_thread(team, make_assistant(team, connection, model="gpt-4.1-mini"))
        _, run = thread_post_message(thread=thread, actor=owner, text="echo: this never arrives whole")
        run = wait_for_run(run.pk)
    assert run.status == RunStatus.FAILED
    entry = SpendEntry.objects.get(source_kind="run", source_id=run.pk)
    assert entry.calls == run_loop.MAX_ATTEMPTS_PER_CALL and entry.estimated
    assert entry.input_tokens > 0 and entry.cost_usd is not None and entry.cost_usd > 0

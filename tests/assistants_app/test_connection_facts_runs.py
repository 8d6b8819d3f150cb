"""Runs sized and priced by the connection's facts for its model (issue #15, items 4 and 6)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from assistants_app.models import Message, RunStatus
from assistants_app.services import thread_post_message
from project.providers.connection_facts import connection_model_facts_save
from tests.assistants_app.conftest import wait_for_run
from tests.compatible import LLAMA_MODEL, llamacpp
from tests.factories import make_assistant, make_message, make_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


def _long_thread(team, connection):
    """Six earlier messages of about 700 tokens: 4,200 tokens, over a 4,096-token server's window
    but well within the 8,192 tokens assumed for a model nobody described."""
    thread = make_thread(team, make_assistant(team, connection, model=LLAMA_MODEL))
    for i in range(6):
        make_message(thread, f"echo: part {i} " + "word " * 700, role="user" if i % 2 == 0 else "assistant")
    return thread


def test_the_window_an_admin_set_trims_the_history_and_free_costs_nothing(team, owner, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url, "n_ctx=4096")
    connection_model_facts_save(connection=connection, actor=owner, model_id=LLAMA_MODEL, context_window=4096,
                                max_output_tokens=None, input_price=None, cached_input_price=None, output_price=None,
                                free=True, encoding="")
    thread = _long_thread(team, connection)
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Still here.")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.trimmed_messages >= 2
    assert run.usage_estimated and 0 < run.input_tokens < 4096
    assert run.cost_usd == Decimal(0)
    assert Message.objects.get(run=run, role="assistant").text == "Still here."


def test_without_facts_the_same_thread_overflows_the_server_and_its_cost_stays_unknown(team, owner,
                                                                                      sandbox_url, monkeypatch) -> None:
    from assistants_app import run_attempt

    monkeypatch.setattr(run_attempt, "RETRY_BASE_SECONDS", 0.05)
    connection = llamacpp(team, sandbox_url, "n_ctx=4096")
    thread = _long_thread(team, connection)
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Still here.")
    run = wait_for_run(run.pk)
    # What the issue saw: sized as an 8,192-token model, the request is over the server's window.
    assert run.status == RunStatus.FAILED and "context window" in run.error
    assert run.trimmed_messages == 0 and run.cost_usd is None


def test_prices_set_for_the_connection_price_the_run(team, owner, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    connection_model_facts_save(connection=connection, actor=owner, model_id=LLAMA_MODEL, context_window=4096,
                                max_output_tokens=None, input_price=Decimal("1"), cached_input_price=None,
                                output_price=Decimal("2"), free=False, encoding="")
    thread = make_thread(team, make_assistant(team, connection, model=LLAMA_MODEL))
    _, run = thread_post_message(thread=thread, actor=owner, text="echo: Priced here.")
    run = wait_for_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED
    expected = (Decimal(run.input_tokens) * 1 + Decimal(run.output_tokens) * 2) / Decimal(1_000_000)
    assert run.cost_usd == expected.quantize(Decimal("0.000001"))

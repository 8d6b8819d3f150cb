"""A run's end (run_attempt.run_finish), written in one round trip before the ledger's: the
run, its reply and its ledger line are saved once, by the attempt that owns the run, and
an attempt that no longer does leaves nothing behind, its reply included."""

from __future__ import annotations

from decimal import Decimal

import pytest

from assistants_app.live import LiveDisplay
from assistants_app.models import Message, Role, Run, RunStatus
from assistants_app.run_attempt import Clock, RunSuperseded, Usage, run_finish
from assistants_app.run_loop import run_claim
from assistants_app.spend import run_reservation_key
from project.providers.connection_facts import connection_model_facts_given
from project.spend.budgets import budget_reserve, budget_save
from project.spend.models import BudgetMeter, SpendDaily, SpendEntry, SpendMonth, SpendReservation
from tests.factories import make_assistant, make_connection, make_message, make_thread

pytestmark = pytest.mark.django_db


def _claimed_run(team, owner) -> tuple[Run, Clock]:
    """A run a worker has taken (as run_execute takes it), its budget held under a hard limit."""
    connection = make_connection(team)
    assistant = make_assistant(team, connection, model="gpt-4.1-mini", name="Helpdesk")
    thread = make_thread(team, assistant)
    assert assistant.current_version is not None
    run = Run.objects.create(thread=thread, team=team, assistant=assistant, version=assistant.current_version,
                             user_message=make_message(thread, "hello", author=owner), model="gpt-4.1-mini")
    budget_save(team=team, connection=None, amount_usd=Decimal(100), thresholds=[], hard_limit=True, actor=owner)
    budget_reserve(team=team, connection_id=connection.pk, key=run_reservation_key(run.pk), amount=Decimal("0.5"),
                   what="this reply")
    claimed = run_claim(run.pk)
    assert claimed is not None
    return claimed.run, Clock(LiveDisplay(run.pk))


def _finish(run: Run, clock: Clock, reply: str = "Hello there.") -> None:
    facts = connection_model_facts_given(run.assistant.connection, run.model, None)
    run_finish(run, RunStatus.SUCCEEDED, usage=Usage(input=1000, output=200, calls=1), facts=facts, clock=clock,
               request_id="req-1", reply=reply)


def test_the_end_saves_the_run_its_reply_and_one_ledger_line(team, owner) -> None:
    run, clock = _claimed_run(team, owner)
    _finish(run, clock)

    run.refresh_from_db()
    assert (run.status, run.input_tokens, run.output_tokens, run.provider_calls, run.request_id) == (
        RunStatus.SUCCEEDED, 1000, 200, 1, "req-1")
    assert run.finished_at is not None and run.cost_usd is not None and run.cost_usd > 0
    reply = Message.objects.get(run=run, role=Role.ASSISTANT)
    assert (reply.text, reply.version_id, reply.token_count > 0) == ("Hello there.", run.version_id, True)
    entry = SpendEntry.objects.get(source_kind="run", source_id=run.pk)
    assert (entry.person_id, entry.person_name, entry.assistant_name, entry.cost_usd) == (
        owner.pk, owner.username, "Helpdesk", run.cost_usd)
    assert SpendDaily.objects.get(team=team).calls == 1
    assert SpendMonth.objects.get(team=team, connection_id=entry.connection_id).cost_usd == entry.cost_usd
    assert not SpendReservation.objects.exists()  # settled
    team_meter = BudgetMeter.objects.get(team=team, connection_id=None)
    assert (team_meter.spent_usd, team_meter.reserved_usd) == (entry.cost_usd, 0)


def test_a_run_finished_twice_is_saved_and_billed_once(team, owner) -> None:
    run, clock = _claimed_run(team, owner)
    _finish(run, clock)
    with pytest.raises(RunSuperseded):  # a redelivered end, or a retry after a commit that went through
        _finish(run, clock, reply="A second reply.")

    assert list(Message.objects.filter(run=run, role=Role.ASSISTANT).values_list("text", flat=True)) == [
        "Hello there."]
    entry = SpendEntry.objects.get(source_kind="run", source_id=run.pk)
    assert SpendDaily.objects.get(team=team).calls == 1
    assert SpendMonth.objects.get(team=team, connection_id=entry.connection_id).cost_usd == entry.cost_usd
    assert BudgetMeter.objects.get(team=team, connection_id=None).spent_usd == entry.cost_usd
    run.refresh_from_db()
    assert (run.input_tokens, run.provider_calls, run.cost_usd) == (1000, 1, entry.cost_usd)


def test_an_attempt_taken_over_leaves_no_reply_and_no_cost(team, owner) -> None:
    run, clock = _claimed_run(team, owner)
    Run.objects.filter(pk=run.pk).update(attempts=run.attempts + 1)  # the stale-run sweep sent it again

    with pytest.raises(RunSuperseded):
        _finish(run, clock)

    assert not Message.objects.filter(run=run, role=Role.ASSISTANT).exists()
    assert not SpendEntry.objects.exists() and not SpendDaily.objects.exists()
    assert SpendReservation.objects.filter(key=run_reservation_key(run.pk)).exists()  # the new attempt's to settle
    run.refresh_from_db()
    assert (run.status, run.input_tokens, run.cost_usd, run.finished_at) == (RunStatus.RUNNING, 0, None, None)

"""The ledger: rows are priced once and never change, a key is recorded once, and the
daily and monthly rollups always equal the raw rows."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, transaction
from django.db.models import Count, Q, Sum

from project.providers.model_facts import model_facts
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature, Pricing, SpendDaily, SpendEntry, SpendMonth
from project.teams.models import Team

pytestmark = pytest.mark.django_db


def line(team: Team, key: str, **extra: object) -> SpendLine:
    values: dict[str, object] = {"team_id": team.pk, "feature": Feature.CHAT, "model": "gpt-4.1-mini",
                                 "source_kind": "run", "key": key, "input_tokens": 1000, "output_tokens": 500}
    values.update(extra)
    return SpendLine(**values)  # type: ignore[arg-type]


def test_a_line_is_priced_at_the_models_prices_and_keeps_the_prices_used(team) -> None:
    entry = spend_record(line(team, "a", input_tokens=1_000_000, cached_tokens=200_000, output_tokens=100_000))
    assert entry is not None
    facts = model_facts("gpt-4.1-mini")
    expected = (Decimal(800_000) * facts.price("input") + Decimal(200_000) * facts.price("cached_input")  # type: ignore[operator]
                + Decimal(100_000) * facts.price("output")) / 1_000_000  # type: ignore[operator]
    assert entry.cost_usd == expected.quantize(Decimal("0.000001"))
    assert entry.prices == {"input": str(facts.price("input")), "cached_input": str(facts.price("cached_input")),
                            "output": str(facts.price("output"))}


def test_batch_and_training_lines_use_their_own_prices(team) -> None:
    facts = model_facts("gpt-4.1-mini")
    batch = spend_record(line(team, "b", feature=Feature.BATCH, pricing=Pricing.BATCH, input_tokens=2_000_000,
                              output_tokens=1_000_000))
    training = spend_record(line(team, "t", feature=Feature.FINE_TUNING, pricing=Pricing.TRAINING,
                                 input_tokens=0, output_tokens=0, trained_tokens=1_000_000))
    assert batch is not None and training is not None
    assert batch.cost_usd == 2 * facts.price("batch_input") + facts.price("batch_output")  # type: ignore[operator]
    assert training.cost_usd == facts.price("training")


def test_a_model_without_a_price_is_recorded_without_a_cost(team) -> None:
    entry = spend_record(line(team, "u", model="my-local-llama"))
    assert entry is not None and entry.cost_usd is None
    assert SpendDaily.objects.get(team=team).unpriced_calls == 1


def test_the_same_key_is_recorded_once(team) -> None:
    assert spend_record(line(team, "once")) is not None
    assert spend_record(line(team, "once")) is None
    assert SpendEntry.objects.filter(team=team).count() == 1
    assert SpendDaily.objects.get(team=team).calls == 1


def test_the_ledger_refuses_to_be_rewritten(team) -> None:
    entry = spend_record(line(team, "fixed"))
    assert entry is not None
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        SpendEntry.objects.filter(pk=entry.pk).update(cost_usd=Decimal(0))


def test_rollups_equal_the_raw_rows(team, other_team) -> None:
    rng = random.Random(7)
    start = datetime(2026, 10, 20, tzinfo=UTC)
    for i in range(300):
        spend_record(line(
            rng.choice([team, other_team]), f"r{i}", model=rng.choice(["gpt-4.1-mini", "gpt-4o", "gpt-4.1"]),
            feature=rng.choice([Feature.CHAT, Feature.BATCH]), person_id=rng.choice([None, 1, 2]),
            assistant_id=rng.choice([None, 10, 11]), connection_id=rng.choice([None, 5]),
            input_tokens=rng.randint(0, 5000), cached_tokens=0, output_tokens=rng.randint(0, 3000),
            estimated=rng.random() < 0.2, occurred_at=start + timedelta(hours=rng.randint(0, 24 * 30))))
    keys = ["team", "feature", "model", "person_id", "assistant_id", "connection_id"]
    raw = {(*(r[k] for k in keys), r["occurred_at__date"]): r for r in
           SpendEntry.objects.values(*keys, "occurred_at__date").annotate(
               cost=Sum("cost_usd"), calls=Sum("calls"), input=Sum("input_tokens"), output=Sum("output_tokens"),
               estimated=Count("pk", filter=Q(estimated=True)))}
    daily = {(r.team_id, r.feature, r.model, r.person_id, r.assistant_id, r.connection_id, r.day): r
             for r in SpendDaily.objects.all()}
    assert set(raw) == set(daily)
    for key, r in raw.items():
        d = daily[key]
        assert (d.cost_usd, d.calls, d.input_tokens, d.output_tokens, d.estimated_calls) == (
            r["cost"], r["calls"], r["input"], r["output"], r["estimated"])
    for team_id in (team.pk, other_team.pk):
        for month in SpendMonth.objects.filter(team_id=team_id):
            entries = SpendEntry.objects.filter(team_id=team_id, connection_id=month.connection_id,
                                                occurred_at__year=month.month.year,
                                                occurred_at__month=month.month.month)
            assert month.cost_usd == entries.aggregate(total=Sum("cost_usd"))["total"]


def test_a_call_is_priced_at_the_prices_set_for_the_model_on_its_connection(team) -> None:
    from project.providers.models import ConnectionModelFacts
    from tests.factories import make_connection

    local, priced = make_connection(team, name="Local"), make_connection(team, name="Proxy")
    ConnectionModelFacts.objects.create(connection=local, model_id="my-local-llama", free=True)
    ConnectionModelFacts.objects.create(connection=priced, model_id="my-local-llama", input_price=Decimal("1"),
                                        output_price=Decimal("2"))
    free = spend_record(line(team, "f", model="my-local-llama", connection_id=local.pk))
    paid = spend_record(line(team, "p", model="my-local-llama", connection_id=priced.pk))
    unknown = spend_record(line(team, "u", model="my-local-llama"))
    assert free is not None and paid is not None and unknown is not None
    assert (free.cost_usd, paid.cost_usd, unknown.cost_usd) == (Decimal(0), Decimal("0.002"), None)


@pytest.mark.django_db(transaction=True)
def test_two_transactions_recording_overlapping_models_do_not_deadlock(team) -> None:
    """An eval flush records several models in one transaction while a chat run records one
    of them: each takes the team's month and meter rows before any day row, so the second
    waits for the first instead of each holding a row the other needs (PostgreSQL then
    aborts one of them as a deadlock, and its rows are lost)."""
    import threading

    from django.db import close_old_connections

    first_model_written = threading.Event()
    failures: list[BaseException] = []

    def line(model: str, key: str) -> SpendLine:
        return SpendLine(team_id=team.pk, feature=Feature.EVAL, model=model, source_kind="eval", key=key,
                         input_tokens=1000)

    def flush() -> None:  # an eval flush: two models, one transaction
        try:
            with transaction.atomic():
                spend_record(line("gpt-4.1-mini", "flush:1"))
                first_model_written.set()
                time.sleep(0.5)  # the chat run records its own model meanwhile
                spend_record(line("gpt-4.1", "flush:2"))
        except BaseException as error:  # noqa: BLE001 - the test reports what failed
            failures.append(error)
        finally:
            close_old_connections()

    def chat_run() -> None:
        first_model_written.wait(5)
        try:
            with transaction.atomic():
                spend_record(line("gpt-4.1", "run:1"))
        except BaseException as error:  # noqa: BLE001
            failures.append(error)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=flush), threading.Thread(target=chat_run)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert failures == []
    assert set(SpendEntry.objects.filter(team=team).values_list("key", flat=True)) == {"flush:1", "flush:2", "run:1"}


def test_a_key_recorded_again_in_the_same_transaction_adds_nothing_and_the_transaction_goes_on(team, owner) -> None:
    """The ledger skips a key recorded before without a savepoint to roll back to: the
    caller's transaction stays usable, and the repeat settles no reservation."""
    from project.spend.budgets import budget_reserve, budget_save
    from project.spend.models import BudgetMeter, SpendReservation

    budget_save(team=team, connection=None, amount_usd=Decimal(100), thresholds=[], hard_limit=True, actor=owner)
    budget_reserve(team=team, connection_id=None, key="work:later", amount=Decimal("0.25"), what="work")
    with transaction.atomic():
        entry = spend_record(line(team, "twice"))
        assert entry is not None and entry.pk is not None and entry.cost_usd is not None
        assert spend_record(line(team, "twice", settles="work:later", input_tokens=9999)) is None
        assert SpendEntry.objects.filter(team=team).count() == 1  # the transaction still works
    assert SpendEntry.objects.get(team=team) == entry
    assert SpendDaily.objects.get(team=team).calls == 1
    assert SpendDaily.objects.get(team=team).input_tokens == 1000
    assert SpendMonth.objects.get(team=team).cost_usd == entry.cost_usd
    assert SpendReservation.objects.filter(key="work:later").exists()  # still held
    meter = BudgetMeter.objects.get(team=team, connection_id=None)
    assert (meter.spent_usd, meter.reserved_usd) == (entry.cost_usd, Decimal("0.25"))

"""Budgets: thresholds are announced once a month to owners and admins, a hard limit
refuses new work with a message naming it and who can raise it, and concurrent work
overshoots the limit by at most one piece of work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import close_old_connections, transaction
from django.db.models import Sum
from django.utils import timezone

from project.notifications.models import Notification
from project.spend.budgets import (
    BudgetExceeded,
    CountedCost,
    budget_reserve,
    budget_save,
    month_of,
    month_spent,
    reservation_release,
    reservations_expire,
)
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Budget, BudgetAlert, BudgetMeter, Feature, SpendEntry, SpendReservation
from project.teams.models import AuditEvent, Role
from tests.factories import add_member, make_connection, make_user


def all_at_once(work: Callable[[int], None], count: int = 8) -> None:
    """work(0) ... work(count - 1), each in a thread of its own, released together by a
    barrier so they race; each thread's database connection is closed when it is done."""
    start = threading.Barrier(count)

    def worker(n: int) -> None:
        start.wait()
        try:
            work(n)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def spend(team, key: str, dollars: str, connection_id: int | None = None) -> None:
    # gpt-4.1-mini costs $0.40 per 1M input tokens: tokens for the wanted amount.
    tokens = int(Decimal(dollars) / Decimal("0.40") * 1_000_000)
    spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="gpt-4.1-mini", source_kind="run", key=key,
                           input_tokens=tokens, connection_id=connection_id))


@pytest.mark.django_db
def test_each_threshold_is_announced_once_a_month_to_owners_and_admins(team, owner,
                                                                      django_capture_on_commit_callbacks) -> None:
    admin = add_member(team, make_user("ada"), role=Role.ADMIN).user
    add_member(team, make_user("mo"), role=Role.MEMBER)
    budget_save(team=team, connection=None, amount_usd=Decimal("10"), thresholds=[50, 80, 100], hard_limit=False,
                actor=owner)
    with django_capture_on_commit_callbacks(execute=True):
        spend(team, "a", "4")
    assert not Notification.objects.filter(team=team).exists()
    with django_capture_on_commit_callbacks(execute=True):
        spend(team, "b", "1.5")  # 55%
        spend(team, "c", "0.1")  # still past 50% only: not again
    notes = list(Notification.objects.filter(team=team).values_list("text", flat=True))
    assert len(notes) == 1 and notes[0].startswith("The team's budget reached 50% in ")
    assert notes[0].endswith(": $5.50 of $10.00.")
    with django_capture_on_commit_callbacks(execute=True):
        spend(team, "d", "5")  # 106%: 80 and 100 crossed at once, one notification naming the highest
    notes = list(Notification.objects.filter(team=team).order_by("pk").values_list("text", flat=True))
    assert len(notes) == 2 and "reached 100%" in notes[1]
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80, 100]
    spend(team, "e", "1")
    assert Notification.objects.filter(team=team).count() == 2
    # Mail went to the owner and the admin, never to the member.
    recipients = sorted(address for message in mail.outbox for address in message.to)
    assert recipients == sorted([owner.email, admin.email] * 2)


@pytest.mark.django_db
def test_a_hard_limit_refuses_work_naming_the_budget_and_who_can_raise_it(team, owner) -> None:
    connection = make_connection(team, name="Prod key")
    budget_save(team=team, connection=connection, amount_usd=Decimal("2"), thresholds=[], hard_limit=True, actor=owner)
    budget_reserve(team=team, connection_id=connection.pk, key="w1", amount=Decimal("0.5"), what="this reply")
    spend(team, "a", "2", connection_id=connection.pk)
    with pytest.raises(BudgetExceeded) as refused:
        budget_reserve(team=team, connection_id=connection.pk, key="w2", amount=Decimal("0.5"), what="this reply")
    message = str(refused.value)
    assert "the connection Prod key's budget of $2.00 a month is used up" in message
    assert owner.get_username() in message and message.startswith("This reply was not started")
    # Other connections have no budget of their own and the team none: they are not stopped.
    other = make_connection(team)
    budget_reserve(team=team, connection_id=other.pk, key="w3", amount=Decimal("5"), what="this reply")
    # Raised, it lets work through again.
    budget_save(team=team, connection=connection, amount_usd=Decimal("5"), thresholds=[], hard_limit=True, actor=owner)
    budget_reserve(team=team, connection_id=connection.pk, key="w2", amount=Decimal("0.5"), what="this reply")


@pytest.mark.django_db
def test_reservations_of_running_work_count_until_settled(team, owner) -> None:
    budget_save(team=team, connection=None, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    budget_reserve(team=team, connection_id=None, key="run:1", amount=Decimal("1.2"), what="this reply")
    with pytest.raises(BudgetExceeded, match="with work still running counted"):
        budget_reserve(team=team, connection_id=None, key="run:2", amount=Decimal("0.1"), what="this reply")
    # The first run ends cheaper than it might have: its ledger row settles the reservation.
    spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="gpt-4.1-mini", source_kind="run",
                           key="run:1:attempt:1", input_tokens=1000, settles="run:1"))
    assert not SpendReservation.objects.filter(key="run:1").exists()
    budget_reserve(team=team, connection_id=None, key="run:2", amount=Decimal("0.1"), what="this reply")
    reservation_release(key="run:2")
    assert not SpendReservation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_work_overshoots_the_limit_by_at_most_one_piece(team, owner) -> None:
    budget_save(team=team, connection=None, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    spend(team, "before", "0.7")
    passed: list[str] = []

    def claim(n: int) -> None:
        try:
            budget_reserve(team=team, connection_id=None, key=f"run:{n}", amount=Decimal("0.25"), what="this reply")
            passed.append(f"run:{n}")
        except BudgetExceeded:
            pass

    all_at_once(claim)
    # $0.70 spent: the second $0.25 would start at $0.95 < $1, the third at $1.20: two pass.
    assert len(passed) == 2
    committed = month_spent(team_id=team.pk) + sum(r.amount_usd for r in SpendReservation.objects.all())
    assert committed - Decimal("1") <= Decimal("0.25")


@pytest.mark.django_db
def test_budget_changes_are_audited_with_before_and_after(team, owner) -> None:
    budget_save(team=team, connection=None, amount_usd=Decimal("10"), thresholds=[50], hard_limit=False, actor=owner)
    budget_save(team=team, connection=None, amount_usd=Decimal("20"), thresholds=[50, 100], hard_limit=True,
                actor=owner)
    event = AuditEvent.objects.filter(team=team, action="budget.saved").order_by("-pk").first()
    assert event is not None and event.actor == owner
    assert event.details["before"] == {"amount_usd": "10.00", "thresholds": [50], "hard_limit": False}
    assert event.details["after"] == {"amount_usd": "20", "thresholds": [50, 100], "hard_limit": True}
    assert Budget.objects.get(team=team).amount_usd == Decimal("20")


def assert_meters_match_the_ledger(team) -> None:
    """Each meter row holds this month's ledger spend of its scope and its live reservations."""
    month = month_of(timezone.now())
    meters = {m.connection_id: m for m in BudgetMeter.objects.filter(team=team)}
    assert None in meters
    for connection_id, meter in meters.items():
        scope = {} if connection_id is None else {"connection_id": connection_id}
        spent = SpendEntry.objects.filter(team=team, occurred_at__gte=datetime.combine(month, time.min, tzinfo=UTC),
                                          **scope).aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)
        held = SpendReservation.objects.filter(team=team, **scope).aggregate(total=Sum("amount_usd"))["total"]
        assert (meter.month, meter.spent_usd, meter.reserved_usd) == (month, spent, held or Decimal(0)), connection_id


@pytest.mark.django_db
def test_the_meters_equal_the_months_ledger_and_the_live_reservations(team, owner) -> None:
    connection = make_connection(team, name="Prod key")
    budget_save(team=team, connection=None, amount_usd=Decimal("100"), thresholds=[], hard_limit=True, actor=owner)
    budget_save(team=team, connection=connection, amount_usd=Decimal("50"), thresholds=[], hard_limit=True,
                actor=owner)
    spend(team, "a", "1.5", connection_id=connection.pk)
    spend(team, "b", "2")  # work of no connection counts for the team only
    budget_reserve(team=team, connection_id=connection.pk, key="run:1", amount=Decimal("0.75"), what="this reply")
    budget_reserve(team=team, connection_id=connection.pk, key="run:2", amount=Decimal("0.5"), what="this reply")
    budget_reserve(team=team, connection_id=None, key="run:3", amount=Decimal("0.25"), what="this reply")
    assert_meters_match_the_ledger(team)
    # The same key again replaces its reservation; a settle and a release free theirs.
    budget_reserve(team=team, connection_id=connection.pk, key="run:2", amount=Decimal("0.2"), what="this reply")
    assert_meters_match_the_ledger(team)
    spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="gpt-4.1-mini", source_kind="run",
                           key="run:1:attempt:1", input_tokens=100_000, connection_id=connection.pk, settles="run:1"))
    reservation_release(key="run:3")
    assert_meters_match_the_ledger(team)
    assert BudgetMeter.objects.get(team=team, connection_id=None).reserved_usd == Decimal("0.2")


@pytest.mark.django_db
def test_a_counted_cost_is_counted_only_when_a_hard_limit_applies(team, owner) -> None:
    # A count that fails if it runs ($1 - $1 = 0): without a hard limit it never does.
    failing = CountedCost(fixed_usd=Decimal("0.1"), per_unit_usd=Decimal("0.001"), cap=100,
                          count_sql="SELECT 1 / ($1 - $1)", count_arg=7)
    budget_reserve(team=team, connection_id=None, key="run:1", amount=failing, what="this reply")
    assert not SpendReservation.objects.exists()
    budget_save(team=team, connection=None, amount_usd=Decimal("5"), thresholds=[], hard_limit=True, actor=owner)
    # Under one, the count ($1 = 70, doubled: 140) is capped at 100 units.
    counted = CountedCost(fixed_usd=Decimal("0.1"), per_unit_usd=Decimal("0.001"), cap=100,
                          count_sql="SELECT $1 * 2", count_arg=70)
    budget_reserve(team=team, connection_id=None, key="run:2", amount=counted, what="this reply")
    assert SpendReservation.objects.get(key="run:2").amount_usd == Decimal("0.2")
    assert BudgetMeter.objects.get(team=team, connection_id=None).reserved_usd == Decimal("0.2")


@pytest.mark.django_db
def test_a_claim_one_limit_refuses_holds_no_money_under_the_other(team, owner) -> None:
    connection = make_connection(team, name="Prod key")
    budget_save(team=team, connection=None, amount_usd=Decimal("100"), thresholds=[], hard_limit=True, actor=owner)
    budget_save(team=team, connection=connection, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    spend(team, "a", "1", connection_id=connection.pk)
    with pytest.raises(BudgetExceeded, match=r"the connection Prod key's budget of \$1.00 a month is used up"):
        budget_reserve(team=team, connection_id=connection.pk, key="run:1", amount=Decimal("5"), what="this reply")
    # The team's limit let it through before the connection's refused it: that was given back.
    assert not SpendReservation.objects.exists()
    assert_meters_match_the_ledger(team)


@pytest.mark.django_db
def test_expired_reservations_stop_holding_money(team, owner) -> None:
    budget_save(team=team, connection=None, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    budget_reserve(team=team, connection_id=None, key="run:dead", amount=Decimal("1"), what="this reply")
    with pytest.raises(BudgetExceeded):
        budget_reserve(team=team, connection_id=None, key="run:2", amount=Decimal("0.1"), what="this reply")
    # Its worker died for good: past its end, the next claim frees it and passes.
    SpendReservation.objects.filter(key="run:dead").update(expires_at=timezone.now() - timedelta(seconds=1))
    budget_reserve(team=team, connection_id=None, key="run:2", amount=Decimal("0.1"), what="this reply")
    assert list(SpendReservation.objects.values_list("key", flat=True)) == ["run:2"]
    assert_meters_match_the_ledger(team)
    # The periodic sweep does the same without a claim.
    SpendReservation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert reservations_expire() is True
    assert BudgetMeter.objects.get(team=team).reserved_usd == 0


@pytest.mark.django_db
def test_a_new_month_starts_the_spend_again_and_keeps_running_work(team, owner) -> None:
    budget_save(team=team, connection=None, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    spend(team, "a", "0.9")
    budget_reserve(team=team, connection_id=None, key="run:late", amount=Decimal("0.4"), what="this reply")
    with pytest.raises(BudgetExceeded):
        budget_reserve(team=team, connection_id=None, key="run:2", amount=Decimal("0.1"), what="this reply")
    # As if the spend were last month's: the month's spend starts at nothing, the running
    # work's reservation still counts.
    BudgetMeter.objects.filter(team=team).update(month=date(2000, 1, 1))
    budget_reserve(team=team, connection_id=None, key="run:2", amount=Decimal("0.7"), what="this reply")
    with pytest.raises(BudgetExceeded, match=r"\(\$0.00 spent this month, with work still running counted\)"):
        budget_reserve(team=team, connection_id=None, key="run:3", amount=Decimal("0.1"), what="this reply")
    spend(team, "b", "0.05")
    assert BudgetMeter.objects.get(team=team).spent_usd == Decimal("0.05")


@pytest.mark.django_db(transaction=True)
def test_concurrent_work_under_two_limits_overshoots_by_at_most_one_piece_and_leaks_nothing(team, owner) -> None:
    connection = make_connection(team, name="Prod key")
    other = make_connection(team, name="Other key")
    budget_save(team=team, connection=None, amount_usd=Decimal("1.5"), thresholds=[], hard_limit=True, actor=owner)
    budget_save(team=team, connection=connection, amount_usd=Decimal("0.5"), thresholds=[], hard_limit=True,
                actor=owner)
    passed: list[str] = []

    def claim(n: int) -> None:
        try:
            # Half on the limited connection, half on another: the team's limit holds both.
            with transaction.atomic():
                budget_reserve(team=team, connection_id=connection.pk if n % 2 else other.pk, key=f"run:{n}",
                               amount=Decimal("0.3"), what="this reply")
            passed.append(f"run:{n}")
        except BudgetExceeded:
            pass

    all_at_once(claim)
    held = SpendReservation.objects.aggregate(total=Sum("amount_usd"))["total"]
    on_connection = SpendReservation.objects.filter(connection_id=connection.pk).aggregate(
        total=Sum("amount_usd"))["total"] or Decimal(0)
    # $0.30 each: the team's $1.50 lets five through ($1.20 before the fifth) whatever the
    # order they came in; the connection's $0.50 at most two ($0.30 before the second).
    assert held == Decimal("1.5") and on_connection in (Decimal("0.3"), Decimal("0.6"))
    assert len(passed) == SpendReservation.objects.count() == 5
    assert_meters_match_the_ledger(team)

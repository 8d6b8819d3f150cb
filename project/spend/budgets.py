"""Budgets: a monthly amount per team or connection, thresholds announced once a month,
and an optional hard limit that stops new work.

A hard limit is checked when work is let through (a chat run queued, a batch submitted,
a fine-tune job created): the work is refused once the month's spend plus what running
work may still cost (its reservation) has reached the amount. Each piece of work let
through reserves its most possible cost in the same statement that checks, on a meter
row holding both figures (BudgetMeter), so concurrent work cannot all pass on the same
remaining money: the month can end above the limit by at most the one piece of work
that was let through last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone

from project.notifications.services import notification_send
from project.providers.models import ProviderConnection
from project.spend.models import Budget, BudgetAlert, BudgetMeter, SpendMonth, SpendReservation
from project.teams.models import Membership, Role, Team
from project.teams.services import audit_record


class BudgetExceeded(Exception):
    """New work refused by a hard limit; the message names the budget and who can raise it."""


class BudgetInvalid(Exception):
    pass


def month_of(moment: datetime | date) -> date:
    """The month a moment falls in (UTC), as its first day: the key of SpendMonth and of alerts."""
    day = moment.astimezone(UTC).date() if isinstance(moment, datetime) else moment
    return day.replace(day=1)


def _now_month() -> date:
    return month_of(timezone.now())


def month_spent(*, team_id: int, connection_id: int | None = None, month: date | None = None) -> Decimal:
    rows = SpendMonth.objects.filter(team_id=team_id, month=month or _now_month())
    if connection_id is not None:
        rows = rows.filter(connection_id=connection_id)
    return rows.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


def month_spent_by_connection(*, team_id: int) -> dict[int | None, Decimal]:
    """This month's spend per connection (None: work of no connection), in one query."""
    return dict(SpendMonth.objects.filter(team_id=team_id, month=_now_month()).values_list("connection_id", "cost_usd"))


def budget_label(budget: Budget) -> str:
    return f"the connection {budget.connection.name}'s budget" if budget.connection else "the team's budget"


def _managers(team_id: int) -> list[User]:
    return [m.user for m in Membership.objects.filter(team_id=team_id, role__in=(Role.OWNER, Role.ADMIN))
            .select_related("user").order_by("user__username")]


@dataclass(frozen=True)
class CountedCost:
    """A cost the database works out in the same round trip that reserves it:
    `fixed_usd + per_unit_usd × least(count, cap)`, where `count_sql` is a scalar query the
    caller's code owns (chat: its thread's history tokens), run only when a hard limit
    applies. Saves a round trip before every reply."""

    fixed_usd: Decimal
    per_unit_usd: Decimal
    cap: int
    count_sql: str  # a constant of the caller's code; its one parameter is written $1
    count_arg: int


# The check and the reservation in one round trip, no lock held before it: the function
# spend_budget_reserve (migration 0005, a PL/pgSQL function so that PostgreSQL keeps its
# plan per connection instead of planning the statement on every call) raises the team's
# meter row and the connection's each by the amount only where its spend plus what is
# reserved is still under its hard limit. ON CONFLICT DO UPDATE reads the latest committed
# row under its row lock, so two claims racing for the same money are ordered: the second
# sees the first's reservation. The rows are taken team first, connection second, as every
# other write of the meter does, so claims cannot deadlock. A claim under a key that holds
# a reservation already replaces it. It returns whether the reservation was kept, how many
# hard limits apply, the amount the meters were raised by, and which meters were raised.
_RESERVE = """SELECT * FROM spend_budget_reserve(%(team)s, %(connection)s, %(key)s, %(month)s, %(expires)s,
    %(amount)s, %(per_unit)s, %(cap)s, %(count_sql)s, %(count_arg)s)"""


def _amount_params(amount: Decimal | CountedCost) -> dict[str, Any]:
    if isinstance(amount, CountedCost) and amount.per_unit_usd and amount.cap:
        return {"amount": amount.fixed_usd, "per_unit": amount.per_unit_usd, "cap": amount.cap,
                "count_sql": amount.count_sql, "count_arg": amount.count_arg}
    fixed = amount.fixed_usd if isinstance(amount, CountedCost) else amount
    return {"amount": fixed, "per_unit": None, "cap": None, "count_sql": None, "count_arg": None}


# Taking reservations off the meters: `{gone}` deletes them, returning what they held.
_RELEASE = """
WITH gone AS ({gone} RETURNING team_id, connection_id, amount_usd),
scopes AS (SELECT team_id, NULL::bigint AS connection_id, amount_usd FROM gone
           UNION ALL SELECT team_id, connection_id, amount_usd FROM gone WHERE connection_id IS NOT NULL),
sums AS (SELECT team_id, connection_id, sum(amount_usd) AS amount FROM scopes GROUP BY team_id, connection_id)
INSERT INTO spend_budgetmeter AS m (team_id, connection_id, month, spent_usd, reserved_usd)
SELECT team_id, connection_id, %(month)s, 0, -amount FROM sums ORDER BY team_id, connection_id NULLS FIRST
ON CONFLICT (team_id, connection_id) DO UPDATE SET reserved_usd = greatest(m.reserved_usd + EXCLUDED.reserved_usd, 0)
"""
_UNRAISE = """
INSERT INTO spend_budgetmeter AS m (team_id, connection_id, month, spent_usd, reserved_usd)
SELECT %(team)s, c, %(month)s, 0, 0 FROM unnest(%(scopes)s::bigint[]) AS c ORDER BY c NULLS FIRST
ON CONFLICT (team_id, connection_id) DO UPDATE SET reserved_usd = greatest(m.reserved_usd - %(amount)s, 0)
"""


def budget_reserve(*, team: Team, connection_id: int | None, key: str, amount: Decimal | CountedCost, what: str,
                   hours: float = 1.0) -> None:
    """Let work through against the hard limits that apply to it (the team's, the
    connection's) and reserve `amount` for it under `key` until its ledger row settles it
    (or `reservation_release`): one round trip when it passes. The work is refused once
    the month's spend plus what running work may still cost has reached a limit, so
    concurrent work overshoots by at most the one piece let through last.
    Raises BudgetExceeded, naming the budget and who can raise it. Runs in the caller's
    transaction: make it the transaction's last step, as the meter rows it raises stay
    locked until the commit."""
    month = _now_month()
    params = _amount_params(amount) | {"team": team.pk, "connection": connection_id, "key": key, "month": month,
                                       "expires": timezone.now() + timedelta(hours=hours)}
    for attempt in range(2):
        with db_connection.cursor() as cursor:
            cursor.execute(_RESERVE, params)
            kept, applicable, delta, raised = cursor.fetchone()
        if kept or not applicable:
            return
        if raised:
            # One limit let it through and another did not: give the first its money back.
            with db_connection.cursor() as cursor:
                cursor.execute(_UNRAISE, {"team": team.pk, "month": month, "scopes": raised, "amount": delta})
        if attempt or not reservations_expire(team_id=team.pk):
            break  # expired work was holding money: try once more without it
    raise BudgetExceeded(_refusal(team=team, connection_id=connection_id, what=what, month=month))


def _refusal(*, team: Team, connection_id: int | None, what: str, month: date) -> str:
    budgets = list(Budget.objects.select_related("connection").filter(team=team, hard_limit=True)
                   .filter(Q(connection__isnull=True) | Q(connection_id=connection_id)).order_by("pk"))
    meters = {m.connection_id: m for m in BudgetMeter.objects.filter(team=team)}
    names = ", ".join(u.get_username() for u in _managers(team.pk)) or "an owner or admin"
    for budget in budgets:
        meter = meters.get(budget.connection_id)
        spent = meter.spent_usd if meter is not None and meter.month == month else Decimal(0)
        reserved = meter.reserved_usd if meter is not None else Decimal(0)
        if spent + reserved >= budget.amount_usd or budget is budgets[-1]:
            return (f"{what.capitalize()} was not started: {budget_label(budget)} of ${budget.amount_usd:,.2f} a month "
                    f"is used up (${spent:,.2f} spent this month"
                    f"{', with work still running counted' if reserved > 0 else ''}). "
                    f"An owner or admin ({names}) can raise it on the Usage page.")
    return f"{what.capitalize()} was not started: a budget is used up."


def reservation_rename(*, key: str, new_key: str) -> None:
    """Work reserved before it had an id of its own (a fine-tune job before the provider made it)."""
    SpendReservation.objects.filter(key=key).update(key=new_key)


_RELEASE_KEY = _RELEASE.replace("{gone}", "DELETE FROM spend_spendreservation WHERE key = %(key)s")


def reservation_release(*, key: str) -> None:
    """Work that was let through and will not be billed (it was refused or stopped before
    it started), or whose ledger row settles it: its money is free again."""
    with db_connection.cursor() as cursor:
        cursor.execute(*reservation_release_statement(key=key))


def reservation_release_statement(*, key: str) -> tuple[str, dict[str, Any]]:
    """reservation_release as a statement, for a caller that runs it with others in one
    round trip (project.joined_rows.pipelined)."""
    return _RELEASE_KEY, {"key": key, "month": _now_month()}


_EXPIRED = ("DELETE FROM spend_spendreservation WHERE expires_at <= now() "
            "AND (%(team)s::bigint IS NULL OR team_id = %(team)s)")


def reservations_expire(*, team_id: int | None = None) -> bool:
    """Free what work that never reported holds past its reservation's end (its worker
    died for good). Periodic, and before a refusal. Returns whether any had expired."""
    with db_connection.cursor() as cursor:
        cursor.execute(_RELEASE.replace("{gone}", _EXPIRED),
                       {"team": team_id, "month": _now_month()})
        return bool(cursor.rowcount)


_ALERT_INSERT = """INSERT INTO spend_budgetalert (budget_id, month, threshold, created_at) VALUES (%s, %s, %s, now())
ON CONFLICT (budget_id, month, threshold) DO NOTHING RETURNING id"""


_ALERTING = """SELECT EXISTS (SELECT 1 FROM spend_budget WHERE team_id = %s
    AND (connection_id IS NULL OR connection_id = %s) AND thresholds <> '[]'::jsonb)"""


def alerting_budgets_statement(*, team_id: int, connection_id: int | None) -> tuple[str, tuple[Any, ...]]:
    """Whether any budget that applies has thresholds to announce (budget_alerts_send's
    budgets), as a statement for a caller that runs it with others in one round trip."""
    return _ALERTING, (team_id, connection_id)


def budget_alerts_send(*, team_id: int, connection_id: int | None, month: date) -> None:
    """Announce each threshold of the budgets that apply which the month's spend has
    crossed, once per month (in the app, and by mail to owners and admins)."""
    budgets = list(Budget.objects.select_related("connection", "team").filter(team_id=team_id)
                   .filter(Q(connection__isnull=True) | Q(connection_id=connection_id)).exclude(thresholds=[]))
    for budget in budgets:
        spent = month_spent(team_id=team_id, connection_id=budget.connection_id, month=month)
        crossed = sorted(t for t in budget.thresholds if spent * 100 >= budget.amount_usd * t)
        if not crossed:
            continue
        announced = set(BudgetAlert.objects.filter(budget=budget, month=month).values_list("threshold", flat=True))
        new = [t for t in crossed if t not in announced]
        fresh = []
        with db_connection.cursor() as cursor:
            for threshold in new:
                cursor.execute(_ALERT_INSERT, [budget.pk, month, threshold])
                if cursor.fetchone() is not None:
                    fresh.append(threshold)
        if fresh:
            highest = max(fresh)
            text = (f"{budget_label(budget).capitalize()} reached {highest}% in {month:%B %Y}: "
                    f"${spent:,.2f} of ${budget.amount_usd:,.2f}"
                    f"{'; new work is stopped until it is raised' if budget.hard_limit and highest >= 100 else ''}.")
            notification_send(team=budget.team, text=text, link=reverse("usage"), email_to=_managers(team_id))


def parse_thresholds(text: str) -> list[int]:
    try:
        values = sorted({int(part.strip().rstrip("%")) for part in text.replace(";", ",").split(",") if part.strip()})
    except ValueError as error:
        raise BudgetInvalid("Thresholds are whole percentages separated by commas, such as 50, 80, 100.") from error
    if any(v <= 0 or v > 1000 for v in values):
        raise BudgetInvalid("Each threshold is a percentage between 1 and 1000.")
    return values


def _snapshot(budget: Budget | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {"amount_usd": str(budget.amount_usd), "thresholds": list(budget.thresholds),
            "hard_limit": budget.hard_limit}


@transaction.atomic
def budget_save(*, team: Team, connection: ProviderConnection | None, amount_usd: Decimal, thresholds: list[int],
                hard_limit: bool, actor: User) -> Budget:
    if connection is not None and connection.team_id != team.pk:
        raise BudgetInvalid("Unknown connection.")
    if amount_usd <= 0 or amount_usd >= Decimal("10000000000"):
        raise BudgetInvalid("The monthly amount is a number of dollars above zero.")
    budget = Budget.objects.select_for_update().filter(team=team, connection=connection).first()
    before = _snapshot(budget)
    if budget is None:
        budget = Budget(team=team, connection=connection)
    budget.amount_usd, budget.thresholds, budget.hard_limit, budget.updated_by = (
        amount_usd, thresholds, hard_limit, actor)
    budget.save()
    audit_record(team=team, actor=actor, action="budget.saved",
                 target=connection.name if connection else "team", before=before, after=_snapshot(budget))
    # A budget lowered below this month's spend announces what it has crossed straight away.
    budget_alerts_send(team_id=team.pk, connection_id=budget.connection_id, month=_now_month())
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget, actor: User) -> None:
    audit_record(team=budget.team, actor=actor, action="budget.deleted",
                 target=budget.connection.name if budget.connection else "team", before=_snapshot(budget), after=None)
    budget.delete()


@dataclass(frozen=True)
class BudgetBar:
    spent: Decimal
    amount: Decimal | None
    percent: int | None
    hard_limit: bool


def team_budget_bar(*, team: Team) -> BudgetBar:
    """The top bar's figure: the team's month-to-date spend against its own budget."""
    spent = month_spent(team_id=team.pk)
    budget = Budget.objects.filter(team=team, connection__isnull=True).first()
    if budget is None:
        return BudgetBar(spent=spent, amount=None, percent=None, hard_limit=False)
    return BudgetBar(spent=spent, amount=budget.amount_usd, percent=int(spent * 100 / budget.amount_usd),
                     hard_limit=budget.hard_limit)

"""Budgets: a monthly amount per team or connection, thresholds announced once a month,
and an optional hard limit that stops new work.

A hard limit is checked when work is let through (a chat run queued, a batch submitted,
a fine-tune job created): the work is refused once the month's spend plus what running
work may still cost (its reservation) has reached the amount. Each piece of work let
through reserves its most possible cost in the same locked step, so concurrent work
cannot all pass on the same remaining money: the month can end above the limit by at
most the one piece of work that was let through last.
"""

from __future__ import annotations

from collections.abc import Callable
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
from project.spend.models import Budget, BudgetAlert, SpendMonth, SpendReservation
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


def budget_reserve(*, team: Team, connection_id: int | None, key: str, amount: Decimal | Callable[[], Decimal], what: str,
                   hours: float = 1.0) -> None:
    """Let work through against the hard limits that apply to it (the team's, the
    connection's) and reserve `amount` (or what it returns: worked out only when a hard
    limit applies) for it under `key` until its ledger row settles it.
    Raises BudgetExceeded, naming the budget and who can raise it. Runs in the caller's
    transaction, so a refused piece of work is not stored either."""
    with transaction.atomic():
        budgets = list(Budget.objects.select_for_update(of=("self",)).select_related("connection")
                       .filter(team=team, hard_limit=True)
                       .filter(Q(connection__isnull=True) | Q(connection_id=connection_id)).order_by("pk"))
        if not budgets:
            return
        # Both scopes (the team, this connection) in one query each: this runs before every reply.
        in_connection = Q(connection_id=connection_id)
        spent = SpendMonth.objects.filter(team=team, month=_now_month()).aggregate(
            team=Sum("cost_usd"), connection=Sum("cost_usd", filter=in_connection))
        reserved = (SpendReservation.objects.filter(team=team, expires_at__gt=timezone.now()).exclude(key=key)
                    .aggregate(team=Sum("amount_usd"), connection=Sum("amount_usd", filter=in_connection)))
        for budget in budgets:
            scope = "team" if budget.connection_id is None else "connection"
            scope_spent = spent[scope] or Decimal(0)
            committed = scope_spent + (reserved[scope] or Decimal(0))
            if committed >= budget.amount_usd:
                names = ", ".join(u.get_username() for u in _managers(team.pk)) or "an owner or admin"
                raise BudgetExceeded(
                    f"{what.capitalize()} was not started: {budget_label(budget)} of ${budget.amount_usd:,.2f} a month "
                    f"is used up (${scope_spent:,.2f} spent this month"
                    f"{', with work still running counted' if committed > scope_spent else ''}). "
                    f"An owner or admin ({names}) can raise it on the Usage page.")
        with db_connection.cursor() as cursor:
            cursor.execute(_RESERVE, [team.pk, connection_id, key, amount() if callable(amount) else amount,
                                      timezone.now() + timedelta(hours=hours)])


_RESERVE = """INSERT INTO spend_spendreservation AS r (team_id, connection_id, key, amount_usd, expires_at)
VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET amount_usd = EXCLUDED.amount_usd,
    expires_at = EXCLUDED.expires_at"""


def reservation_rename(*, key: str, new_key: str) -> None:
    """Work reserved before it had an id of its own (a fine-tune job before the provider made it)."""
    SpendReservation.objects.filter(key=key).update(key=new_key)


def reservation_release(*, key: str) -> None:
    """Work that was let through and will not be billed (it was refused or stopped before it started)."""
    SpendReservation.objects.filter(key=key).delete()


_ALERT_INSERT = """INSERT INTO spend_budgetalert (budget_id, month, threshold, created_at) VALUES (%s, %s, %s, now())
ON CONFLICT (budget_id, month, threshold) DO NOTHING RETURNING id"""


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

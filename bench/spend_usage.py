"""Spend at scale: a year of one team's spend standing for 10,000,000 ledger rows (its daily
rollups: 5 connections, 200 people, 100 assistants, 8 models, 4 features; about 600
combinations a day), then the Usage page for 30-day ranges across the year and the
budget check a chat run makes before it is queued, as server time (in-process, rendering
included).

    python -m bench spend_usage [--keep] [--raw=N] [--repeats=N] [--usage-only | --budget-only]

--raw=N also writes N raw ledger rows (generate_series) and builds the rollups from them
with one GROUP BY, instead of generating the rollups directly; --keep reuses earlier data.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from assistants_app.models import Run, Thread
from assistants_app.spend import run_budget_reserve
from bench._setup import summary
from project.providers.models import ProviderConnection
from project.spend.budgets import budget_reserve, budget_save, reservation_release
from project.spend.models import SpendDaily, SpendReservation
from project.teams.models import Team
from tests.factories import make_assistant, make_connection, make_message, make_team, make_thread, make_user

TEAM = "Spend bench"
ROWS = 10_000_000
DAYS = 365
COMBOS_PER_DAY = 600
MODELS = ["gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "gpt-5", "gpt-5-mini", "o3"]
FEATURES = ["chat", "chat", "chat", "batch", "embeddings", "fine_tuning"]


def _rollups_direct(team: Team, connection_ids: list[int], people: list[int]) -> None:
    """COMBOS_PER_DAY rows a day whose calls add up to ROWS over the year."""
    rows = DAYS * COMBOS_PER_DAY
    calls, extra = divmod(ROWS, rows)  # the first `extra` rows hold one call more
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO spend_spenddaily (team_id, day, feature, connection_id, person_id, assistant_id, model,
                   connection_name, person_name, assistant_name, calls, estimated_calls, unpriced_calls,
                   input_tokens, cached_tokens, output_tokens, reasoning_tokens, cost_usd)
               SELECT %(team)s, (now() at time zone 'utc')::date - d, (%(features)s::text[])[1 + (c %% 6)],
                      (%(connections)s::bigint[])[1 + (c %% 5)], (%(people)s::bigint[])[1 + (c %% 200)],
                      1000000 + (c * 7) %% 100, (%(models)s::text[])[1 + (c / 200) %% 8],
                      'Connection ' || (c %% 5), 'person' || (c %% 200), 'Assistant ' || ((c * 7) %% 100),
                      n, 0, 0, n * 1200, n * 100, n * 300, 0, n * 0.0011
               FROM generate_series(0, %(days)s - 1) AS d, generate_series(0, %(combos)s - 1) AS c,
                    LATERAL (SELECT %(calls)s + CASE WHEN d * %(combos)s + c < %(extra)s THEN 1 ELSE 0 END AS n) AS k""",
            {"team": team.pk, "features": FEATURES, "connections": connection_ids, "people": people,
             "models": MODELS, "calls": calls, "extra": extra, "days": DAYS, "combos": COMBOS_PER_DAY})


def _raw_then_rollups(team: Team, rows: int, connection_ids: list[int], people: list[int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO spend_spendentry (team_id, occurred_at, feature, connection_id, connection_name, person_id,
                   person_name, assistant_id, assistant_name, version_id, version_number, source_kind, source_id,
                   source_label, model, input_tokens, cached_tokens, output_tokens, reasoning_tokens, calls, pricing,
                   prices, cost_usd, estimated, key)
               SELECT %(team)s, now() - (i * (%(days)s * 86400.0 / %(rows)s) || ' seconds')::interval,
                      (%(features)s::text[])[1 + (c %% 6)], (%(connections)s::bigint[])[1 + (c %% 5)],
                      'Connection ' || (c %% 5), (%(people)s::bigint[])[1 + (c %% 200)], 'person' || (c %% 200),
                      1000000 + (c * 7) %% 100, 'Assistant ' || ((c * 7) %% 100), NULL, 1, 'run', i, '',
                      (%(models)s::text[])[1 + (c / 200) %% 8], 1200, 100, 300, 0, 1, 'standard', '{}'::jsonb,
                      0.0011, false, 'bench:' || %(team)s || ':' || i
               FROM generate_series(1, %(rows)s) AS i, LATERAL (SELECT (i * 7919) %% %(combos)s AS c) AS pick""",
            {"team": team.pk, "features": FEATURES, "connections": connection_ids, "people": people, "models": MODELS,
             "days": DAYS, "rows": rows, "combos": COMBOS_PER_DAY})
        cursor.execute(
            """INSERT INTO spend_spenddaily (team_id, day, feature, connection_id, person_id, assistant_id, model,
                   connection_name, person_name, assistant_name, calls, estimated_calls, unpriced_calls,
                   input_tokens, cached_tokens, output_tokens, reasoning_tokens, cost_usd)
               SELECT team_id, (occurred_at at time zone 'utc')::date, feature, connection_id, person_id, assistant_id,
                      model, max(connection_name), max(person_name), max(assistant_name), sum(calls),
                      count(*) FILTER (WHERE estimated), count(*) FILTER (WHERE cost_usd IS NULL), sum(input_tokens),
                      sum(cached_tokens), sum(output_tokens), sum(reasoning_tokens), coalesce(sum(cost_usd), 0)
               FROM spend_spendentry WHERE team_id = %s
               GROUP BY team_id, 2, feature, connection_id, person_id, assistant_id, model""", [team.pk])


def build(raw: int) -> Team:
    Team.objects.filter(name=TEAM).delete()
    owner = make_user(f"spend{int(time.time())}")
    team = make_team(TEAM, owner=owner)
    connection_ids = [make_connection(team, name=f"Connection {i}").pk for i in range(5)]
    # Accounts without a password: hashing 199 of them would take longer than the data.
    stamp = int(time.time())
    others = User.objects.bulk_create([User(username=f"spendp{stamp}-{i}") for i in range(199)])
    people = [owner.pk] + [user.pk for user in others]
    started = time.monotonic()
    if raw:
        _raw_then_rollups(team, raw, connection_ids, people)
    else:
        _rollups_direct(team, connection_ids, people)
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO spend_spendmonth (team_id, connection_id, month, cost_usd)
               SELECT team_id, connection_id, date_trunc('month', day)::date, sum(cost_usd) FROM spend_spenddaily
               WHERE team_id = %s GROUP BY 1, 2, 3""", [team.pk])
        # The budget meters: this month's spend per connection and for the team.
        cursor.execute(
            """INSERT INTO spend_budgetmeter (team_id, connection_id, month, spent_usd, reserved_usd)
               SELECT team_id, connection_id, month, cost_usd, 0 FROM spend_spendmonth
               WHERE team_id = %(team)s AND month = date_trunc('month', now() at time zone 'utc')::date
               UNION ALL
               SELECT team_id, NULL, month, sum(cost_usd), 0 FROM spend_spendmonth
               WHERE team_id = %(team)s AND month = date_trunc('month', now() at time zone 'utc')::date
               GROUP BY team_id, month""", {"team": team.pk})
        cursor.execute("ANALYZE spend_spenddaily; ANALYZE spend_spendmonth; ANALYZE spend_spendentry")
    daily = SpendDaily.objects.filter(team=team)
    calls = sum(daily.values_list("calls", flat=True).iterator(chunk_size=20000))
    print(f"generated {daily.count():,} daily rollup rows standing for {calls:,} ledger calls"
          f"{f' ({raw:,} raw rows)' if raw else ''} in {time.monotonic() - started:.1f} s")
    return team


def measure_usage(team: Team, repeats: int) -> None:
    owner = team.memberships.order_by("pk").first().user  # type: ignore[union-attr]
    client = Client()
    client.force_login(owner)
    rng = random.Random(5)
    today = timezone.now().date()
    person = SpendDaily.objects.filter(team=team).values_list("person_id", flat=True).first()
    cases = {"usage page, 30 days, everyone": "",
             "usage page, 30 days, one person": f"&person={person}",
             "usage page, 30 days, one model, stacked by model": "&model=gpt-4.1-mini&stack=model"}
    for name, extra in cases.items():
        times = []
        for i in range(repeats + 1):
            end = today - timedelta(days=rng.randint(0, DAYS - 30))
            url = f"/usage/?start={end - timedelta(days=29)}&end={end}{extra}"
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200 and b"Cost per day" in response.content
            if i:  # the first is a warm-up
                times.append(elapsed)
        print(summary(name, times))


def measure_budget_check(team: Team, repeats: int) -> None:
    owner = team.memberships.order_by("pk").first().user  # type: ignore[union-attr]
    connection_obj = ProviderConnection.objects.filter(team=team).order_by("pk").first()
    assert connection_obj is not None
    budget_save(team=team, connection=None, amount_usd=Decimal("1000000"), thresholds=[], hard_limit=True, actor=owner)
    budget_save(team=team, connection=connection_obj, amount_usd=Decimal("500000"), thresholds=[], hard_limit=True,
                actor=owner)
    thread = make_thread(team, make_assistant(team, connection_obj, model="gpt-4.1-mini"))
    for i in range(100):
        make_message(thread, f"message {i} " * 20, token_count=60)
    version = thread.assistant.current_version
    assert version is not None
    # Other work still running holds reservations too.
    for i in range(50):
        budget_reserve(team=team, connection_id=connection_obj.pk, key=f"bench-running:{i}", amount=Decimal("0.05"),
                       what="bench work")
    run = Run.objects.create(thread=thread, team=team, assistant=thread.assistant, version=version,
                             model=version.model, status="succeeded")
    times = []
    for i in range(repeats + 1):
        # Inside the transaction that posts the message (rolled back here): the commit is the post's,
        # and so is the BEGIN, sent with the post's first write (its thread's row) before the check.
        with transaction.atomic():
            Thread.objects.filter(pk=thread.pk).update(updated_at=timezone.now())
            started = time.perf_counter()
            run_budget_reserve(team=team, thread=thread, run=run)
            elapsed = (time.perf_counter() - started) * 1000
            transaction.set_rollback(True)
        if i:
            times.append(elapsed)
    print(summary("budget check and reservation before a run is queued (2 hard limits, 50 running)", times))
    # What one round trip to PostgreSQL costs on this machine right now: the check makes one.
    trips = []
    with connection.cursor() as cursor:
        for _ in range(repeats):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            trips.append((time.perf_counter() - started) * 1000)
    print(summary("for scale: one SELECT 1 round trip", trips))
    for key in SpendReservation.objects.filter(key__startswith="bench-running:").values_list("key", flat=True):
        reservation_release(key=key)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    raw = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--raw=")), 0)
    repeats = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--repeats=")), 40)
    team = Team.objects.filter(name=TEAM).first() if "--keep" in argv else None
    if team is None:
        team = build(raw)
    if "--budget-only" not in argv:
        measure_usage(team, repeats)
    if "--usage-only" not in argv:
        measure_budget_check(team, repeats * 10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

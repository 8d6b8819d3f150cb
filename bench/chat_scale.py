"""Scale: 1,000,000 messages in 10,000 threads of one team (one thread holds 5,000).
Generated in PostgreSQL with generate_series (the tsvector column fills itself), then
the thread list, searches and opening the 5,000-message thread are timed as server
time (the view called in-process through Django's test client, rendering included).

    python bench/chat_scale.py [--keep]   # --keep reuses data made by an earlier run
"""

from __future__ import annotations

import sys
import time

from django.db import connection
from django.test import Client

from assistants_app.models import Assistant, Message, Thread
from bench._setup import summary
from project.teams.models import Team
from tests.factories import make_assistant, make_team, make_user

THREADS = 10_000
MESSAGES = 1_000_000
BIG_THREAD = 5_000
WORDS = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike",
    "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee",
    "zulu", "invoice", "refund", "shipping", "order", "customer", "account", "password", "login", "error", "timeout",
    "billing", "plan", "upgrade", "discount", "coupon", "warranty", "return", "exchange", "delivery", "tracking",
    "address", "payment", "card", "bank", "transfer", "receipt", "tax",
]


def build() -> tuple[Team, int]:
    Team.objects.filter(name="Scale bench").delete()
    owner = make_user(f"scale{int(time.time())}")
    team = make_team("Scale bench", owner=owner)
    assistant = make_assistant(team, name="Bench assistant")
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO assistants_app_thread (team_id, assistant_id, title, created_by_id, created_at, updated_at)
               SELECT %s, %s, 'Thread ' || i, %s, now() - (i || ' minutes')::interval,
                      now() - (i || ' minutes')::interval
               FROM generate_series(1, %s) AS i""", [team.pk, assistant.pk, owner.pk, THREADS])
        cursor.execute("SELECT min(id) FROM assistants_app_thread WHERE team_id = %s", [team.pk])
        first_thread = cursor.fetchone()[0]
        # Message i: the big thread takes the first BIG_THREAD; the rest spread evenly.
        # Every 10,000th message mentions "zeppelin" (a rare word); the others use common words.
        cursor.execute(
            """INSERT INTO assistants_app_message (thread_id, team_id, role, text, attachments, tool_calls,
                    tool_call_id, tool_name, pending, token_count, created_at)
               SELECT CASE WHEN i <= %(big)s THEN %(first)s
                           ELSE %(first)s + 1 + (i %% (%(threads)s - 1)) END,
                      %(team)s,
                      CASE WHEN i %% 2 = 0 THEN 'assistant' ELSE 'user' END,
                      (w)[1 + (i * 7) %% %(n)s] || ' ' || (w)[1 + (i * 13) %% %(n)s] || ' ' || (w)[1 + (i * 31) %% %(n)s]
                        || ' ' || (w)[1 + (i * 37) %% %(n)s] || ' the customer wrote about ' || (w)[1 + (i * 3) %% %(n)s]
                        || CASE WHEN i %% 10000 = 0 THEN ' zeppelin' ELSE '' END || ' message ' || i,
                      '[]'::jsonb, '[]'::jsonb, '', '', false, 20, now() - ((%(total)s - i) || ' seconds')::interval
               FROM generate_series(1, %(total)s) AS i, (SELECT %(words)s::text[] AS w) AS vocabulary""",
            {"big": BIG_THREAD, "first": first_thread, "threads": THREADS, "team": team.pk, "total": MESSAGES,
             "words": WORDS, "n": len(WORDS)})
        cursor.execute("ANALYZE assistants_app_message; ANALYZE assistants_app_thread")
    print(f"generated {THREADS} threads and {MESSAGES} messages in {time.monotonic() - started:.1f} s")
    return team, first_thread


def measure(team: Team, big_thread: int, repeats: int = 40) -> None:
    owner = team.memberships.get().user
    ids = list(Message.objects.filter(thread_id=big_thread).order_by("id").values_list("id", flat=True))
    assert len(ids) == BIG_THREAD
    middle = ids[len(ids) // 2]
    client = Client()
    client.force_login(owner)
    cases = {
        "thread list (page 1)": "/threads/",
        "thread list (filtered by assistant)": f"/threads/?assistant={Assistant.objects.get(team=team).pk}",
        "search, rare word (100 hits)": "/threads/?q=zeppelin",
        "search, common word (~100k hits)": "/threads/?q=refund",
        "search, phrase": '/threads/?q="customer+wrote"+invoice',
        "open the 5,000-message thread": f"/threads/{big_thread}/",
        "older page of the 5,000-message thread (from the middle)": f"/threads/{big_thread}/?before={middle}",
    }
    for name, url in cases.items():
        assert client.get(url).status_code == 200  # warm up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.get(url, HTTP_HX_REQUEST="true" if "before=" in url else "")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        print(summary(name, times))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--keep" in argv and (team := Team.objects.filter(name="Scale bench").first()):
        big = Thread.objects.filter(team=team).order_by("id").values_list("id", flat=True).first()
        assert big is not None
    else:
        team, big = build()
    measure(team, big)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

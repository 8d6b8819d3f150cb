"""Semantic search at scale: 1,000,000 messages in 10,000 threads of one team, one
256-dimension vector each, the HNSW index built; then semantic and hybrid searches timed
as server time (ranking, fusion and the results with their neighbours and highlights;
the query's own embedding is one provider call, cached an hour, and is left out) with
recall@10 against an exact search on the same data; then new messages saved at 50 a
second with a real Celery worker embedding them through the sandbox.

The vectors are generated in PostgreSQL like real embeddings of a team's history: each
thread is about one of 1,000 topics, each message its topic's direction plus as much
noise again (cosine about 0.5 within a topic), so the 10 nearest are ten of a topic's
thousand messages, a hard case for an approximate index. The texts name the topic's
words, so keyword and semantic search look at the same threads.

    python -m bench semantic_search [--messages=1000000] [--threads=10000] [--queries=50] [--keep]
                                    [--rate=50] [--seconds=20] [--ef-search=100,300]
                                    [--reindex]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from assistants_app.conversation import Message, ThreadFilters
from bench._setup import pct, summary
from project.teams.models import Team
from search_app import ranking
from search_app.models import MessageEmbedding
from search_app.ranking import best_per_thread, fuse, keyword_ranking, results_for, semantic_ranking
from search_app.selectors import EmbeddingConfig
from search_app.vector_schema import HNSW_EF_CONSTRUCTION, HNSW_M, TABLE, index_statements
from tests.factories import make_assistant, make_team, make_user

DIMS = 256
TOPICS = 1000
MODEL = "text-embedding-3-small"
TEAM_NAME = "Semantic bench"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
         "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
         "xray", "yankee", "zulu", "invoice", "refund", "shipping", "order", "customer", "account", "password",
         "login", "error", "timeout", "billing", "plan", "upgrade", "discount"]


def _value(argv: list[str], name: str) -> str | None:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def _option(argv: list[str], name: str, default: int) -> int:
    value = _value(argv, name)
    return default if value is None else int(value.replace("_", ""))


def build(messages: int, threads: int) -> Team:
    Team.objects.filter(name=TEAM_NAME).delete()
    owner = make_user(f"semantic{int(time.time())}")
    team = make_team(TEAM_NAME, owner=owner)
    assistant = make_assistant(team, name="Bench assistant")
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO assistants_app_thread (team_id, assistant_id, title, created_by_id, created_at, updated_at)
               SELECT %s, %s, 'Thread ' || i, %s, now() - (i || ' minutes')::interval, now() - (i || ' minutes')::interval
               FROM generate_series(1, %s) AS i""", [team.pk, assistant.pk, owner.pk, threads])
        cursor.execute("SELECT min(id) FROM assistants_app_thread WHERE team_id = %s", [team.pk])
        first = cursor.fetchone()[0]
        # Thread t is about topic t % TOPICS, named by three of its words.
        cursor.execute(
            """INSERT INTO assistants_app_message (thread_id, team_id, role, text, attachments, tool_calls, tool_call_id,
                    tool_name, pending, token_count, created_at)
               SELECT %(first)s + (i %% %(threads)s), %(team)s,
                      CASE WHEN i %% 2 = 0 THEN 'assistant' ELSE 'user' END,
                      'topic' || ((i %% %(threads)s) %% %(topics)s) || ' ' || (w)[1 + ((i %% %(threads)s) %% %(topics)s) %% %(n)s]
                        || ' ' || (w)[1 + ((i %% %(threads)s) %% %(topics)s * 7) %% %(n)s] || ' the customer wrote message ' || i,
                      '[]'::jsonb, '[]'::jsonb, '', '', false, 12, now() - ((%(total)s - i) || ' seconds')::interval
               FROM generate_series(1, %(total)s) AS i, (SELECT %(words)s::text[] AS w) AS vocabulary""",
            {"first": first, "threads": threads, "team": team.pk, "total": messages, "topics": TOPICS, "words": WORDS,
             "n": len(WORDS)})
        print(f"  {threads} threads, {messages} messages in {time.monotonic() - started:.0f} s", flush=True)
        started = time.monotonic()
        cursor.execute("DROP TABLE IF EXISTS bench_topics")
        cursor.execute(f"""CREATE TABLE bench_topics AS SELECT t AS id,
                              (SELECT array_agg(random() - 0.5 ORDER BY k) FROM generate_series(1, {DIMS}) k
                               WHERE t IS NOT NULL)::real[] AS c
                           FROM generate_series(0, {TOPICS - 1}) t""")  # noqa: S608 - constants of ours
        # Inserting into a built HNSW index is far slower than building it once after.
        cursor.execute(f"DROP INDEX IF EXISTS search_embedding_hnsw_{DIMS}")
        cursor.execute(
            f"""INSERT INTO {TABLE} (team_id, message_id, thread_id, chunk, model, dimensions, text_sha256, tokens,
                    embedding, created_at)
               SELECT m.team_id, m.id, m.thread_id, 0, %s, {DIMS}, md5(m.text), 12,
                      (SELECT array_agg(tp.c[k] + random() - 0.5 ORDER BY k) FROM generate_series(1, {DIMS}) k
                       WHERE m.id IS NOT NULL)::vector({DIMS}), now()
               FROM assistants_app_message m
               JOIN bench_topics tp ON tp.id = (m.thread_id - %s) %% {TOPICS}
               WHERE m.team_id = %s""", [MODEL, first, team.pk])  # noqa: S608 - constants of ours
        print(f"  {messages} vectors in {time.monotonic() - started:.0f} s", flush=True)
    index(team)
    return team


def index(team: Team) -> None:
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '4GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
        cursor.execute(f"DROP INDEX IF EXISTS search_embedding_hnsw_{DIMS}")
        for statement in index_statements():
            if f"hnsw_{DIMS} " in statement:
                cursor.execute(statement)
        cursor.execute(f"ANALYZE {TABLE}; ANALYZE assistants_app_message; ANALYZE assistants_app_thread")
    print(f"  HNSW index (m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}) built in {time.monotonic() - started:.0f} s",
          flush=True)


def _index_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"search_embedding_hnsw_{DIMS}"])
        return bool(cursor.fetchone()[0])


def _query_vector(rng: random.Random, topic: int) -> list[float]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT c FROM bench_topics WHERE id = %s", [topic])
        centroid = cursor.fetchone()[0]
    return [c + rng.random() - 0.5 for c in centroid]


def exact_top10(team: Team, vector: list[float]) -> list[int]:
    literal = "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"SELECT message_id FROM {TABLE} WHERE team_id = %s AND model = %s AND dimensions = {DIMS} "  # noqa: S608
                       f"ORDER BY embedding <=> %s::vector LIMIT 10", [team.pk, MODEL, literal])
        return [row[0] for row in cursor.fetchall()]


_exact: dict[int, list[int]] = {}


def measure(team: Team, queries: int) -> None:
    config = EmbeddingConfig(connection=None, model=MODEL, dimensions=DIMS, enabled=True)
    rng = random.Random(7)
    semantic_ms: list[float] = []
    hybrid_ms: list[float] = []
    recalls: list[float] = []
    with connection.cursor() as cursor:
        literal = "[" + ",".join("0.1" for _ in range(DIMS)) + "]"
        cursor.execute(f"EXPLAIN SELECT message_id FROM {TABLE} e WHERE team_id = %s AND model = %s AND dimensions = {DIMS} "  # noqa: S608
                       f"ORDER BY e.embedding::vector({DIMS}) <=> %s::vector({DIMS}) LIMIT 400", [team.pk, MODEL, literal])
        plan = " / ".join(row[0].strip()[:90] for row in cursor.fetchall()[:2])
    print(f"  plan: {plan}")
    for n in range(queries + 3):
        topic = rng.randrange(TOPICS)
        vector = _query_vector(rng, topic)
        text = f"{WORDS[topic % len(WORDS)]} {WORDS[(topic * 7) % len(WORDS)]}"
        started = time.perf_counter()
        nearest = semantic_ranking(team=team, config=config, vector=vector, filters=ThreadFilters())
        results_for(team=team, candidates=best_per_thread(fuse(keyword=[], semantic=nearest), 20), text="")
        semantic_elapsed = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        keyword = keyword_ranking(team=team, text=text, filters=ThreadFilters())
        nearest_h = semantic_ranking(team=team, config=config, vector=vector, filters=ThreadFilters())
        results_for(team=team, candidates=best_per_thread(fuse(keyword=keyword, semantic=nearest_h), 20), text=text)
        hybrid_elapsed = (time.perf_counter() - started) * 1000
        if n < 3:
            continue  # warm-up
        semantic_ms.append(semantic_elapsed)
        hybrid_ms.append(hybrid_elapsed)
        if n not in _exact:  # the same queries (seeded) for every index setting
            _exact[n] = exact_top10(team, vector)
        exact = _exact[n]
        recalls.append(len({m for m, _, _ in nearest[:10]} & set(exact)) / 10)
    print("  " + summary("semantic search (20 results with neighbours)", semantic_ms))
    print("  " + summary("hybrid search (keyword + semantic, RRF, highlights)", hybrid_ms))
    print(f"  recall@10 against exact search: mean={statistics.mean(recalls):.3f} min={min(recalls):.2f} "
          f"p5={pct(recalls, 5):.2f} over {len(recalls)} queries")


def embedding_rate(rate: int, seconds: int) -> None:
    """Messages saved at `rate` a second; a real worker embeds them through the sandbox."""
    from celery.contrib.testing.worker import start_worker

    from project.celery import app
    from project.providers.models import ProviderKind
    from sandbox.testing import running_sandbox
    from tests.factories import make_connection, make_thread

    team = make_team(f"Embedding rate {int(time.time())}", owner=make_user(f"rate{int(time.time())}"))
    with running_sandbox(Path(".data/bench-sandbox"), ttft_ms=0, tokens_per_second=0) as url, \
            start_worker(app, pool="threads", concurrency=8, perform_ping_check=False, queues=["io", "cpu"],
                         shutdown_timeout=30, loglevel="WARNING"):
        make_connection(team, base_url=url, kind=ProviderKind.SANDBOX)
        thread = make_thread(team)
        saved_at: dict[int, float] = {}
        started = time.monotonic()
        for i in range(rate * seconds):
            due = started + i / rate
            time.sleep(max(0.0, due - time.monotonic()))
            text = f"message {i} about the {WORDS[i % len(WORDS)]} and the {WORDS[(i * 3) % len(WORDS)]}"
            message = Message.objects.create(thread=thread, team=team, role="user" if i % 2 else "assistant", text=text)
            saved_at[message.pk] = time.monotonic()
        sent_for = time.monotonic() - started
        lags: list[float] = []
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while len(seen) < len(saved_at) and time.monotonic() < deadline:
            seen |= set(MessageEmbedding.objects.filter(team=team).values_list("message_id", flat=True))
            time.sleep(0.05)
        finished = time.monotonic() - started
        rows = MessageEmbedding.objects.filter(team=team).values_list("message_id", "created_at")
        first_saved = min(saved_at.values())
        now_wall, now_mono = timezone.now(), time.monotonic()
        for message_id, created in rows:
            created_mono = now_mono - (now_wall - created).total_seconds()
            lags.append(max(0.0, created_mono - saved_at[message_id]) * 1000)
        print(f"  {len(saved_at)} messages saved in {sent_for:.1f} s ({len(saved_at) / sent_for:.1f}/s); "
              f"{len(seen)} embedded, the last {finished - (max(saved_at.values()) - first_saved):.1f} s after the last save")
        if lags:
            print("  " + summary("save → embedding stored", lags))
        # Capacity: a backlog of 2,000 saved messages queued at once, as the signal queues them.
        from search_app.pending import pending_push

        burst = Message.objects.bulk_create([Message(thread=thread, team=team, role="user", text=f"backlog {i} {WORDS[i % 40]}")
                                             for i in range(2000)])
        started = time.monotonic()
        for message in burst:
            pending_push(team.pk, message.pk)
        while MessageEmbedding.objects.filter(team=team).count() < len(saved_at) + len(burst):
            if time.monotonic() - started > 120:
                break
            time.sleep(0.05)
        took = time.monotonic() - started
        print(f"  a backlog of {len(burst)} messages embedded in {took:.1f} s ({len(burst) / took:.0f} messages/s)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    messages, threads = _option(argv, "messages", 1_000_000), _option(argv, "threads", 10_000)
    team = Team.objects.filter(name=TEAM_NAME).first() if "--keep" in argv else None
    if team is None:
        print(f"building {messages} messages in {threads} threads ({DIMS}-d vectors)", flush=True)
        team = build(messages, threads)
    elif not _index_exists() or "--reindex" in argv:
        index(team)
    else:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {TABLE}; ANALYZE assistants_app_message; ANALYZE assistants_app_thread")
    print(f"machine load (1, 5, 15 min): {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    for ef_search in [int(x) for x in (_value(argv, "ef-search") or str(ranking.EF_SEARCH)).split(",")]:
        ranking.EF_SEARCH = ef_search
        print(f"hnsw.ef_search = {max(ef_search, ranking.CANDIDATES * 4)}", flush=True)
        measure(team, _option(argv, "queries", 50))
    embedding_rate(_option(argv, "rate", 50), _option(argv, "seconds", 20))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Ranking the team's messages for a search: keyword (PostgreSQL full text), semantic
(pgvector, cosine distance over the HNSW index) and hybrid (reciprocal rank fusion of
the two). Every query names the team; the thread list's filters (assistant, author,
dates) apply to all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.postgres.search import SearchHeadline, SearchQuery
from django.db import OperationalError, connection, transaction
from django.db.models import F, FloatField, Func, QuerySet
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from assistants_app.conversation import Message, ThreadFilters
from project.teams.models import Team
from search_app.models import MessageEmbedding
from search_app.selectors import EMBEDDABLE_ROLES, EmbeddingConfig, messages_neighbours
from search_app.vector_schema import INDEXED_DIMENSIONS

MODES = ("keyword", "semantic", "hybrid")
# Each ranking hands this many candidates to the fusion and the filters.
CANDIDATES = 50
# The HNSW search list: a wider list finds the true nearest more often (recall), for a little time.
EF_SEARCH = 300
# Nearer than this (cosine similarity) is not a match: every text has a nearest neighbour, and
# unrelated texts score about 0 to 0.15 with the OpenAI embedding models (and 0 in the sandbox).
MIN_SIMILARITY = 0.15
# Reciprocal rank fusion's constant (Cormack et al. 2009): 60 damps the head of each list.
RRF_K = 60
MARK_START, MARK_STOP = "\u0002", "\u0003"
# Keyword ranking's share of a search's time; past it (a very common word), only the matches
# among the team's RECENT_WINDOW newest messages are ranked, which the (team, -id) index reads
# without touching the rest.
KEYWORD_BUDGET_MS = 75
RECENT_WINDOW = 20_000


@dataclass
class Candidate:
    message_id: int
    thread_id: int
    keyword_rank: int | None = None
    semantic_rank: int | None = None
    similarity: float | None = None

    @property
    def fused(self) -> float:
        return sum(1.0 / (RRF_K + rank) for rank in (self.keyword_rank, self.semantic_rank) if rank is not None)


@dataclass(frozen=True)
class SearchResult:
    message: Message
    before: Message | None
    after: Message | None
    similarity: float | None
    keyword_rank: int | None
    semantic_rank: int | None
    highlight: SafeString


@dataclass(frozen=True)
class SearchOutcome:
    mode: str
    results: list[SearchResult] = field(default_factory=list)
    notice: str = ""


def _thread_filter_sql(filters: ThreadFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters.assistant_id:
        clauses.append("t.assistant_id = %s")
        params.append(filters.assistant_id)
    if filters.author_id:
        clauses.append("t.created_by_id = %s")
        params.append(filters.author_id)
    if filters.since:
        clauses.append("t.updated_at::date >= %s")
        params.append(filters.since)
    if filters.until:
        clauses.append("t.updated_at::date <= %s")
        params.append(filters.until)
    return "".join(f" AND {clause}" for clause in clauses), params


def _has_filters(filters: ThreadFilters) -> bool:
    return bool(filters.assistant_id or filters.author_id or filters.since or filters.until)


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


def semantic_ranking(*, team: Team, config: EmbeddingConfig, vector: Sequence[float], filters: ThreadFilters,
                     limit: int = CANDIDATES, exclude_message_id: int | None = None) -> list[tuple[int, int, float]]:
    """(message id, thread id, cosine similarity) of the nearest messages, best first, a
    message once (its best chunk). The HNSW index answers first; when it leaves too few
    after the team's filters (a filter that keeps few threads, or a small team in a big
    table), an exact search over the team's own rows answers instead."""
    dims = int(config.dimensions)
    rows, complete = _nearest(team, config, vector, filters, limit, exclude_message_id,
                              exact=dims not in INDEXED_DIMENSIONS)
    if not complete:
        rows, _ = _nearest(team, config, vector, filters, limit, exclude_message_id, exact=True)
    return rows


def _nearest(team: Team, config: EmbeddingConfig, vector: Sequence[float], filters: ThreadFilters, limit: int,
             exclude_message_id: int | None, *, exact: bool) -> tuple[list[tuple[int, int, float]], bool]:
    """The nearest rows, and whether that answer is whole: an exact one always is; the
    index's is not when it ran out of rows before the team's (or the filters') share
    filled the list."""
    dims = int(config.dimensions)
    # The size is inlined (an int of ours) so the planner matches the partial index's
    # expression and predicate; everything else is a parameter.
    distance = "e.embedding <=> %s::vector" if exact else f"e.embedding::vector({dims}) <=> %s::vector({dims})"
    filter_sql, filter_params = _thread_filter_sql(filters)
    literal = _vector_literal(vector)
    table = MessageEmbedding._meta.db_table
    where = f"e.team_id = %s AND e.model = %s AND e.dimensions = {dims}"
    where_params: list[Any] = [team.pk, config.model]
    if exclude_message_id:
        where += " AND e.message_id <> %s"
        where_params.append(exclude_message_id)
    # A message may have several chunks: fetch more rows than messages wanted.
    fetch = limit * 4
    if exact:
        # Without the index the filters go inside: the team's own rows, exactly ordered.
        sql = (f"SELECT e.message_id, e.thread_id, {distance} AS distance FROM {table} e "  # noqa: S608
               f"JOIN assistants_app_thread t ON t.id = e.thread_id WHERE {where} AND t.team_id = %s{filter_sql} "
               f"ORDER BY distance LIMIT %s")
        params = [literal, *where_params, team.pk, *filter_params, fetch]
    else:
        sql = (f"SELECT e.message_id, e.thread_id, {distance} AS distance FROM {table} e "  # noqa: S608
               f"WHERE {where} ORDER BY {distance} LIMIT %s")
        params = [literal, *where_params, literal, EF_SEARCH if _has_filters(filters) else fetch]
        if _has_filters(filters):
            # The index's nearest first, then the filters on their threads.
            sql = (f"SELECT n.message_id, n.thread_id, n.distance FROM ({sql}) n "  # noqa: S608
                   f"JOIN assistants_app_thread t ON t.id = n.thread_id WHERE t.team_id = %s{filter_sql} "
                   f"ORDER BY n.distance")
            params += [team.pk, *filter_params]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, fetch)}")
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    best: dict[int, tuple[int, int, float]] = {}
    for message_id, thread_id, dist in fetched:
        if message_id not in best and 1.0 - float(dist) >= MIN_SIMILARITY:
            best[message_id] = (message_id, thread_id, 1.0 - float(dist))
    complete = exact or (len(fetched) >= limit if _has_filters(filters) else len(fetched) == fetch)
    return list(best.values())[:limit], complete


def _websearch(text: str) -> SearchQuery:
    return SearchQuery(text, search_type="websearch", config="english")


def keyword_ranking(*, team: Team, text: str, filters: ThreadFilters, limit: int = CANDIDATES) -> list[tuple[int, int]]:
    """(message id, thread id) of the best full-text matches, best first."""
    query = _websearch(text)
    qs = Message.objects.filter(team=team, search=query, role__in=EMBEDDABLE_ROLES, pending=False)
    if filters.assistant_id:
        qs = qs.filter(thread__assistant_id=filters.assistant_id)
    if filters.author_id:
        qs = qs.filter(thread__created_by_id=filters.author_id)
    if filters.since:
        qs = qs.filter(thread__updated_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(thread__updated_at__date__lte=filters.until)
    try:
        # Ranking every match reads every matching row: a word in one message of forty is
        # 25,000 rows at a million messages, seconds when they are not in memory.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {KEYWORD_BUDGET_MS}")
            return _ranked(qs, query, limit)
    except OperationalError:  # over budget: the matches among the team's newest messages instead
        pass
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {KEYWORD_BUDGET_MS}")
            return _ranked_in_recent_window(cursor, team, text, filters, limit)
    except OperationalError:  # no quick answer by words at all: the meaning ranking stands alone
        return []


def _ranked(qs: QuerySet[Message], query: SearchQuery, limit: int) -> list[tuple[int, int]]:
    # ts_rank on the stored column: SearchRank("search", ...) would parse the tsvector again from text.
    rank = Func(F("search"), query, function="ts_rank", output_field=FloatField())
    return list(qs.annotate(rank=rank).order_by("-rank", "-id").values_list("id", "thread_id")[:limit])


def _ranked_in_recent_window(cursor: Any, team: Team, text: str, filters: ThreadFilters, limit: int) -> list[tuple[int, int]]:
    """The matches among the team's RECENT_WINDOW newest messages, read through the (team, -id)
    index (contiguous rows), ranked."""
    filter_sql, filter_params = _thread_filter_sql(filters)
    cursor.execute(
        "SELECT r.id, r.thread_id FROM (SELECT id, thread_id, search, role, pending FROM assistants_app_message "  # noqa: S608
        "WHERE team_id = %s ORDER BY id DESC LIMIT %s) r JOIN assistants_app_thread t ON t.id = r.thread_id "
        f"WHERE t.team_id = %s{filter_sql} AND r.search @@ websearch_to_tsquery('english', %s) "
        "AND r.role = ANY(%s) AND NOT r.pending "
        "ORDER BY ts_rank(r.search, websearch_to_tsquery('english', %s)) DESC, r.id DESC LIMIT %s",
        [team.pk, RECENT_WINDOW, team.pk, *filter_params, text, [str(r) for r in EMBEDDABLE_ROLES], text, limit])
    return [(row[0], row[1]) for row in cursor.fetchall()]


def fuse(*, keyword: list[tuple[int, int]], semantic: list[tuple[int, int, float]]) -> list[Candidate]:
    """Reciprocal rank fusion: a message's score is the sum of 1/(60 + its rank) over the
    rankings it is in; best first."""
    candidates: dict[int, Candidate] = {}
    for rank, (message_id, thread_id) in enumerate(keyword, start=1):
        candidates.setdefault(message_id, Candidate(message_id, thread_id)).keyword_rank = rank
    for rank, (message_id, thread_id, similarity) in enumerate(semantic, start=1):
        candidate = candidates.setdefault(message_id, Candidate(message_id, thread_id))
        candidate.semantic_rank = rank
        candidate.similarity = similarity
    return sorted(candidates.values(), key=lambda c: (-c.fused, c.message_id))


def best_per_thread(candidates: list[Candidate], limit: int) -> list[Candidate]:
    seen: set[int] = set()
    kept = []
    for candidate in candidates:
        if candidate.thread_id not in seen:
            seen.add(candidate.thread_id)
            kept.append(candidate)
            if len(kept) == limit:
                break
    return kept


def _highlights(team: Team, text: str, message_ids: list[int]) -> dict[int, SafeString]:
    if not message_ids or not text:
        return {}
    query = _websearch(text)
    rows = (Message.objects.filter(team=team, id__in=message_ids, search=query)
            .annotate(headline=SearchHeadline("text", query, config="english", start_sel=MARK_START,
                                              stop_sel=MARK_STOP, max_words=30, min_words=10))
            .values_list("id", "headline"))
    # Escaped first: only the <mark> tags added here are markup.
    return {pk: mark_safe(escape(h).replace(MARK_START, "<mark>").replace(MARK_STOP, "</mark>"))  # noqa: S308
            for pk, h in rows}


def results_for(*, team: Team, candidates: list[Candidate], text: str) -> list[SearchResult]:
    """The chosen messages with their thread, neighbours and highlights, in ranking order
    (four queries, however many results)."""
    ids = [c.message_id for c in candidates]
    by_id = {m.pk: m for m in Message.objects.filter(team=team, id__in=ids).select_related("thread__assistant")}
    neighbours = messages_neighbours(team=team, message_ids=ids)
    highlights = _highlights(team, text, [c.message_id for c in candidates if c.keyword_rank is not None])
    results = []
    for candidate in candidates:
        message = by_id.get(candidate.message_id)
        if message is None:
            continue
        before, after = neighbours.get(message.pk, (None, None))
        results.append(SearchResult(message=message, before=before, after=after, similarity=candidate.similarity,
                                    keyword_rank=candidate.keyword_rank, semantic_rank=candidate.semantic_rank,
                                    highlight=highlights.get(message.pk, SafeString(""))))
    return results

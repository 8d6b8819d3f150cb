"""A search from the thread list, "more like this", and the built-in tool: the mode
chosen (hybrid by default once the team has embeddings), the rankings asked, fused, and
the results built. Semantic search that cannot run (no pgvector, no embeddings, the
provider down) falls back to keyword with a notice saying why."""

from __future__ import annotations

from assistants_app.conversation import Message, ThreadFilters
from project.message_search import MessageSearchHit, SearchModes
from project.teams.models import Team
from search_app.embedding import EmbeddingUnavailable, query_vector
from search_app.models import MessageEmbedding
from search_app.ranking import MODES, SearchOutcome, best_per_thread, fuse, keyword_ranking, results_for, semantic_ranking
from search_app.selectors import team_embedding_config, team_has_embeddings
from search_app.vector_schema import MISSING_MESSAGE, vectors_ready

RESULTS = 20


def team_search_modes(team: Team) -> SearchModes:
    if not vectors_ready():
        return SearchModes("message_search", ("keyword",), "keyword", note=MISSING_MESSAGE)
    config = team_embedding_config(team=team)
    default = "hybrid" if team_has_embeddings(team=team, config=config) else "keyword"
    note = "" if config.usable else "Semantic search is off for this team (Settings → Search)."
    return SearchModes("message_search", MODES, default, note=note)


def search_messages(*, team: Team, text: str, mode: str, filters: ThreadFilters, limit: int = RESULTS) -> SearchOutcome:
    text = text.strip()
    if mode not in MODES:
        mode = team_search_modes(team).default
    if not text:
        return SearchOutcome(mode=mode)
    semantic: list[tuple[int, int, float]] = []
    notice = ""
    if mode in ("semantic", "hybrid"):
        config = team_embedding_config(team=team)
        try:
            vector = query_vector(team=team, config=config, text=text)
            semantic = semantic_ranking(team=team, config=config, vector=vector, filters=filters)
        except EmbeddingUnavailable as error:
            notice, mode = str(error), "keyword"
    keyword = keyword_ranking(team=team, text=text, filters=filters) if mode in ("keyword", "hybrid") else []
    chosen = best_per_thread(fuse(keyword=keyword, semantic=semantic), limit)
    return SearchOutcome(mode=mode, results=results_for(team=team, candidates=chosen, text=text if keyword else ""),
                         notice=notice)


def similar_messages(*, team: Team, message: Message, filters: ThreadFilters, limit: int = RESULTS) -> SearchOutcome:
    """"More like this": the nearest messages of other threads to this one's meaning (its
    stored embedding, or its text embedded now when it has none yet)."""
    config = team_embedding_config(team=team)
    try:
        stored = (MessageEmbedding.objects.filter(team=team, message=message, model=config.model,
                                                  dimensions=config.dimensions).order_by("chunk").first()
                  if vectors_ready() else None)
        vector = list(stored.embedding) if stored is not None else query_vector(team=team, config=config,
                                                                                 text=message.text)
    except EmbeddingUnavailable as error:
        return SearchOutcome(mode="semantic", notice=str(error))
    nearest = semantic_ranking(team=team, config=config, vector=vector, filters=filters,
                               exclude_message_id=message.pk)
    others = [c for c in fuse(keyword=[], semantic=nearest) if c.thread_id != message.thread_id]
    return SearchOutcome(mode="semantic", results=results_for(team=team, candidates=best_per_thread(others, limit),
                                                              text=""))


def tool_search(team: Team, text: str, limit: int) -> list[MessageSearchHit]:
    """The built-in "search the team's threads" tool: hybrid, a hit per thread."""
    outcome = search_messages(team=team, text=text, mode="hybrid", filters=ThreadFilters(), limit=limit)
    return [MessageSearchHit(thread_title=r.message.thread.title, role=r.message.role, text=r.message.text)
            for r in outcome.results]

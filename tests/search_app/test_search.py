"""Each search mode's ranking against the sandbox's embeddings, the thread list's filters,
"more like this", falling back to keyword, and the built-in tool."""

from __future__ import annotations

import pytest

from assistants_app.conversation import ThreadFilters
from assistants_app.tools import run_builtin
from search_app import vector_schema
from search_app.search import search_messages, similar_messages, team_search_modes
from tests import factories
from tests.search_app.conftest import Corpus, embed_all, make_conversation

pytestmark = pytest.mark.django_db


def _titles(team, text: str, mode: str, filters: ThreadFilters | None = None) -> list[str]:
    outcome = search_messages(team=team, text=text, mode=mode, filters=filters or ThreadFilters(query=text))
    assert outcome.mode == mode, outcome.notice
    return [result.message.thread.title for result in outcome.results]


def test_keyword_search_finds_the_words_only(team, corpus: Corpus) -> None:
    embed_all(team)
    assert _titles(team, "refund policy", "keyword") == ["Policy question"]
    assert set(_titles(team, "policy", "keyword")) == {"Privacy", "Policy question"}


def test_semantic_search_finds_a_meaning_without_its_words(team, corpus: Corpus) -> None:
    embed_all(team)
    titles = _titles(team, "refund", "semantic")
    # "Can I get my money back" and "we reimburse" say refund without the word.
    assert titles[0] in ("Kettle trouble", "Policy question")
    assert "Kettle trouble" in titles[:2]
    assert _titles(team, "reset the router", "semantic")[0] == "Router reset"
    assert _titles(team, "umbrella needed?", "semantic")[0] == "Trip to Paris"


def test_semantic_results_carry_the_similarity_and_the_neighbours(team, corpus: Corpus) -> None:
    embed_all(team)
    outcome = search_messages(team=team, text="Can I get my money back?", mode="semantic",
                              filters=ThreadFilters(query="x"))
    best = outcome.results[0]
    assert best.message.text == "Can I get my money back for it?"
    assert best.similarity is not None and best.similarity > 0.5
    assert best.before is not None and best.before.text.startswith("Sorry to hear that")
    assert best.after is not None and best.after.text.startswith("Yes: we reimburse")
    similarities = [r.similarity or 0.0 for r in outcome.results]
    assert similarities == sorted(similarities, reverse=True)


def test_hybrid_puts_what_both_rankings_agree_on_first_and_keeps_meaning_only_hits(team, corpus: Corpus) -> None:
    embed_all(team)
    titles = _titles(team, "refund policy", "hybrid")
    assert titles[0] == "Policy question"  # first by words and by meaning
    assert "Kettle trouble" in titles  # by meaning only
    assert "Router reset" not in titles[:3]
    outcome = search_messages(team=team, text="refund policy", mode="hybrid", filters=ThreadFilters(query="x"))
    top = outcome.results[0]
    assert top.keyword_rank is not None and top.semantic_rank is not None
    assert "<mark>refund</mark>" in top.highlight and "<mark>policy</mark>" in top.highlight


def test_highlights_escape_the_message_text(team, search_connection) -> None:
    make_conversation(team, "Markup", "a refund if 2 < 3 & <b x")
    embed_all(team)
    outcome = search_messages(team=team, text="refund", mode="keyword", filters=ThreadFilters(query="refund"))
    highlight = outcome.results[0].highlight
    assert "<mark>refund</mark>" in highlight and "&lt;" in highlight and "&amp;" in highlight and "<b" not in highlight


def test_the_thread_lists_filters_apply_to_every_mode(team, corpus: Corpus, search_connection) -> None:
    other = factories.make_assistant(team, search_connection, name="Sales")
    make_conversation(team, "Sales refund", "a refund for the order", assistant=other)
    embed_all(team)
    only_sales = ThreadFilters(query="refund", assistant_id=other.pk)
    for mode in ("keyword", "semantic", "hybrid"):
        assert _titles(team, "refund", mode, only_sales) == ["Sales refund"]


def test_more_like_this_finds_other_threads_close_in_meaning(team, corpus: Corpus) -> None:
    make_conversation(team, "Second router", "My router needs a reset again")
    embed_all(team)
    message = corpus.router.messages.order_by("id")[0]
    outcome = similar_messages(team=team, message=message, filters=ThreadFilters())
    titles = [r.message.thread.title for r in outcome.results]
    assert titles[0] == "Second router"
    assert "Router reset" not in titles  # the message's own thread is not "more"


def test_hybrid_is_the_default_once_the_team_has_embeddings(team, corpus: Corpus) -> None:
    assert team_search_modes(team).default == "keyword"
    embed_all(team)
    modes = team_search_modes(team)
    assert modes.default == "hybrid" and modes.modes == ("keyword", "semantic", "hybrid")


def test_without_pgvector_search_is_keyword_with_a_reason(team, corpus: Corpus, monkeypatch) -> None:
    monkeypatch.setattr(vector_schema, "vectors_ready", lambda: False)
    monkeypatch.setattr("search_app.search.vectors_ready", lambda: False)
    monkeypatch.setattr("search_app.embedding.vectors_ready", lambda: False)
    modes = team_search_modes(team)
    assert modes.modes == ("keyword",) and "pgvector" in modes.note
    outcome = search_messages(team=team, text="refund policy", mode="hybrid", filters=ThreadFilters(query="x"))
    assert outcome.mode == "keyword" and "pgvector" in outcome.notice
    assert [r.message.thread.title for r in outcome.results] == ["Policy question"]


def test_a_provider_that_cannot_embed_the_query_falls_back_to_keyword(team, corpus: Corpus) -> None:
    embed_all(team)
    connection = corpus.router.assistant.connection
    assert connection is not None
    connection.base_url = "http://127.0.0.1:9/v1"
    connection.save()
    outcome = search_messages(team=team, text="refund policy", mode="semantic", filters=ThreadFilters(query="x"))
    assert outcome.mode == "keyword" and "could not be asked" in outcome.notice


def test_the_built_in_search_tool_searches_by_words_and_meaning(team, corpus: Corpus) -> None:
    embed_all(team)
    result = run_builtin(tool={"builtin": "search_threads"}, arguments={"query": "reimbursement"}, team=team)
    assert result.startswith("[Kettle trouble]")
    nothing = run_builtin(tool={"builtin": "search_threads"}, arguments={"query": "zebra"}, team=team)
    assert "No messages" in nothing


def test_a_keyword_search_over_its_time_budget_ranks_the_newest_matches(team, corpus: Corpus, monkeypatch) -> None:
    from django.db import OperationalError, connection

    from search_app import ranking

    calls = {"n": 0}
    real_execute = connection.cursor().__class__.execute

    def slow_first_ranking(self, sql, params=None):  # the first ranking "takes too long", as on a huge history
        if "ts_rank" in str(sql) and calls["n"] == 0:
            calls["n"] += 1
            raise OperationalError("canceling statement due to statement timeout")
        return real_execute(self, sql, params)

    monkeypatch.setattr(connection.cursor().__class__, "execute", slow_first_ranking)
    rows = ranking.keyword_ranking(team=team, text="policy", filters=ThreadFilters(query="policy"))
    monkeypatch.undo()
    assert calls["n"] == 1
    assert {thread_id for _, thread_id in rows} == {corpus.refund_policy.pk, corpus.privacy_policy.pk}

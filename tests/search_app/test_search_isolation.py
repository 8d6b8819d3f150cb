"""Team isolation of every vector query: another team's messages, however close in meaning
or words, are never ranked, shown, embedded or counted for this team."""

from __future__ import annotations

import pytest

from assistants_app.conversation import ThreadFilters
from assistants_app.tools import run_builtin
from project.providers.models import ProviderKind
from search_app import services
from search_app.models import MessageEmbedding
from search_app.ranking import keyword_ranking, semantic_ranking
from search_app.search import search_messages, similar_messages, team_search_modes
from search_app.selectors import backfill_estimate, embedded_message_count, team_embedding_config
from tests import factories
from tests.search_app.conftest import embed_all, make_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_teams(team, other_team, search_connection, sandbox_url):
    factories.make_connection(other_team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    ours = make_conversation(team, "Ours", "the router is blinking red")
    theirs = make_conversation(other_team, "Theirs", "the router is blinking red")
    make_conversation(other_team, "Theirs too", "router router router blinking")
    embed_all(team)
    embed_all(other_team)
    return ours, theirs


def test_every_mode_ranks_only_the_teams_own_messages(team, other_team, two_teams) -> None:
    ours, _ = two_teams
    for mode in ("keyword", "semantic", "hybrid"):
        outcome = search_messages(team=team, text="router blinking", mode=mode, filters=ThreadFilters(query="x"))
        assert {r.message.thread_id for r in outcome.results} == {ours.pk}, mode
        assert all(r.message.team_id == team.pk for r in outcome.results)


def test_the_rankings_themselves_never_return_another_teams_rows(team, two_teams) -> None:
    ours, _ = two_teams
    config = team_embedding_config(team=team)
    vector = list(MessageEmbedding.objects.filter(team=team)[0].embedding)
    semantic = semantic_ranking(team=team, config=config, vector=vector, filters=ThreadFilters())
    assert {thread_id for _, thread_id, _ in semantic} == {ours.pk}
    assert {thread_id for _, thread_id in keyword_ranking(team=team, text="router", filters=ThreadFilters())} == {ours.pk}


def test_more_like_this_stays_in_the_team(team, other_team, two_teams) -> None:
    ours, _theirs = two_teams
    make_conversation(team, "Ours again", "my router blinks red")
    embed_all(team)
    outcome = similar_messages(team=team, message=ours.messages.first(), filters=ThreadFilters())
    assert [r.message.thread.title for r in outcome.results] == ["Ours again"]


def test_a_filter_naming_another_teams_assistant_finds_nothing(team, other_team, two_teams) -> None:
    _, theirs = two_teams
    filters = ThreadFilters(query="router", assistant_id=theirs.assistant_id)
    for mode in ("keyword", "semantic", "hybrid"):
        assert search_messages(team=team, text="router", mode=mode, filters=filters).results == []


def test_embedding_another_teams_message_ids_does_nothing(team, other_team, two_teams) -> None:
    _, theirs = two_teams
    MessageEmbedding.objects.filter(team=other_team).delete()
    assert services.team_messages_embed(team=team, message_ids=list(theirs.messages.values_list("id", flat=True))) == 0
    assert not MessageEmbedding.objects.filter(team=other_team).exists()
    assert not MessageEmbedding.objects.filter(message__thread=theirs).exists()


def test_counts_estimates_and_modes_are_the_teams_own(team, other_team, two_teams) -> None:
    config = team_embedding_config(team=team)
    assert embedded_message_count(team=team, config=config) == 1
    assert backfill_estimate(team=team, config=config).messages == 0
    assert team_search_modes(team).default == "hybrid"


def test_the_built_in_tool_searches_only_the_teams_threads(team, two_teams) -> None:
    result = run_builtin(tool={"builtin": "search_threads"}, arguments={"query": "router"}, team=team)
    assert "[Ours]" in result and "Theirs" not in result

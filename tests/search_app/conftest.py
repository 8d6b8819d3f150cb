"""Search fixtures: a team whose embeddings come from the sandbox (whose vectors carry
meaning: shared words, or words of one thesaurus entry, make texts close), and a few
threads whose rankings the tests know."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from assistants_app.models import Message, Thread
from project.providers.models import ProviderConnection, ProviderKind
from search_app.embedding import messages_embed
from search_app.selectors import team_embedding_config
from tests import factories


@pytest.fixture
def search_connection(team: factories.Team, sandbox_url: str) -> ProviderConnection:
    return factories.make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")


def embed_all(team: factories.Team) -> int:
    """Embed every message of the team now, as the worker does after each save."""
    ids = list(Message.objects.filter(team=team).values_list("id", flat=True))
    return messages_embed(team=team, config=team_embedding_config(team=team), message_ids=ids).messages


def make_conversation(team: factories.Team, title: str, *texts: str, assistant: object = None) -> Thread:
    """A thread whose messages alternate user, assistant."""
    thread = factories.make_thread(team, assistant, title=title)  # type: ignore[arg-type]
    for position, text in enumerate(texts):
        factories.make_message(thread, text, role="user" if position % 2 == 0 else "assistant")
    return thread


@dataclass
class Corpus:
    money_back: Thread  # means "refund" without the word
    refund_policy: Thread  # says "refund policy"
    privacy_policy: Thread  # shares only "policy"
    router: Thread
    weather: Thread


@pytest.fixture
def corpus(team: factories.Team, search_connection: ProviderConnection) -> Corpus:
    assistant = factories.make_assistant(team, search_connection, name="Helpdesk")
    return Corpus(
        money_back=make_conversation(team, "Kettle trouble", "My kettle arrived broken.",
                                     "Sorry to hear that. What would you like us to do?",
                                     "Can I get my money back for it?", "Yes: we reimburse within 30 days.",
                                     assistant=assistant),
        refund_policy=make_conversation(team, "Policy question", "Where is the refund policy written down?",
                                        "The refund policy is on the terms page.", assistant=assistant),
        privacy_policy=make_conversation(team, "Privacy", "Did the privacy policy change this year?",
                                         "Yes, the privacy policy changed in March.", assistant=assistant),
        router=make_conversation(team, "Router reset", "How do I reset my router?",
                                 "Hold the router's reset button for ten seconds.", assistant=assistant),
        weather=make_conversation(team, "Trip to Paris", "Will it rain in Paris tomorrow?",
                                  "The forecast says sunny all day.", assistant=assistant),
    )

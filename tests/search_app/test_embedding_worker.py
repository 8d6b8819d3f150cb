"""The whole path, with a real worker: a saved message is embedded after the commit,
a burst of messages in few requests."""

from __future__ import annotations

import time

import pytest

from project.providers.models import ProviderKind
from search_app.models import EmbeddingSpend, MessageEmbedding
from tests import factories
from tests.search_app.conftest import make_conversation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_session")]


def _wait_for(count: int, team: factories.Team, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while MessageEmbedding.objects.filter(team=team).count() < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{MessageEmbedding.objects.filter(team=team).count()} of {count} embedded")
        time.sleep(0.05)


def test_saved_messages_are_embedded_by_the_worker_in_few_requests(sandbox_url) -> None:
    team = factories.make_team("Live")
    factories.make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    texts = [f"message number {i} about routers" for i in range(30)]
    make_conversation(team, "Burst", *texts)
    _wait_for(30, team)
    requests = EmbeddingSpend.objects.filter(team=team).count()
    assert requests < 30  # drained together, not one request per message
    assert sum(EmbeddingSpend.objects.filter(team=team).values_list("inputs", flat=True)) == 30

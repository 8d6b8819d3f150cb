"""The backfill of older messages: the estimate first, then progress a step at a time,
pause and resume, nothing paid twice, and a new estimate when the model or size changes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from assistants_app.models import Message
from project.providers.model_facts import cost_usd
from search_app import services
from search_app.models import BackfillStatus, EmbeddingSpend, MessageEmbedding
from search_app.selectors import backfill_estimate, team_embedding_config
from tests import factories
from tests.search_app.conftest import make_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(team, search_connection) -> list[Message]:
    thread = factories.make_thread(team, title="History")
    texts = [("user", "x" * 400), ("assistant", "y" * 800), ("user", "a question"), ("assistant", "an answer"),
             ("user", "one more"), ("tool", "{}")]
    # Written as a bulk load is: no signal, so nothing is queued and only the backfill embeds them.
    return Message.objects.bulk_create([Message(thread=thread, team=team, role=role, text=text,
                                                token_count=40 if text == "a question" else 0)
                                        for role, text in texts])


def _run_steps(backfill_id: int, limit: int = 20) -> None:
    for _ in range(limit):
        if not services.backfill_step(backfill_id=backfill_id):
            return


def test_the_estimate_counts_tokens_and_prices_live_and_batch(team, history) -> None:
    estimate = backfill_estimate(team=team, config=team_embedding_config(team=team))
    assert estimate.messages == 5  # the tool result is not embedded
    # Stored counts where there are some, else a quarter of the length.
    assert estimate.tokens == 100 + 200 + 40 + len("an answer") // 4 + len("one more") // 4
    # text-embedding-3-small: $0.02 per 1M tokens live, half through the Batch API.
    assert estimate.live_cost == cost_usd(estimate.tokens, Decimal("0.02"))
    assert estimate.batch_cost == cost_usd(estimate.tokens, Decimal("0.01"))


def test_a_backfill_embeds_everything_step_by_step_and_costs_nothing_the_second_time(team, history, monkeypatch) -> None:
    monkeypatch.setattr(services, "BACKFILL_STEP", 2)
    backfill = services.backfill_start(team=team, actor=None)
    assert (backfill.total_messages, backfill.status) == (5, BackfillStatus.RUNNING)
    assert services.backfill_step(backfill_id=backfill.pk) is True
    backfill.refresh_from_db()
    assert backfill.done_messages == 2 and backfill.percent == 40
    _run_steps(backfill.pk)
    backfill.refresh_from_db()
    assert backfill.status == BackfillStatus.DONE and backfill.done_messages == 5 and backfill.embedded_tokens > 0
    assert MessageEmbedding.objects.filter(team=team).values("message").distinct().count() == 5
    paid = EmbeddingSpend.objects.filter(team=team, purpose="backfill").count()
    assert backfill_estimate(team=team, config=team_embedding_config(team=team)).messages == 0
    again = services.backfill_start(team=team, actor=None)
    _run_steps(again.pk)
    again.refresh_from_db()
    assert again.status == BackfillStatus.DONE and again.total_messages == 0
    assert EmbeddingSpend.objects.filter(team=team, purpose="backfill").count() == paid


def test_a_paused_backfill_does_nothing_until_it_is_resumed(team, history, monkeypatch) -> None:
    monkeypatch.setattr(services, "BACKFILL_STEP", 2)
    backfill = services.backfill_start(team=team, actor=None)
    services.backfill_step(backfill_id=backfill.pk)
    assert services.backfill_pause(backfill=backfill, actor=None) is True
    assert services.backfill_step(backfill_id=backfill.pk) is False  # a step already queued does nothing
    backfill.refresh_from_db()
    assert backfill.status == BackfillStatus.PAUSED and backfill.done_messages == 2
    assert services.backfill_pause(backfill=backfill, actor=None) is False
    assert services.backfill_resume(backfill=backfill, actor=None) is True
    _run_steps(backfill.pk)
    backfill.refresh_from_db()
    assert backfill.status == BackfillStatus.DONE and backfill.done_messages == 5
    assert MessageEmbedding.objects.filter(team=team, chunk=0).count() == 5


def test_changing_the_model_or_size_supersedes_the_backfill_and_asks_for_a_new_estimate(team, history,
                                                                                        monkeypatch) -> None:
    monkeypatch.setattr(services, "BACKFILL_STEP", 2)
    first = services.backfill_start(team=team, actor=None)
    _run_steps(first.pk)
    assert services.embedding_settings_save(team=team, actor=None, connection=None, model="text-embedding-3-small",
                                            dimensions=512, enabled=True) is True
    estimate = backfill_estimate(team=team, config=team_embedding_config(team=team))
    assert estimate.messages == 5 and estimate.dimensions == 512
    second = services.backfill_start(team=team, actor=None)
    services.backfill_step(backfill_id=second.pk)
    services.embedding_settings_save(team=team, actor=None, connection=None, model="text-embedding-3-large", dimensions=1024,
                                     enabled=True)
    second.refresh_from_db()
    assert second.status == BackfillStatus.SUPERSEDED
    assert services.backfill_step(backfill_id=second.pk) is False


def test_a_backfill_needs_a_connection_and_embeddings_on(team, history) -> None:
    services.embedding_settings_save(team=team, actor=None, connection=None, model="text-embedding-3-small", dimensions=256,
                                     enabled=False)
    with pytest.raises(services.SearchSettingsError):
        services.backfill_start(team=team, actor=None)


def test_messages_saved_later_are_embedded_by_the_next_backfill_only_once(team, history) -> None:
    backfill = services.backfill_start(team=team, actor=None)
    _run_steps(backfill.pk)
    make_conversation(team, "Later", "a late message")
    assert backfill_estimate(team=team, config=team_embedding_config(team=team)).messages == 1

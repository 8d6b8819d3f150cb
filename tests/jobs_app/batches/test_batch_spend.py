"""Batches' spend: each part's lines, summed from its output file, reach the ledger at batch
prices once, embeddings as their own feature, and stay when the batch is discarded; a
used-up hard limit refuses a submit with the reason on the page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs_app.batches.models import Batch, BatchGroup, BatchStatus
from jobs_app.batches.results import batch_results_collect
from jobs_app.batches.services import batch_group_submit_request
from project.spend.budgets import BudgetExceeded, budget_save
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature, Pricing, SpendEntry
from project.spend.reconcile import reconcile
from tests.conftest import client_for
from tests.factories import batch_chat_line, make_batch_group
from tests.jobs_app.batches.conftest import sync_until_terminal
from tests.jobs_app.batches.test_lifecycle import collect, submit

pytestmark = pytest.mark.django_db


def test_a_collected_batch_is_billed_once_at_batch_prices_and_outlives_the_batch(team, owner, sandbox_conn) -> None:
    group = make_batch_group(team, sandbox_conn, lines=[batch_chat_line(f"q{i}", f"echo: answer {i}") for i in range(4)])
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)
    part = group.parts.get()
    part.refresh_from_db()
    batch_results_collect(batch=part)  # collected again: billed once
    entry = SpendEntry.objects.get(team=team, source_kind="batch")
    assert (entry.feature, entry.pricing, entry.source_id, entry.calls) == (Feature.BATCH, Pricing.BATCH, group.pk, 4)
    assert (entry.input_tokens, entry.output_tokens) == (part.input_tokens, part.output_tokens)
    assert entry.cost_usd == part.cost_usd
    Batch.objects.filter(group=group).delete()
    group.delete()
    assert SpendEntry.objects.filter(pk=entry.pk).exists()


def test_an_embeddings_batch_is_its_own_feature(team, sandbox_conn) -> None:
    lines: list[dict[str, object]] = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "text-embedding-3-small", "input": f"text {i}"}} for i in range(3)]
    group = make_batch_group(team, sandbox_conn, lines=lines, endpoint="/v1/embeddings")
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)
    entry = SpendEntry.objects.get(team=team, source_kind="batch")
    assert entry.feature == Feature.EMBEDDINGS and entry.input_tokens > 0 and entry.output_tokens == 0


def test_a_used_up_hard_limit_refuses_a_submit_and_the_page_says_why(team, owner, sandbox_conn) -> None:
    group = make_batch_group(team, sandbox_conn)
    assert isinstance(group, BatchGroup)
    budget_save(team=team, connection=None, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="gpt-4.1-mini", source_kind="run", key="r",
                           input_tokens=2_500_000))
    with pytest.raises(BudgetExceeded, match="This batch was not started: the team's budget"):
        batch_group_submit_request(group=group, actor=owner)
    assert group.parts.get().status == BatchStatus.DRAFT
    page = client_for(owner).post(reverse("batch_submit", args=[group.pk]), follow=True).content.decode()
    assert "This batch was not started: the team&#x27;s budget of $1.00 a month is used up" in page
    assert group.parts.get().status == BatchStatus.DRAFT


def test_a_collected_batch_reconciles_with_the_sandboxs_costs(team, sandbox_conn) -> None:
    group = make_batch_group(team, sandbox_conn, lines=[batch_chat_line(f"q{i}", f"echo: answer {i}") for i in range(3)])
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)
    entry = SpendEntry.objects.get(team=team, source_kind="batch")
    today = timezone.now().date()
    result = reconcile(team=team, connection=sandbox_conn, start=today, end=today)
    assert not result.error
    [row] = [r for r in result.rows if r.model == entry.model]
    assert row.ledger.cost == entry.cost_usd and row.provider.cost == entry.cost_usd and row.matches
    assert (row.provider.calls, row.provider.input_tokens, row.provider.output_tokens) == (
        3, entry.input_tokens, entry.output_tokens)

"""Batches' spend: each part's lines, summed from its output file, reach the ledger at batch
prices once, embeddings as their own feature, and stay when the batch is discarded; a
used-up hard limit refuses a submit with the reason on the page."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from jobs_app.batches.models import Batch, BatchGroup, BatchRequest, BatchStatus
from jobs_app.batches.results import batch_results_collect
from jobs_app.batches.services import batch_group_submit_request
from project.files.services import file_open
from project.spend.budgets import BudgetExceeded, budget_save
from project.spend.ledger import Call, SpendLine, line_cost, spend_record, spend_record_calls
from project.spend.models import Feature, Pricing, SpendDaily, SpendEntry, SpendMonth
from project.spend.reconcile import reconcile
from tests.conftest import client_for
from tests.factories import batch_chat_line, make_batch_group
from tests.jobs_app.batches.conftest import sync_until_terminal
from tests.jobs_app.batches.test_lifecycle import collect, submit

pytestmark = pytest.mark.django_db


def test_each_line_of_the_output_file_is_billed_once_at_batch_prices_and_outlives_the_batch(
        team, owner, sandbox_conn) -> None:
    group = make_batch_group(team, sandbox_conn, lines=[batch_chat_line(f"q{i}", f"echo: answer {i}") for i in range(4)])
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)
    part = group.parts.get()
    part.refresh_from_db()
    batch_results_collect(batch=part)  # collected again: billed once
    # The output file, read here on its own: one row per line, its tokens and its cost.
    assert part.output_file is not None
    with file_open(file=part.output_file) as stream:
        lines = [json.loads(raw) for raw in stream if raw.strip()]
    by_custom_id = {r.custom_id: r.line_no for r in BatchRequest.objects.filter(batch=part)}
    expected = {}
    for output in lines:
        usage = output["response"]["body"]["usage"]
        priced = SpendLine(team_id=team.pk, feature=Feature.BATCH, model=group.model, source_kind="batch", key="",
                           input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"],
                           pricing=Pricing.BATCH)
        expected[f"batch:{part.pk}:line:{by_custom_id[output['custom_id']]}"] = (
            usage["prompt_tokens"], usage["completion_tokens"], line_cost(priced)[0])
    entries = SpendEntry.objects.filter(team=team, source_kind="batch")
    assert len(lines) == 4 and entries.count() == 4
    assert {e.key: (e.input_tokens, e.output_tokens, e.cost_usd) for e in entries} == expected
    assert {(e.feature, e.pricing, e.source_id, e.calls, e.person_id) for e in entries} == {
        (Feature.BATCH, Pricing.BATCH, group.pk, 1, group.created_by_id)}
    daily = SpendDaily.objects.get(team=team, feature=Feature.BATCH)
    assert (daily.calls, daily.input_tokens, daily.output_tokens, daily.cost_usd) == (
        4, sum(v[0] for v in expected.values()), sum(v[1] for v in expected.values()),
        sum((v[2] or Decimal(0) for v in expected.values()), Decimal(0)))
    Batch.objects.filter(group=group).delete()
    group.delete()
    assert SpendEntry.objects.filter(team=team, source_kind="batch").count() == 4


def test_many_calls_are_appended_priced_as_single_lines_with_their_rollups(team) -> None:
    line = SpendLine(team_id=team.pk, feature=Feature.BATCH, model="gpt-4.1-mini", source_kind="batch", key="b:",
                     pricing=Pricing.BATCH)
    calls = [Call(key=str(i), input_tokens=7 * i + 1, output_tokens=3 * i, cached_tokens=i % 5,
                  reasoning_tokens=i % 3 if i else 0) for i in range(300)]
    assert spend_record_calls(line, calls) == 300
    assert spend_record_calls(line, [*calls[:10], Call(key="300", input_tokens=5)]) == 1  # recorded once each
    for call in [*calls, Call(key="300", input_tokens=5)]:
        entry = SpendEntry.objects.get(key=f"b:{call.key}")
        assert (entry.cached_tokens, entry.reasoning_tokens) == (call.cached_tokens, call.reasoning_tokens)
        single = replace(line, input_tokens=call.input_tokens, output_tokens=call.output_tokens)
        assert (entry.cost_usd, entry.prices) == line_cost(single)
    daily = SpendDaily.objects.get(team=team)
    raw = SpendEntry.objects.filter(team=team).aggregate(cost=Sum("cost_usd"), calls=Sum("calls"),
                                                         i=Sum("input_tokens"), o=Sum("output_tokens"),
                                                         c=Sum("cached_tokens"), r=Sum("reasoning_tokens"))
    assert raw["c"] and raw["r"]
    assert (daily.cost_usd, daily.calls, daily.input_tokens, daily.output_tokens, daily.cached_tokens,
            daily.reasoning_tokens) == (raw["cost"], raw["calls"], raw["i"], raw["o"], raw["c"], raw["r"])
    assert SpendMonth.objects.get(team=team).cost_usd == raw["cost"]
    # A model without a batch price: the rows say unknown, not $0.
    spend_record_calls(replace(line, model="my-local-llama", key="u:"), [Call(key="1", input_tokens=10)])
    assert SpendEntry.objects.get(key="u:1").cost_usd is None
    assert SpendDaily.objects.get(team=team, model="my-local-llama").unpriced_calls == 1


def test_an_embeddings_batch_is_its_own_feature(team, sandbox_conn) -> None:
    lines: list[dict[str, object]] = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "text-embedding-3-small", "input": f"text {i}"}} for i in range(3)]
    group = make_batch_group(team, sandbox_conn, lines=lines, endpoint="/v1/embeddings")
    assert isinstance(group, BatchGroup)
    submit(group)
    sync_until_terminal(group)
    collect(group)
    entries = SpendEntry.objects.filter(team=team, source_kind="batch")
    assert entries.count() == 3
    assert all(e.feature == Feature.EMBEDDINGS and e.input_tokens > 0 and e.output_tokens == 0 for e in entries)


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
    entry = SpendEntry.objects.filter(team=team, source_kind="batch").values("model").annotate(
        cost=Sum("cost_usd"), calls=Sum("calls"), i=Sum("input_tokens"), o=Sum("output_tokens")).get()
    today = timezone.now().date()
    result = reconcile(team=team, connection=sandbox_conn, start=today, end=today)
    assert not result.error
    [row] = [r for r in result.rows if r.model == entry["model"]]
    # One ledger row per line, each rounded to a millionth: within a millionth a call of the provider's.
    assert row.ledger.cost == entry["cost"] and abs(row.difference) <= Decimal("0.000001") * 3 and row.matches
    assert (row.provider.calls, row.provider.input_tokens, row.provider.output_tokens) == (
        3, entry["i"], entry["o"])

"""Eval runs against the sandbox over real HTTP: targets side by side, every grader kind,
partial failures, the estimate, exports, re-running failed cases."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from evals_app import runner, services
from evals_app.models import EvalResult, EvalRun
from evals_app.selectors import run_case_rows, run_figures
from project.notifications.models import Notification
from project.providers.client import ClientOptions, ProviderNotFound, client_for
from project.providers.model_facts import model_facts
from project.providers.models import Engine
from project.spend.models import Feature, SpendEntry
from tests.evals_app.conftest import CALCULATOR, make_set, question, start_run
from tests.factories import make_assistant

pytestmark = pytest.mark.django_db


def _results(run: EvalRun, target_position: int) -> list[EvalResult]:
    return list(run.results.filter(target__position=target_position).order_by("case__position"))


def test_a_run_against_a_version_and_a_swapped_model_grades_both(team, assistant, eval_connection) -> None:
    test_set = make_set(team, question("echo: Paris", expected_text="Paris"), question("echo: Lima", expected_text="Rome"),
                        graders=[{"kind": "exact"}, {"kind": "contains", "value": "a", "weight": 3}], threshold=0.7)
    version = assistant.current_version
    run = start_run(team, test_set, eval_connection, (version, version.model), (version, "gpt-5.4-mini"))
    assert run.results.count() == 4 and run.estimate["input_tokens"] > 0
    runner.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded"
    for position in (1, 2):
        paris, lima = _results(run, position)
        assert paris.output_text == "Paris" and paris.passed and paris.score == 1.0
        assert lima.output_text == "Lima" and lima.passed and lima.score == pytest.approx(0.75)  # contains "a", not exact
        assert lima.verdicts[0] == {"kind": "exact", "weight": 1.0, "passed": False, "score": 0.0,
                                    "reason": "expected exactly Rome, got Lima"}
        assert paris.input_tokens > 0 and paris.output_tokens > 0 and paris.latency_ms is not None
    figures = run_figures(run=run)
    assert [f.target.label for f in figures] == ["Support v1", "Support v1 with gpt-5.4-mini"]
    assert all(f.pass_rate == 1.0 and f.finished == 2 and f.p50_ms is not None and f.p95_ms is not None for f in figures)
    assert figures[0].cost is not None and figures[1].cost is not None and figures[0].cost != figures[1].cost
    assert Notification.objects.filter(team=team, text__contains="4 of 4 answers passed").exists()


def test_a_target_whose_provider_fails_shows_the_error_per_case_and_the_run_finishes(team, assistant, eval_connection) -> None:
    test_set = make_set(team, question("echo: one", expected_text="one"), question("echo: two", expected_text="two"))
    version = assistant.current_version
    run = start_run(team, test_set, eval_connection, (version, version.model), (version, "no-such-model"))
    runner.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded"
    good, bad = run_figures(run=run)
    assert good.passed == 2 and bad.errors == 2 and bad.pass_rate == 0.0
    failed = _results(run, 2)[0]
    assert failed.status == "error" and failed.passed is False and "Not found on the provider (404)" in failed.error
    rows = run_case_rows(run=run, show="failed")
    assert len(rows) == 2 and all(row.differs for row in rows)


def test_a_rate_limited_call_pauses_the_run_and_then_gets_through(eval_connection) -> None:
    """The first attempt gets the sandbox's 429 (retry-after: 1); every thread of the run waits it out."""
    plain = client_for(eval_connection, ClientOptions(max_retries=0))
    limited = plain.with_options(default_headers={"X-Sandbox-Fault": "429"})
    attempts: list[float] = []

    def call():
        attempts.append(time.monotonic())
        client = limited if len(attempts) == 1 else plain
        return client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "echo: ok"}])

    pacer = runner.Pacer()
    reply = runner.call_with_retries(call, pacer)
    assert reply.choices[0].message.content == "ok"
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 0.95


def test_a_refused_request_is_not_retried(eval_connection) -> None:
    plain = client_for(eval_connection, ClientOptions(max_retries=0))
    attempts: list[int] = []

    def call():
        attempts.append(1)
        return plain.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])

    with pytest.raises(ProviderNotFound):
        runner.call_with_retries(call, runner.Pacer())
    assert len(attempts) == 1


def test_embeddings_are_asked_in_batches_each_text_once(eval_connection, monkeypatch) -> None:
    monkeypatch.setattr(runner, "EMBEDDING_BATCH", 2)
    client = client_for(eval_connection, ClientOptions(max_retries=0))
    sent: list[list[str]] = []
    real = client.embeddings.create

    def counting(**arguments):
        sent.append(arguments["input"])
        assert arguments["dimensions"] == 16
        return real(**arguments)

    monkeypatch.setattr(client.embeddings, "create", counting)
    vectors = runner.embed_texts(client, ["a", "b", "c"], model="text-embedding-3-small", dimensions=16,
                                 pacer=runner.Pacer())
    assert sent == [["a", "b"], ["c"]]
    assert set(vectors) == {"a", "b", "c"} and all(len(v) == 16 for v in vectors.values())


def test_tool_calls_expected_and_tool_results_replayed(team, eval_connection) -> None:
    helper = make_assistant(team, eval_connection, name="Calc", tools=[CALCULATOR])
    test_set = make_set(
        team,
        question("use calculator expression=6*7", expected_tool_call={"name": "calculator", "arguments": {"expression": "6*7"}}),
        question("use calculator expression=1+1", tool_results={"calculator": "1+1 = 2"}, expected_text="2"),
        graders=[{"kind": "tool_call"}, {"kind": "contains"}], threshold=0.5)
    run = start_run(team, test_set, eval_connection, (helper.current_version, "gpt-4.1-mini"))
    runner.run_execute(run.pk)
    called, replayed = _results(run, 1)
    assert called.output_tool_calls[0]["function"]["name"] == "calculator"
    assert called.verdicts[0]["passed"] and called.verdicts[0]["reason"] == "calculator was called with the expected arguments"
    assert replayed.output_text == "Tool results: calculator: 1+1 = 2"
    assert replayed.verdicts[1]["passed"] and not replayed.verdicts[0]["passed"]


def test_a_responses_engine_connection_answers_through_the_responses_api(team, eval_connection) -> None:
    # gpt-5.4+ refuse function tools with reasoning on Chat Completions: on a Responses-engine
    # connection the run asks /v1/responses, tool calls and replayed tool results included.
    eval_connection.engine = Engine.RESPONSES
    eval_connection.save(update_fields=["engine"])
    helper = make_assistant(team, eval_connection, name="Calc", model="gpt-5.4-mini", reasoning_effort="low",
                            tools=[CALCULATOR])
    test_set = make_set(
        team,
        question("use calculator expression=6*7", expected_tool_call={"name": "calculator", "arguments": {"expression": "6*7"}}),
        question("use calculator expression=1+1", tool_results={"calculator": "1+1 = 2"}, expected_text="2"),
        question("echo: Paris", expected_text="Paris"),
        graders=[{"kind": "tool_call"}, {"kind": "contains"}], threshold=0.5)
    run = start_run(team, test_set, eval_connection, (helper.current_version, "gpt-5.4-mini"))
    runner.run_execute(run.pk)
    called, replayed, echoed = _results(run, 1)
    assert [r.error for r in (called, replayed, echoed)] == ["", "", ""]
    function = called.output_tool_calls[0]["function"]
    assert function["name"] == "calculator" and json.loads(function["arguments"]) == {"expression": "6*7"}
    assert called.verdicts[0]["passed"] and called.verdicts[0]["reason"] == "calculator was called with the expected arguments"
    assert replayed.output_text == "Tool results: calculator: 1+1 = 2" and replayed.verdicts[1]["passed"]
    assert echoed.output_text == "Paris" and echoed.input_tokens > 0 and echoed.output_tokens > 0
    assert echoed.cost_usd is not None and echoed.latency_ms is not None


def test_the_judge_grades_with_a_strict_structured_reply(team, assistant, eval_connection) -> None:
    test_set = make_set(team, question("echo: Paris", expected_text="Paris", rubric="score=0.9 pass=true reason=correct"),
                        question("echo: Lyon", expected_text="Paris", rubric='score=0.1 pass=false reason="wrong city"'),
                        graders=[{"kind": "judge", "model": "gpt-4.1-mini"}], threshold=0.5)
    version = assistant.current_version
    run = start_run(team, test_set, eval_connection, (version, version.model))
    assert run.estimate["judge_tokens"] > 0
    runner.run_execute(run.pk)
    right, wrong = _results(run, 1)
    assert right.passed and right.score == pytest.approx(0.9) and right.verdicts[0]["reason"] == "judge: correct"
    assert not wrong.passed and wrong.verdicts[0]["reason"] == "judge: wrong city"
    assert right.judge_tokens > 0
    # Each judge call is a ledger row of its own, at the judge model's prices, beside each answer's.
    judged = SpendEntry.objects.filter(team=team, feature=Feature.EVAL, source_id=run.pk, key__startswith="eval_judge:")
    assert sorted(judged.values_list("key", flat=True)) == [f"eval_judge:{right.pk}:1", f"eval_judge:{wrong.pk}:1"]
    assert {e.model for e in judged} == {"gpt-4.1-mini"}
    assert sum(e.input_tokens + e.output_tokens for e in judged) == right.judge_tokens + wrong.judge_tokens
    assert SpendEntry.objects.filter(team=team, source_id=run.pk, key__startswith="eval_result:").count() == 2


def test_a_flush_writes_its_ledger_rows_one_statement_per_model_each_row_as_priced_alone(
        team, owner, assistant, eval_connection) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from project.spend.ledger import SpendLine, line_cost

    version = assistant.current_version
    run = start_run(team, make_set(team, question("echo: a"), question("echo: b")), eval_connection,
                    (version, version.model), (version, "gpt-5.4-mini"))
    EvalRun.objects.filter(pk=run.pk).update(created_by=owner)
    run.refresh_from_db()
    results = list(run.results.select_related("target").order_by("target__position", "case__position"))
    answers = [runner.Answer(result_id=r.pk, spend=runner.Spend(input=1000 + n, cached=200 * (n % 2), output=50 + n),
                             judges=[("gpt-4.1-mini", runner.Spend(input=300 + n, cached=100, output=20)),
                                     ("gpt-4.1-mini", runner.Spend())])  # a second judge call not billed: no row
               for n, r in enumerate(results)]
    writer = runner._Writer(run, threshold=None)
    with CaptureQueriesContext(connection) as queries:
        for answer in answers:
            writer.add(answer)
        writer.flush()
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"] and "spend_spendentry" in q["sql"]]
    assert len(inserts) == 3  # each target model's answers, the judge model's calls

    line = SpendLine(team_id=team.pk, feature=Feature.EVAL, model="", source_kind="eval", source_id=run.pk,
                     source_label=f"Eval run {run.pk}", key="", connection_id=eval_connection.pk, person_id=owner.pk)
    expected = {}
    for result, answer in zip(results, answers, strict=True):
        judge = answer.judges[0][1]
        for row in (
                replace(line, model=result.target.model, key=f"eval_result:{result.pk}", input_tokens=answer.spend.input,
                        cached_tokens=answer.spend.cached, output_tokens=answer.spend.output),
                replace(line, model="gpt-4.1-mini", key=f"eval_judge:{result.pk}:1", source_label=f"Eval run {run.pk} (judge)",
                        input_tokens=judge.input, cached_tokens=judge.cached, output_tokens=judge.output)):
            cost, prices = line_cost(row)
            expected[row.key] = (row.model, row.source_label, row.input_tokens, row.cached_tokens, row.output_tokens,
                                 "standard", prices, cost)
    entries = SpendEntry.objects.filter(source_id=run.pk, feature=Feature.EVAL)
    assert {e.key: (e.model, e.source_label, e.input_tokens, e.cached_tokens, e.output_tokens, e.pricing, e.prices,
                    e.cost_usd) for e in entries} == expected
    assert all(e.cost_usd for e in entries)
    assert {(e.team_id, e.source_kind, e.connection_id, e.person_id, e.calls, e.reasoning_tokens, e.trained_tokens)
            for e in entries} == {(team.pk, "eval", eval_connection.pk, owner.pk, 1, 0, 0)}
    # Saved again (a worker that died after its flush): each row is recorded once.
    for answer in answers:
        writer.add(answer)
    writer.flush()
    assert entries.count() == len(expected) == 8


def test_embeddings_similarity_against_the_expected_answer(team, assistant, eval_connection) -> None:
    test_set = make_set(team, question("echo: same words", expected_text="same words"),
                        question("echo: other words", expected_text="same words"),
                        graders=[{"kind": "embedding", "threshold": 0.95, "dimensions": 64}])
    version = assistant.current_version
    run = start_run(team, test_set, eval_connection, (version, version.model))
    runner.run_execute(run.pk)
    same, other = _results(run, 1)
    assert same.passed and same.score == pytest.approx(1.0) and same.verdicts[0]["reason"].startswith("cosine 1.000")
    assert not other.passed and other.score is not None and other.score < 0.95
    # The grader's embeddings request is billed too: one ledger row, recorded once if graded again.
    embedded = SpendEntry.objects.filter(team=team, source_id=run.pk, key__startswith="eval_embed:")
    assert embedded.count() == 1 and embedded.get().input_tokens > 0


def test_estimate_rerun_failed_and_exports(owner_client, team, assistant, eval_connection) -> None:
    test_set = make_set(team, question("echo: =cmd|' /C calc'!A0", expected_text="x"), question("echo: yes", expected_text="yes"))
    version = assistant.current_version
    url = reverse("eval_run_new", args=[test_set.pk])
    form = {"connection": eval_connection.pk, "concurrency": 4, "mode": "live", "target_version": [version.pk, version.pk],
            "target_model": ["", "gpt-5.4-mini"]}
    estimate = owner_client.post(url, {**form, "action": "estimate"})
    assert estimate.status_code == 200 and "data-estimate-total" in estimate.content.decode()
    assert not EvalRun.objects.exists()
    started = owner_client.post(url, {**form, "action": "start"})
    run = EvalRun.objects.get()
    assert started.status_code == 302 and started["Location"] == reverse("eval_run_detail", args=[run.pk])
    runner.run_execute(run.pk)
    page = owner_client.get(reverse("eval_run_detail", args=[run.pk]), headers={"HX-Request": "true", "HX-Target": "run-live"})
    assert page.status_code == 286  # finished: polling stops
    assert "4 of 4 answers" in page.content.decode()
    exported = owner_client.get(reverse("eval_run_csv", args=[run.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert rows[0][:4] == ["case", "name", "question", "expected"] and len(rows) == 3
    assert rows[1][4].startswith("'=cmd")  # model output never runs as a spreadsheet formula
    assert rows[1][5] == "no" and rows[2][5] == "yes"
    lines = b"".join(owner_client.get(reverse("eval_run_jsonl", args=[run.pk])).streaming_content).decode().splitlines()
    assert len(lines) == 4 and json.loads(lines[3])["model"] == "gpt-5.4-mini"
    rerun = owner_client.post(reverse("eval_run_rerun", args=[run.pk]))
    again = EvalRun.objects.exclude(pk=run.pk).get()
    assert rerun["Location"] == reverse("eval_run_detail", args=[again.pk])
    assert again.rerun_of == run and again.results.count() == 2 and again.targets.count() == 2
    failed_only = owner_client.get(reverse("eval_run_detail", args=[run.pk]) + "?show=failed").content.decode()
    assert "=cmd" in failed_only and "echo: yes" not in failed_only


def test_a_run_needs_graders_cases_and_targets(team, assistant, eval_connection) -> None:
    version = assistant.current_version
    with pytest.raises(services.EvalError, match="no grader"):
        start_run(team, make_set(team, question("x"), graders=[]), eval_connection, (version, version.model))
    with pytest.raises(services.EvalError, match="no cases"):
        start_run(team, make_set(team), eval_connection, (version, version.model))
    with pytest.raises(services.EvalError, match="at least one target"):
        start_run(team, make_set(team, question("x")), eval_connection)


def test_a_stale_run_is_sent_again_and_its_answered_cases_are_kept(team, assistant, eval_connection) -> None:
    from datetime import timedelta

    from django.utils import timezone

    test_set = make_set(team, question("echo: a", expected_text="a"), question("echo: b", expected_text="b"))
    version = assistant.current_version
    run = start_run(team, test_set, eval_connection, (version, version.model))
    first = run.results.order_by("id").first()
    EvalResult.objects.filter(pk=first.pk).update(status="done", output_text="kept", passed=False)  # type: ignore[union-attr]
    EvalRun.objects.filter(pk=run.pk).update(status="running", attempts=1, heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert services.eval_runs_recover_stale(stale_after_seconds=60) == (1, 0)
    runner.run_execute(run.pk)  # what the task sent again does
    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempts == 2
    assert sorted(run.results.values_list("output_text", flat=True)) == ["b", "kept"]
    EvalRun.objects.filter(pk=run.pk).update(status="running", attempts=3, heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert services.eval_runs_recover_stale(stale_after_seconds=60) == (0, 1)


def _stale_run_under_a_hard_limit(team: Any, owner: Any, assistant: Any, eval_connection: Any) -> EvalRun:
    """A run holding its estimate under a hard limit whose worker stopped for the last time."""
    from datetime import timedelta

    from django.utils import timezone

    from project.spend.budgets import budget_save

    budget_save(team=team, connection=None, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    version = assistant.current_version
    run = start_run(team, make_set(team, question("echo: a"), question("echo: b")), eval_connection,
                    (version, version.model))
    EvalRun.objects.filter(pk=run.pk).update(status="running", attempts=3, heartbeat_at=timezone.now() - timedelta(minutes=5))
    return run


def _team_reserved(team: Any) -> Decimal:
    from project.spend.models import BudgetMeter

    return BudgetMeter.objects.get(team=team, connection_id=None).reserved_usd


def test_a_stale_run_failed_by_the_sweep_lets_its_reservation_go_and_tells_the_team(
        team, owner, assistant, eval_connection) -> None:
    from evals_app.models import eval_reservation_key
    from project.spend.models import SpendReservation

    run = _stale_run_under_a_hard_limit(team, owner, assistant, eval_connection)
    assert _team_reserved(team) > 0
    assert services.eval_runs_recover_stale(stale_after_seconds=60) == (0, 1)
    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None and "worker stopped several times" in run.error
    assert list(run.results.values_list("status", flat=True)) == ["error", "error"]
    # The budget is free again at once, not when the reservation expires two days later.
    assert not SpendReservation.objects.filter(key=eval_reservation_key(run.pk)).exists()
    assert _team_reserved(team) == 0
    assert Notification.objects.filter(team=team, text__startswith=f"Eval run #{run.pk} of ",
                                       text__contains="failed: The run's worker stopped several times").exists()


def test_a_stale_run_a_worker_finishes_meanwhile_is_not_failed_by_the_sweep(
        team, owner, assistant, eval_connection, monkeypatch) -> None:
    run = _stale_run_under_a_hard_limit(team, owner, assistant, eval_connection)
    real_finish = services.finish

    def finished_meanwhile(stale: EvalRun, status: str, **kwargs: Any) -> bool:
        runner.run_execute(run.pk)  # between the sweep's read and its update, as a late worker would
        return real_finish(stale, status, **kwargs)

    monkeypatch.setattr(services, "finish", finished_meanwhile)
    assert services.eval_runs_recover_stale(stale_after_seconds=60, max_attempts=3) == (0, 0)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.error == ""
    assert sorted(run.results.values_list("output_text", flat=True)) == ["a", "b"]
    assert _team_reserved(team) == 0
    assert not Notification.objects.filter(team=team, text__contains="failed").exists()


def test_the_version_list_shows_each_sets_latest_pass_rate(owner_client, team, assistant, eval_connection) -> None:
    version = assistant.current_version
    test_set = make_set(team, question("echo: a", expected_text="a"), question("echo: b", expected_text="c"))
    older = start_run(team, test_set, eval_connection, (version, version.model))
    runner.run_execute(older.pk)
    EvalResult.objects.filter(run=older).update(passed=False)
    newer = start_run(team, test_set, eval_connection, (version, version.model), (version, "gpt-5.4-mini"))
    runner.run_execute(newer.pk)
    page = owner_client.get(reverse("assistant_detail", args=[assistant.pk])).content.decode()
    cell = page.split("data-eval-results>")[1].split("</td>")[0]
    assert "50%" in cell and reverse("eval_run_detail", args=[newer.pk]) in cell and "Capitals v2" in cell
    # What the run's answers cost is in the team's ledger, one row per answer, and on Usage.
    entries = SpendEntry.objects.filter(team=team, feature=Feature.EVAL, source_id=newer.pk)
    assert entries.count() == 4 and all(entry.input_tokens > 0 for entry in entries)
    assert sorted(set(entries.values_list("model", flat=True))) == sorted({version.model, "gpt-5.4-mini"})
    assert "Evaluations" in owner_client.get(reverse("usage")).content.decode()


def test_a_versions_page_shows_its_latest_result_per_test_set(owner_client, team, assistant, eval_connection) -> None:
    version = assistant.current_version
    capitals = make_set(team, question("echo: a", expected_text="a"), question("echo: b", expected_text="c"))
    older = start_run(team, capitals, eval_connection, (version, version.model))
    runner.run_execute(older.pk)
    EvalResult.objects.filter(run=older).update(passed=False)
    newer = start_run(team, capitals, eval_connection, (version, version.model))
    runner.run_execute(newer.pk)
    rivers = make_set(team, question("echo: Nile", expected_text="Nile"), name="Rivers")
    only = start_run(team, rivers, eval_connection, (version, "gpt-5.4-mini"), (version, version.model))
    runner.run_execute(only.pk)
    page = owner_client.get(reverse("version_diff", args=[version.pk])).content.decode()
    section = page.split("data-version-evals>")[1].split("</section>")[0]
    rows = [row.split("</li>")[0] for row in section.split("<li>")[1:]]
    assert len(rows) == 2
    # newest first; the version's own model only (not the run's swapped candidate)
    assert "Rivers v2" in rows[0] and "1 of 1 passed (100%)" in rows[0]
    assert reverse("eval_run_detail", args=[only.pk]) in rows[0]
    assert "Capitals v2" in rows[1] and "1 of 2 passed (50%)" in rows[1]
    assert reverse("eval_run_detail", args=[newer.pk]) in rows[1]
    assert reverse("eval_run_detail", args=[older.pk]) + '"' not in section


def _batch_run_until_done(run: EvalRun, timeout: float = 20.0) -> EvalRun:
    from evals_app import batch_runs

    batch_runs.batch_run_submit(run.pk)
    run.refresh_from_db()
    assert run.remote_batch_id.startswith("batch_"), run.error
    deadline = time.monotonic() + timeout
    while run.status == "running":
        assert time.monotonic() < deadline, f"batch still {run.batch_status}"
        time.sleep(0.1)
        batch_runs.batch_run_sync(run.pk)
        run.refresh_from_db()
    return run


def test_a_batch_run_joins_results_to_cases_at_half_price(team, assistant, eval_connection) -> None:
    cases = [question(f"echo: answer {i}", expected_text=f"answer {i}") for i in range(5)]
    test_set = make_set(team, *cases, graders=[{"kind": "exact"}, {"kind": "judge", "rubric": "score=1 pass=true reason=ok"}])
    version = assistant.current_version
    targets = [services.TargetChoice(version, version.model), services.TargetChoice(version, "no-such-model")]
    set_version = test_set.current_version
    assert set_version is not None
    live_estimate = services.eval_estimate(team=team, version=set_version, connection=eval_connection,
                                           targets=targets[:1])["estimate"]
    run = services.eval_run_create(team=team, actor=None, version=set_version, connection=eval_connection,
                                   targets=targets, mode="batch")
    assert run.estimate["input_tokens"] > 0
    batch_estimate = services.eval_estimate(team=team, version=set_version, connection=eval_connection,
                                            targets=targets[:1], mode="batch")["estimate"]
    assert batch_estimate.targets[0].cost_usd * 2 == live_estimate.targets[0].cost_usd
    run = _batch_run_until_done(run)
    assert run.status == "succeeded" and run.batch_status == "completed"
    answered = _results(run, 1)
    assert [r.output_text for r in answered] == [f"answer {i}" for i in range(5)]  # joined by custom_id
    assert all(r.passed and len(r.verdicts) == 2 for r in answered)
    first = answered[0]
    assert first.judge_tokens > 0
    spend = runner.Spend(input=first.input_tokens, output=first.output_tokens)
    facts = model_facts(version.model)
    answer_at_batch_prices = spend.cost(facts, batch=True)
    answer_at_live_prices = spend.cost(facts)
    assert answer_at_batch_prices is not None and answer_at_live_prices is not None
    assert answer_at_batch_prices < answer_at_live_prices
    assert first.cost_usd is not None and first.cost_usd > answer_at_batch_prices  # the judge, asked live, on top
    answer_row = SpendEntry.objects.get(key=f"eval_result:{first.pk}")
    # (the ledger rounds each row to a millionth of a dollar, half up)
    assert answer_row.pricing == "batch" and answer_row.cost_usd is not None
    assert abs(answer_row.cost_usd - answer_at_batch_prices) <= Decimal("0.000001") < answer_at_live_prices
    assert SpendEntry.objects.get(key=f"eval_judge:{first.pk}:1").pricing == "standard"
    refused = _results(run, 2)
    assert all(r.status == "error" and "model" in r.error for r in refused)
    assert run.batch_input_file is not None and run.batch_input_file.purpose == "batch"


def test_a_batch_run_on_a_responses_engine_connection_asks_v1_responses(team, eval_connection) -> None:
    eval_connection.engine = Engine.RESPONSES
    eval_connection.save(update_fields=["engine"])
    helper = make_assistant(team, eval_connection, name="Calc", model="gpt-5.4-mini", reasoning_effort="low",
                            tools=[CALCULATOR])
    test_set = make_set(
        team,
        question("use calculator expression=6*7", expected_tool_call={"name": "calculator", "arguments": {"expression": "6*7"}}),
        question("echo: Paris", expected_text="Paris"),
        graders=[{"kind": "tool_call"}, {"kind": "contains"}], threshold=0.5)
    set_version, helper_version = test_set.current_version, helper.current_version
    assert set_version is not None and helper_version is not None
    run = services.eval_run_create(team=team, actor=None, version=set_version, connection=eval_connection,
                                   targets=[services.TargetChoice(helper_version, "gpt-5.4-mini")], mode="batch")
    run = _batch_run_until_done(run)
    assert run.status == "succeeded", run.error
    called, echoed = _results(run, 1)
    assert [called.error, echoed.error] == ["", ""]
    assert called.output_tool_calls[0]["function"]["name"] == "calculator" and called.verdicts[0]["passed"]
    assert echoed.output_text == "Paris" and echoed.input_tokens > 0 and echoed.cost_usd is not None


def test_a_used_up_hard_limit_refuses_an_eval_run_and_a_finished_run_lets_its_reservation_go(
        team, owner, assistant, eval_connection) -> None:
    from decimal import Decimal

    from evals_app.models import eval_reservation_key
    from project.spend.budgets import budget_save
    from project.spend.ledger import SpendLine, spend_record
    from project.spend.models import SpendReservation

    test_set = make_set(team, question("echo: Paris", expected_text="Paris"))
    version = assistant.current_version
    budget_save(team=team, connection=None, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    # Under the limit: the run starts and holds its estimate until it finishes.
    run = start_run(team, test_set, eval_connection, (version, version.model))
    assert SpendReservation.objects.filter(key=eval_reservation_key(run.pk)).exists()
    runner.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert not SpendReservation.objects.filter(key=eval_reservation_key(run.pk)).exists()
    # The month's spend reaches the limit: a new run is refused, naming the budget, and nothing is made.
    spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="gpt-4.1-mini", source_kind="run", key="r",
                           input_tokens=2_500_000))  # $1.00 at $0.40 per 1M
    with pytest.raises(services.EvalError, match="This eval run was not started: the team's budget"):
        start_run(team, test_set, eval_connection, (version, version.model))
    assert EvalRun.objects.filter(team=team).count() == 1

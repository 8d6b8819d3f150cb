"""Running an eval: every pending (case, target) is asked of the provider, graded and saved.

One Celery task per run keeps a pool of threads calling the provider at the run's
concurrency; the threads only call and grade, the task's own thread writes the results in
batches (so a 2,000-request run does not hold 16 database connections). Requests are built
by chat's published request builder (version_request_spec, then chat_request or
responses_request for the connection's engine), the same as a chat run's. A 429 pauses
every thread of the run for the provider's retry-after, so the run slows to the
connection's limit instead of failing; a case whose call still fails records the
provider's error and the run goes on.

The embeddings grader runs after every answer is in: outputs and expected texts are
embedded in batches of up to 2,048 inputs per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from typing import Any

import openai
from django.db import connection, transaction
from django.db.models import Count, F, Field, Q
from django.db.models.functions import Coalesce, Now
from django.urls import reverse
from django.utils import timezone

from assistants_app.conversation import (
    RequestSpec,
    chat_request,
    responses_input,
    responses_request,
    version_request_spec,
)
from evals_app import graders as g
from evals_app.models import (
    EvalResult,
    EvalRun,
    EvalTarget,
    ResultStatus,
    RunMode,
    RunStatus,
    TestCase,
    eval_reservation_key,
)
from project.notifications.services import notification_send
from project.providers.client import ClientOptions, ProviderError, ProviderRateLimited, client_for, provider_errors
from project.providers.model_facts import ModelFacts, cost_usd, model_facts
from project.providers.models import Engine
from project.spend.budgets import reservation_release
from project.spend.ledger import Call, SpendLine, spend_record, spend_record_calls
from project.spend.models import Feature, Pricing

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
MAX_TOOL_ROUNDS = 4
EMBEDDING_BATCH = 2048
FLUSH_EVERY = 100  # results written together
FLUSH_SECONDS = 0.5


# -- one case asked of one target --------------------------------------------------------------------

@dataclass
class Spend:
    input: int = 0
    cached: int = 0
    output: int = 0

    def add(self, usage: Any) -> None:
        if usage is None:
            return
        self.input += usage.prompt_tokens or 0
        self.output += usage.completion_tokens or 0
        details = getattr(usage, "prompt_tokens_details", None)
        self.cached += (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0

    def add_response(self, usage: Any) -> None:
        """A Responses usage (input_tokens, output_tokens, input_tokens_details)."""
        if usage is None:
            return
        self.input += usage.input_tokens or 0
        self.output += usage.output_tokens or 0
        details = getattr(usage, "input_tokens_details", None)
        self.cached += (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0

    def cost(self, facts: ModelFacts, *, batch: bool = False) -> Decimal | None:
        """At the model's prices, or the Batch API's (cached input is not discounted further there)."""
        if batch:
            prices = (facts.price("batch_input"), facts.price("batch_input"), facts.price("batch_output"))
        else:
            prices = (facts.price("input"), facts.price("cached_input") or facts.price("input"), facts.price("output"))
        parts = [cost_usd(self.input - self.cached, prices[0]), cost_usd(self.cached, prices[1]),
                 cost_usd(self.output, prices[2])]
        return None if any(p is None for p in parts) else sum((p for p in parts if p is not None), Decimal(0))


@dataclass
class Answer:
    result_id: int
    output: g.ModelOutput = field(default_factory=lambda: g.ModelOutput(""))
    error: str = ""
    verdicts: list[g.Verdict] = field(default_factory=list)
    spend: Spend = field(default_factory=Spend)
    judge_tokens: int = 0
    # Each judge call's model and tokens: a ledger row each, beside the answer's.
    judges: list[tuple[str, Spend]] = field(default_factory=list)
    cost: Decimal | None = None
    latency_ms: int = 0


class Pacer:
    """Shared by a run's threads: after a 429 nobody sends until the provider's retry-after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._until - time.monotonic()
            if delay <= 0:
                return
            time.sleep(min(delay, 1.0))


def _backoff(attempt: int, error: ProviderError) -> float:
    wait_for = error.retry_after if error.retry_after is not None else RETRY_BASE_SECONDS * 2 ** attempt
    return float(min(wait_for, RETRY_MAX_SECONDS))


def call_with_retries[T](call: Callable[[], T], pacer: Pacer) -> T:
    attempt = 0
    while True:
        pacer.wait()
        try:
            with provider_errors():
                return call()
        except ProviderError as error:
            attempt += 1
            if not error.transient or attempt >= MAX_ATTEMPTS:
                raise
            delay = _backoff(attempt - 1, error)
            if isinstance(error, ProviderRateLimited):
                pacer.hold(delay)
            else:
                time.sleep(delay)


@dataclass(frozen=True)
class TargetPlan:
    target_id: int
    spec: RequestSpec
    facts: ModelFacts
    engine: str = Engine.CHAT_COMPLETIONS


def target_plan(target: EvalTarget, engine: str = Engine.CHAT_COMPLETIONS) -> TargetPlan:
    """The target's version as a request spec, its model swapped for the candidate's (the
    candidate's facts decide which sampling or reasoning settings it takes), asked through
    the connection's engine."""
    facts = model_facts(target.model)
    spec = version_request_spec(target.version, facts)
    return TargetPlan(target.pk, replace(spec, model=target.model), facts, engine)


def _message_out(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.content or (None if message.tool_calls else "")}
    if message.tool_calls:
        out["tool_calls"] = [call.model_dump(exclude_none=True) for call in message.tool_calls]
    return out


def _replayable(case: TestCase, calls: Sequence[dict[str, Any]]) -> bool:
    return bool(calls) and not case.expected_tool_call and all(
        (c.get("function") or {}).get("name", "") in case.tool_results for c in calls)


def _tool_messages(case: TestCase, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": c.get("id", ""), "content": case.tool_results[c["function"]["name"]]}
            for c in calls]


def answer_case(client: openai.OpenAI, plan: TargetPlan, case: TestCase, pacer: Pacer) -> tuple[g.ModelOutput, Spend, int]:
    """The target's reply to the case: tool calls the case has results for are answered with
    them and the model asked again; a call to any other tool is the reply."""
    if plan.engine == Engine.RESPONSES:
        return answer_case_responses(client, plan, case, pacer)
    messages = list(case.messages)
    spend = Spend()
    started = time.monotonic()
    for _ in range(MAX_TOOL_ROUNDS):
        body = chat_request(plan.spec, messages, stream=False)
        completion = call_with_retries(lambda body=body: client.chat.completions.create(**body), pacer)  # type: ignore[misc]
        spend.add(completion.usage)
        message = completion.choices[0].message if completion.choices else None
        if message is None:
            raise ProviderError("The provider's reply had no choices.")
        out = _message_out(message)
        calls = out.get("tool_calls") or []
        if not _replayable(case, calls):
            return g.ModelOutput(message.content or "", calls), spend, int((time.monotonic() - started) * 1000)
        messages.append(out)
        messages.extend(_tool_messages(case, calls))
    # Tools answered MAX_TOOL_ROUNDS times over: the last reply (its calls) is the answer.
    return g.ModelOutput(out.get("content") or "", calls), spend, int((time.monotonic() - started) * 1000)


def answer_case_responses(client: openai.OpenAI, plan: TargetPlan, case: TestCase,
                          pacer: Pacer) -> tuple[g.ModelOutput, Spend, int]:
    """answer_case on the Responses API (a connection whose engine is Responses: OpenAI's
    current models refuse function tools with reasoning on Chat Completions). Nothing is
    stored; a reasoning model's reasoning goes back encrypted with the tool results, and
    tool calls are kept in Chat Completions' shape for the graders and the results page."""
    items = responses_input(list(case.messages))
    spend = Spend()
    started = time.monotonic()
    text, calls = "", []
    for _ in range(MAX_TOOL_ROUNDS):
        body = responses_request(plan.spec, items)
        body["store"] = False
        if plan.facts.supports("reasoning"):
            body["include"] = ["reasoning.encrypted_content"]
        response = call_with_retries(lambda body=body: client.responses.create(**body), pacer)  # type: ignore[misc]
        spend.add_response(response.usage)
        if response.status == "failed":
            error = response.error
            raise ProviderError(f"The provider could not answer: {error.message if error else 'the response failed'}")
        text = response.output_text or ""
        calls = [{"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": item.arguments}}
                 for item in response.output if item.type == "function_call"]
        if not _replayable(case, calls):
            break
        items += [item.model_dump(exclude_none=True) for item in response.output if item.type == "reasoning"]
        items += responses_input([{"role": "assistant", "content": text or None, "tool_calls": calls},
                                  *_tool_messages(case, calls)])
    return g.ModelOutput(text, calls), spend, int((time.monotonic() - started) * 1000)


def judge_case(client: openai.OpenAI, grader: g.Grader, case: TestCase, output: g.ModelOutput,
               pacer: Pacer) -> tuple[g.Verdict, Spend, str]:
    body = g.judge_request(grader, case, case.messages, output)
    spend = Spend()
    try:
        completion = call_with_retries(lambda: client.chat.completions.create(**body), pacer)
    except ProviderError as error:
        return g.failure_verdict(grader, f"the judge could not answer: {error.message}"), spend, body["model"]
    spend.add(completion.usage)
    reply = completion.choices[0].message.content if completion.choices else ""
    return g.judge_verdict(grader, reply or ""), spend, body["model"]


def answer_and_grade(client: openai.OpenAI, plan: TargetPlan, result_id: int, case: TestCase,
                     grader_list: Sequence[g.Grader], pacer: Pacer) -> Answer:
    answer = Answer(result_id)
    try:
        answer.output, answer.spend, answer.latency_ms = answer_case(client, plan, case, pacer)
    except ProviderError as error:
        answer.error = error.message
        return answer
    answer.cost = answer.spend.cost(plan.facts)
    return grade_answer(client, case, answer, grader_list, pacer)


def grade_answer(client: openai.OpenAI, case: TestCase, answer: Answer, grader_list: Sequence[g.Grader],
                 pacer: Pacer) -> Answer:
    """The graders' verdicts on an answer (the judge asked here; embeddings come later)."""
    if answer.error:
        return answer
    for grader in grader_list:
        if grader.kind == "embedding":
            continue  # after every answer is in, in batches
        if grader.kind == "judge":
            verdict, spend, judge_model = judge_case(client, grader, case, answer.output, pacer)
            answer.judge_tokens += spend.input + spend.output
            answer.judges.append((judge_model, spend))
            judge_cost = spend.cost(model_facts(judge_model))
            if answer.cost is not None and judge_cost is not None:
                answer.cost += judge_cost
        else:
            verdict = g.grade_fast(grader, case, answer.output)
        answer.verdicts.append(verdict)
    return answer


# -- the run ---------------------------------------------------------------------------------------------

def run_claim(run_id: int) -> EvalRun | None:
    """Take the run (queued, or running again after its worker stopped): None when it ended."""
    claimed = EvalRun.objects.filter(pk=run_id, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).update(
        status=RunStatus.RUNNING, attempts=F("attempts") + 1, heartbeat_at=Now(), started_at=Coalesce("started_at", Now()))
    if not claimed:
        return None
    return EvalRun.objects.select_related("connection", "set_version", "created_by").get(pk=run_id)


def run_execute(run_id: int) -> None:
    run = run_claim(run_id)
    if run is None:
        return
    try:
        _execute(run)
    except ProviderError as error:
        finish(run, RunStatus.FAILED, error=error.message)
    except Exception:
        log.exception("eval run %s failed", run.pk)
        finish(run, RunStatus.FAILED, error="The run stopped on an unexpected error (logged); re-run it.")
        raise
    else:
        finish(run, RunStatus.SUCCEEDED)


def _execute(run: EvalRun) -> None:
    grader_list = g.parse_graders(run.set_version.graders)
    engine = run.connection.run_engine
    plans = {t.pk: target_plan(t, engine) for t in EvalTarget.objects.filter(run=run).select_related("version")}
    client = client_for(run.connection, ClientOptions(max_retries=0))
    pacer = Pacer()
    pending = EvalResult.objects.filter(run=run, status=ResultStatus.PENDING).select_related("case")
    jobs = (partial(answer_and_grade, client, plans[r.target_id], r.pk, r.case, grader_list, pacer)
            for r in list(pending.order_by("id")))
    process(run, jobs, grader_list=grader_list, client=client, pacer=pacer)


def process(run: EvalRun, jobs: Iterator[Callable[[], Answer]], *, grader_list: Sequence[g.Grader],
            client: openai.OpenAI, pacer: Pacer) -> None:
    """Run the jobs (each answers and grades one result) at the run's concurrency, saving as
    they finish; then the embeddings grader, if the set has one."""
    threshold = run.set_version.pass_threshold
    has_embeddings = any(gr.kind == "embedding" for gr in grader_list)
    writer = _Writer(run, threshold=None if has_embeddings else threshold)
    with ThreadPoolExecutor(max_workers=max(1, run.concurrency), thread_name_prefix=f"eval{run.pk}") as pool:
        running: set[Future[Answer]] = set()

        def refill() -> None:
            for job in _take(jobs, run.concurrency * 2 - len(running)):
                running.add(pool.submit(job))

        refill()
        while running:
            done, _ = wait(running, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                running.discard(future)
                writer.add(future.result())
            refill()
            writer.flush_if_due()
    writer.flush()
    if has_embeddings:
        grade_embeddings(run, [gr for gr in grader_list if gr.kind == "embedding"], threshold, pacer, client)


def _take[T](items: Iterator[T], count: int) -> list[T]:
    out: list[T] = []
    for _ in range(max(0, count)):
        item = next(items, None)
        if item is None:
            break
        out.append(item)
    return out


class _Writer:
    """Saves answers in batches, and beats the run's heartbeat as it does."""

    FIELDS = ("status", "output_text", "output_tool_calls", "error", "verdicts", "score", "passed", "input_tokens",
              "output_tokens", "judge_tokens", "cost_usd", "latency_ms")

    def __init__(self, run: EvalRun, *, threshold: float | None) -> None:
        self.run = run
        self.threshold = threshold  # None: the score waits for the embeddings
        self.buffer: list[EvalResult] = []
        self.answers: list[Answer] = []
        self.last = time.monotonic()

    def add(self, answer: Answer) -> None:
        row = EvalResult(pk=answer.result_id, status=ResultStatus.ERROR if answer.error else ResultStatus.DONE,
                         output_text=answer.output.text, output_tool_calls=list(answer.output.tool_calls),
                         error=answer.error, verdicts=[v.as_dict() for v in answer.verdicts], score=None, passed=None,
                         input_tokens=answer.spend.input, output_tokens=answer.spend.output,
                         judge_tokens=answer.judge_tokens, cost_usd=answer.cost, latency_ms=answer.latency_ms or None)
        if answer.error:
            row.passed = False
        elif self.threshold is not None:
            outcome = g.combine(answer.verdicts, self.threshold)
            row.score, row.passed = outcome.score, outcome.passed
        self.buffer.append(row)
        self.answers.append(answer)
        if len(self.buffer) >= FLUSH_EVERY:
            self.flush()

    def flush_if_due(self) -> None:
        if time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        with transaction.atomic():
            if self.buffer:
                rows_update(self.buffer, self.FIELDS)
                self._record_spend()
            EvalRun.objects.filter(pk=self.run.pk).update(heartbeat_at=timezone.now())
        self.buffer = []
        self.answers = []

    def _record_spend(self) -> None:
        """Each answer the provider billed, and each judge call, is a row of the team's ledger
        (project.spend), written in the transaction that saves it; the ledger row outlives
        the run. The rows of one model go in together (one statement, not one per row)."""
        billed = [answer for answer in self.answers if answer.spend.input or answer.spend.output or answer.judges]
        if not billed:
            return
        targets = dict(EvalResult.objects.filter(pk__in=[a.result_id for a in billed])
                       .values_list("pk", "target__model"))
        answered: dict[str, list[Call]] = defaultdict(list)
        judged: dict[str, list[Call]] = defaultdict(list)
        for answer in billed:
            if answer.spend.input or answer.spend.output:
                answered[targets.get(answer.result_id, "")].append(_call(str(answer.result_id), answer.spend))
            for number, (judge_model, spend) in enumerate(answer.judges, start=1):
                if spend.input or spend.output:
                    judged[judge_model].append(_call(f"{answer.result_id}:{number}", spend))
        run = self.run
        line = SpendLine(team_id=run.team_id, feature=Feature.EVAL, model="", source_kind="eval", source_id=run.pk,
                         source_label=f"Eval run {run.pk}", key="", connection_id=run.connection_id,
                         person_id=run.created_by_id)
        # A batch-mode run's answers were billed at the Batch API's prices.
        pricing = Pricing.BATCH if run.mode == RunMode.BATCH else Pricing.STANDARD
        for model, calls in answered.items():
            spend_record_calls(replace(line, model=model, key="eval_result:", pricing=pricing), calls)
        for model, calls in judged.items():  # the judge is asked live, whatever the run's mode
            spend_record_calls(replace(line, model=model, key="eval_judge:", source_label=f"Eval run {run.pk} (judge)"),
                               calls)


def _call(key: str, spend: Spend) -> Call:
    """One ledger row of a flush: its key is added to the line's ("eval_result:" + the result's id)."""
    return Call(key=key, input_tokens=spend.input, cached_tokens=spend.cached, output_tokens=spend.output)


def rows_update(rows: Sequence[EvalResult], fields: Sequence[str]) -> None:
    """Save these fields of many results in one UPDATE ... FROM (VALUES ...). Django's
    bulk_update builds a CASE expression per field and row: for a hundred answers that took
    longer than asking the provider for them."""
    meta = EvalResult._meta
    columns = [field for field in (meta.get_field(name) for name in fields) if isinstance(field, Field)]
    placeholders = "(%s::bigint, " + ", ".join(f"%s::{field.db_type(connection)}" for field in columns) + ")"
    params: list[Any] = []
    for row in rows:
        params.append(row.pk)
        params += [field.get_db_prep_save(getattr(row, field.attname), connection) for field in columns]
    assignments = ", ".join(f'"{field.column}" = v."{field.column}"' for field in columns)
    names = ", ".join(f'"{field.column}"' for field in columns)
    values = ", ".join([placeholders] * len(rows))
    sql = (f'UPDATE "{meta.db_table}" AS r SET {assignments} FROM (VALUES {values}) AS v(id, {names}) '  # noqa: S608 - names from the model
           f"WHERE r.id = v.id")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def grade_embeddings(run: EvalRun, embedding_graders: Sequence[g.Grader], threshold: float, pacer: Pacer,
                     client: openai.OpenAI) -> None:
    """Embed every answered output and its expected text (each distinct text once, up to
    2,048 per request), add the similarity verdicts, then score the cases."""
    rows = list(EvalResult.objects.filter(run=run, status=ResultStatus.DONE).select_related("case"))
    extra: dict[int, list[g.Verdict]] = {row.pk: [] for row in rows}
    for index, grader in enumerate(embedding_graders):
        texts = sorted({t for row in rows for t in (row.output_text, row.case.expected_text) if t})
        model = str(grader.settings.get("model") or g.DEFAULT_EMBEDDING_MODEL)

        def record(start: int, tokens: int, model: str = model, index: int = index) -> None:
            # One ledger row per embeddings request; grading again records each once.
            spend_record(SpendLine(
                team_id=run.team_id, feature=Feature.EVAL, model=model, source_kind="eval", source_id=run.pk,
                source_label=f"Eval run {run.pk} (embeddings grader)", key=f"eval_embed:{run.pk}:{index}:{start}",
                connection_id=run.connection_id, person_id=run.created_by_id, input_tokens=tokens))

        vectors = embed_texts(client, texts, model=model, dimensions=grader.settings.get("dimensions"), pacer=pacer,
                              on_usage=record)
        for row in rows:
            if not row.case.expected_text:
                extra[row.pk].append(g.failure_verdict(grader, "the case has no expected text to compare with"))
            elif not row.output_text:
                extra[row.pk].append(g.failure_verdict(grader, "the reply has no text"))
            else:
                similarity = g.cosine(vectors[row.output_text], vectors[row.case.expected_text])
                extra[row.pk].append(g.embedding_verdict(grader, similarity))
    for row in rows:
        row.verdicts = list(row.verdicts) + [v.as_dict() for v in extra[row.pk]]
        outcome = g.combine(row.verdicts, threshold)
        row.score, row.passed = outcome.score, outcome.passed
    for start in range(0, len(rows), 1000):
        rows_update(rows[start:start + 1000], ("verdicts", "score", "passed"))


def embed_texts(client: openai.OpenAI, texts: Sequence[str], *, model: str, dimensions: int | None,
                pacer: Pacer, on_usage: Callable[[int, int], None] | None = None) -> dict[str, list[float]]:
    """The vectors of `texts`; `on_usage(start, tokens)` is told what each request was billed."""
    vectors: dict[str, list[float]] = {}
    for start in range(0, len(texts), EMBEDDING_BATCH):
        chunk = list(texts[start:start + EMBEDDING_BATCH])
        arguments: dict[str, Any] = {"model": model, "input": chunk}
        if dimensions:
            arguments["dimensions"] = dimensions
        reply = call_with_retries(lambda arguments=arguments: client.embeddings.create(**arguments), pacer)  # type: ignore[misc]
        for item in reply.data:
            vectors[chunk[item.index]] = list(item.embedding)
        tokens = int(getattr(getattr(reply, "usage", None), "prompt_tokens", 0) or 0)
        if on_usage is not None and tokens:
            on_usage(start, tokens)
    return vectors


def finish(run: EvalRun, status: str, *, error: str = "", if_status: str | None = None) -> bool:
    """End the run: what was not asked is marked with the reason, the estimate held for it
    is let go and the team is told. With if_status, only a run still in that status ends
    (the stale-run sweep's conditional update: a run another worker finished meanwhile is
    left as it is). Returns whether the run ended here."""
    ending = EvalRun.objects.filter(pk=run.pk)
    if if_status is not None:
        ending = ending.filter(status=if_status)
    with transaction.atomic():
        if not ending.update(status=status, error=error, finished_at=timezone.now()):
            return False
        if status == RunStatus.FAILED:
            # What was not asked is not left pending for ever: it is marked with the reason.
            EvalResult.objects.filter(run=run, status=ResultStatus.PENDING).update(
                status=ResultStatus.ERROR, passed=False, error=error or "not run")
        # Its answers' ledger rows now hold what it spent: the estimate held for it is let go.
        reservation_release(key=eval_reservation_key(run.pk))
    counts = EvalResult.objects.filter(run=run).aggregate(
        total=Count("id"), passed=Count("id", filter=Q(passed=True)))
    text = (f"Eval run #{run.pk} of {run.set_version} finished: {counts['passed']} of {counts['total']} answers passed."
            if status == RunStatus.SUCCEEDED else f"Eval run #{run.pk} of {run.set_version} failed: {error}")
    notification_send(team=run.team, text=text, link=reverse("eval_run_detail", args=[run.pk]), email_to=None)
    return True

"""What a run will cost before it starts: tokens counted offline with the models' own
encodings, priced from the model facts. Output is unknown until the models answer, so it
is guessed from the expected answers (or OUTPUT_GUESS tokens a case); the judge's requests
are counted too."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from assistants_app.conversation import chat_request
from evals_app import graders as g
from evals_app.models import TestCase
from evals_app.runner import TargetPlan
from project.providers.model_facts import cost_usd, model_facts
from project.tokens import REPLY_PRIMING, count_message, encoding_for_model

OUTPUT_GUESS = 150
JUDGE_OUTPUT = 60


@dataclass(frozen=True)
class TargetEstimate:
    label: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None


@dataclass(frozen=True)
class RunEstimate:
    targets: list[TargetEstimate]
    judge_tokens: int
    judge_cost_usd: Decimal | None
    embedding_tokens: int

    @property
    def cost_usd(self) -> Decimal | None:
        parts = [t.cost_usd for t in self.targets] + [self.judge_cost_usd]
        return None if any(p is None for p in parts) else sum((p for p in parts if p is not None), Decimal(0))

    def as_dict(self) -> dict[str, object]:
        return {"input_tokens": sum(t.input_tokens for t in self.targets),
                "output_tokens": sum(t.output_tokens for t in self.targets), "judge_tokens": self.judge_tokens,
                "embedding_tokens": self.embedding_tokens,
                "cost_usd": None if self.cost_usd is None else str(self.cost_usd)}


def _price(model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> Decimal | None:
    facts = model_facts(model)
    kinds = ("batch_input", "batch_output") if batch else ("input", "output")
    a, b = cost_usd(input_tokens, facts.price(kinds[0])), cost_usd(output_tokens, facts.price(kinds[1]))
    return None if a is None or b is None else a + b


def run_estimate(plans: Sequence[tuple[str, TargetPlan]], cases: Sequence[TestCase],
                 grader_list: Sequence[g.Grader], *, batch: bool = False) -> RunEstimate:
    """batch: the targets at Batch API prices (the judge is asked live, at its usual prices)."""
    targets = []
    for label, plan in plans:
        encoding = encoding_for_model(plan.spec.model)
        tools = len(encoding.encode(json.dumps(plan.spec.tools), disallowed_special=())) if plan.spec.tools else 0
        input_tokens = output_tokens = 0
        for case in cases:
            body = chat_request(plan.spec, list(case.messages), stream=False)
            input_tokens += sum(count_message(m, encoding) for m in body["messages"]) + tools + REPLY_PRIMING
            expected = case.expected_text or (json.dumps(case.expected_json) if case.expected_json is not None else "")
            output_tokens += len(encoding.encode(expected, disallowed_special=())) if expected else OUTPUT_GUESS
        targets.append(TargetEstimate(label, input_tokens, output_tokens,
                                      _price(plan.spec.model, input_tokens, output_tokens, batch=batch)))
    judge_tokens = 0
    judge_cost: Decimal | None = Decimal(0)
    for grader in grader_list:
        if grader.kind != "judge":
            continue
        model = str(grader.settings.get("model") or g.DEFAULT_JUDGE_MODEL)
        encoding = encoding_for_model(model)
        judge_in = 0
        for case in cases:
            body = g.judge_request(grader, case, case.messages, g.ModelOutput(case.expected_text or " " * 8))
            judge_in += sum(count_message(m, encoding) for m in body["messages"]) + REPLY_PRIMING
        judge_in += sum(t.output_tokens for t in targets) // max(1, len(targets))  # the replies it reads
        judge_in *= len(targets)
        judge_out = JUDGE_OUTPUT * len(cases) * len(targets)
        judge_tokens += judge_in + judge_out
        price = _price(model, judge_in, judge_out)
        judge_cost = None if price is None or judge_cost is None else judge_cost + price
    embedding_tokens = 0
    if any(gr.kind == "embedding" for gr in grader_list):
        embedding_tokens = sum(t.output_tokens for t in targets) + sum(
            len(encoding_for_model(g.DEFAULT_EMBEDDING_MODEL).encode(c.expected_text, disallowed_special=())) for c in cases)
    return RunEstimate(targets, judge_tokens, judge_cost, embedding_tokens)

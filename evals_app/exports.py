"""A run's results as CSV (one row per case, the targets side by side) or JSONL (one line
per case and target), streamed."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse

from evals_app.graders import case_question
from evals_app.models import EvalResult, EvalRun

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    """Model output is untrusted: a cell a spreadsheet would run as a formula is kept as text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _output(result: EvalResult) -> str:
    return result.output_text or (json.dumps(result.output_tool_calls, ensure_ascii=False) if result.output_tool_calls else "")


def _reasons(result: EvalResult) -> str:
    return "; ".join(f"{v.get('kind')}: {v.get('reason')}" for v in result.verdicts)


def _results(run: EvalRun) -> Iterator[EvalResult]:
    return run.results.select_related("case", "target").order_by("case__position", "target__position").iterator(2000)


def run_csv_response(run: EvalRun) -> StreamingHttpResponse:
    targets = list(run.targets.order_by("position"))
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        header = ["case", "name", "question", "expected"]
        for target in targets:
            header += [f"{target.label}: {column}" for column in ("output", "passed", "score", "reasons", "error",
                                                                   "latency_ms", "cost_usd")]
        yield writer.writerow(header)
        row: list[Any] = []
        current = None
        for result in _results(run):
            if result.case_id != current:
                if row:
                    yield writer.writerow(row)
                case = result.case
                current = result.case_id
                row = [case.position, _cell(case.name), _cell(case_question(case.messages)),
                       _cell(case.expected_text or (json.dumps(case.expected_json) if case.expected_json is not None else ""))]
            row += [_cell(_output(result)), "" if result.passed is None else ("yes" if result.passed else "no"),
                    "" if result.score is None else f"{result.score:.3f}", _cell(_reasons(result)), _cell(result.error),
                    result.latency_ms or "", result.cost_usd if result.cost_usd is not None else ""]
        if row:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="eval-run-{run.pk}.csv"'
    return response


def run_jsonl_response(run: EvalRun) -> StreamingHttpResponse:
    def lines() -> Iterator[str]:
        for result in _results(run):
            case = result.case
            yield json.dumps({
                "case": case.position, "case_key": case.key, "name": case.name, "input": case.messages,
                "expected_text": case.expected_text, "expected_json": case.expected_json,
                "expected_tool_call": case.expected_tool_call, "target": result.target.label, "model": result.target.model,
                "status": result.status, "output_text": result.output_text, "output_tool_calls": result.output_tool_calls,
                "error": result.error or None, "passed": result.passed, "score": result.score, "verdicts": result.verdicts,
                "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens,
                          "judge_tokens": result.judge_tokens},
                "cost_usd": None if result.cost_usd is None else str(result.cost_usd), "latency_ms": result.latency_ms,
            }, ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="eval-run-{run.pk}.jsonl"'
    return response

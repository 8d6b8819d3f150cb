"""JSON nested too deep (a RecursionError in the parser) is a clear problem in the batch
and fine-tuning forms and in a batch's JSONL, never an error page."""

from __future__ import annotations

import pytest

from jobs_app.batches.build import items_from_jsonl
from jobs_app.batches.forms import BatchBuildForm
from jobs_app.batches.validation import InputProblems

DEEP = "[" * 100_000


def test_a_deep_jsonl_line_is_a_problem_named_by_its_line() -> None:
    problems = InputProblems()
    list(items_from_jsonl([b'{"custom_id": "a"}\n', DEEP.encode() + b"\n"], endpoint="/v1/chat/completions",
                          problems=problems))
    assert any(problem.line == 2 and "too deeply nested" in problem.message for problem in problems.problems)


@pytest.mark.django_db
def test_a_deep_response_format_is_a_form_error(team) -> None:
    form = BatchBuildForm({"response_format": DEEP}, team=team)
    form.is_valid()
    assert "too deeply nested" in str(form.errors.get("response_format"))


@pytest.mark.django_db
def test_deep_fine_tuning_metadata_is_a_form_error(team) -> None:
    from jobs_app.finetune.forms import JobCreateForm
    from jobs_app.finetune.models import Dataset
    from project.providers.models import ProviderConnection

    form = JobCreateForm({"metadata": DEEP}, connections=ProviderConnection.objects.none(),
                         datasets=Dataset.objects.none(), validation_datasets=Dataset.objects.none(), base_models=[])
    form.is_valid()
    assert "too deeply nested" in str(form.errors.get("metadata"))


def test_a_jsonl_line_that_is_not_utf8_is_a_problem_named_by_its_line() -> None:
    problems = InputProblems()
    list(items_from_jsonl([b'{"custom_id": "a"}\n', b'\xff{"custom_id": "b"}\n'], endpoint="/v1/chat/completions",
                          problems=problems))
    assert any(problem.line == 2 and "not UTF-8 text" in problem.message for problem in problems.problems)


def test_a_deep_line_in_a_providers_output_file_is_skipped() -> None:
    from jobs_app.batches.results import parse_result_lines

    good = (b'{"custom_id": "a", "response": {"status_code": 200, "body": {"choices": '
            b'[{"message": {"content": "hi"}}]}}}')
    rows = list(parse_result_lines([DEEP.encode(), good], endpoint="/v1/chat/completions", structured=False))
    assert [row[0] for row in rows] == ["a"]

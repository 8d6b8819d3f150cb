"""Dataset validation and the cost estimate, without a provider."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

import pytest

from jobs_app.finetune.validation import default_epochs, estimate_cost, validate_lines
from project.tokens import encoding_named
from tests.factories import chat_example, jsonl


def _validate(lines: Sequence[object] | bytes, method: str = "supervised", **kwargs: object) -> dict:
    raw = lines if isinstance(lines, bytes) else jsonl(lines)
    return validate_lines(raw.splitlines(keepends=True), method=method, model_id="gpt-4.1-mini", **kwargs)  # type: ignore[arg-type]


GOOD = [chat_example(i) for i in range(12)]


def test_it_accepts_a_good_supervised_file_and_reports_its_distributions() -> None:
    report = _validate(GOOD)
    assert report["valid"] is True
    assert report["examples"] == 12
    assert report["error_counts"] == {}
    assert report["distributions"]["messages"]["min"] == 3
    assert report["distributions"]["tokens"]["max"] >= report["distributions"]["tokens"]["min"] > 0
    assert report["missing_system"] == 0


def test_it_counts_tokens_the_cookbook_way() -> None:
    # Hand-counted: 3 per message + role + content, then 3 to prime the reply.
    enc = encoding_named("o200k_base")
    example = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}
    expected = (3 + len(enc.encode("user")) + len(enc.encode("hi"))
                + 3 + len(enc.encode("assistant")) + len(enc.encode("hello there")) + 3)
    report = _validate([example] * 10)
    assert report["distributions"]["tokens"]["min"] == expected == report["distributions"]["tokens"]["max"]
    assert report["distributions"]["assistant_tokens"]["max"] == len(enc.encode("hello there"))
    assert report["billable_tokens"] == 10 * expected
    assert report["missing_system"] == 10


def test_it_accepts_tools_parallel_tool_calls_and_weights() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}
    example = {
        "messages": [
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": None, "tool_calls": [call], "weight": 0},
            {"role": "tool", "tool_call_id": "call_1", "content": "found"},
            {"role": "assistant", "content": "It is found.", "weight": 1},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "parallel_tool_calls": False,
    }
    report = _validate([example] * 10)
    assert report["valid"], report["errors"]


@pytest.mark.parametrize(("line", "kind"), [
    ("{not json", "invalid_json"),
    ("[1, 2]", "not_an_object"),
    (json.dumps({"messages": [], "extra": 1}), "unknown_key"),
    (json.dumps({"prompt": "x"}), "unknown_key"),
    (json.dumps({"messages": []}), "missing_messages"),
    (json.dumps({"messages": ["hi"]}), "message_not_object"),
    (json.dumps({"messages": [{"content": "x"}]}), "missing_role"),
    (json.dumps({"messages": [{"role": "robot", "content": "x"}]}), "unrecognized_role"),
    (json.dumps({"messages": [{"role": "user", "content": "x", "mood": "ok"}]}), "unknown_message_key"),
    (json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}), "missing_content"),
    (json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}), "invalid_content"),
    (json.dumps({"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]}),
     "invalid_weight"),
    (json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]}),
     "invalid_weight"),
    (json.dumps({"messages": [{"role": "user", "content": "q"},
                              {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]}),
     "invalid_tool_calls"),
    (json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"},
                              {"role": "assistant", "content": "a"}]}), "tool_call_id_missing"),
    (json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "nope", "content": "r"},
                              {"role": "assistant", "content": "a"}]}), "tool_call_id_unknown"),
    (json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": {}}),
     "invalid_tools"),
    (json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                 "parallel_tool_calls": "yes"}), "invalid_parallel_tool_calls"),
    (json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}),
     "missing_assistant_message"),
])
def test_it_reports_each_broken_line_by_number_and_kind(line: str, kind: str) -> None:
    raw = jsonl(GOOD[:5]) + line.encode() + b"\n" + jsonl(GOOD[5:])
    report = _validate(raw)
    assert report["valid"] is False
    assert report["error_counts"] == {kind: 1}
    assert report["errors"][0]["line"] == 6
    assert report["errors"][0]["kind"] == kind
    assert report["examples"] == 12


def test_it_rejects_a_training_file_with_too_few_examples_but_not_a_validation_file() -> None:
    assert _validate(GOOD[:3])["error_counts"] == {"too_few_examples": 1}
    assert _validate(GOOD[:3], is_validation=True)["valid"] is True


def test_it_flags_examples_over_the_training_context_and_caps_their_billable_tokens() -> None:
    long = {"messages": [{"role": "user", "content": "word " * 70_000}, {"role": "assistant", "content": "ok"}]}
    report = _validate([*GOOD[:9], long])
    assert report["valid"] is True
    assert report["over_context"] == 1
    assert report["over_context_lines"] == [10]
    assert report["training_context"] == 65_536
    short_total = report["billable_tokens"] - 65_536
    assert 0 < short_total < 9 * 100


def _dpo(i: int) -> dict[str, object]:
    return {
        "input": {"messages": [{"role": "user", "content": f"Say {i} politely"}]},
        "preferred_output": [{"role": "assistant", "content": f"Here is {i}, with pleasure."}],
        "non_preferred_output": [{"role": "assistant", "content": f"{i}."}],
    }


def test_it_accepts_a_good_dpo_file() -> None:
    report = _validate([_dpo(i) for i in range(10)], method="dpo")
    assert report["valid"], report["errors"]
    assert report["examples"] == 10


@pytest.mark.parametrize(("broken", "kind"), [
    ({"preferred_output": [], "non_preferred_output": []}, "dpo_missing_input"),
    ({"input": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
      "preferred_output": [{"role": "assistant", "content": "a"}],
      "non_preferred_output": [{"role": "assistant", "content": "b"}]}, "dpo_input_not_ending_with_user"),
    ({"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "user", "content": "a"}],
      "non_preferred_output": [{"role": "assistant", "content": "b"}]}, "dpo_invalid_output"),
    ({"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "assistant", "content": "a"}]},
     "dpo_invalid_output"),
    ({"messages": [{"role": "user", "content": "q"}]}, "unknown_key"),
])
def test_it_reports_broken_dpo_examples(broken: dict, kind: str) -> None:
    report = _validate([*(_dpo(i) for i in range(10)), broken], method="dpo")
    assert report["error_counts"] == {kind: 1}
    assert report["errors"][0]["line"] == 11


def test_the_cost_estimate_matches_a_hand_computed_case() -> None:
    # 20 examples: 20 × 3 epochs = 60 < 100 seen examples, so the cookbook raises epochs to 100 // 20 = 5.
    # 12,345 billable tokens × 5 = 61,725 trained tokens × $5.00 per 1M (gpt-4.1-mini training) = $0.308625.
    estimate = estimate_cost(examples=20, billable_tokens=12_345, model_id="gpt-4.1-mini")
    assert (estimate.epochs, estimate.epochs_source) == (5, "heuristic")
    assert estimate.trained_tokens == 61_725
    assert estimate.cost_usd == Decimal("0.308625")
    chosen = estimate_cost(examples=20, billable_tokens=12_345, model_id="gpt-4.1-mini", n_epochs=2)
    assert (chosen.epochs, chosen.cost_usd) == (2, Decimal("0.123450"))


def test_the_epoch_heuristic_stays_within_the_cookbook_bounds() -> None:
    assert default_epochs(1) == 25
    assert default_epochs(25) == 4  # 25 × 3 = 75 < 100, so 100 // 25
    assert default_epochs(50) == 3  # 150 seen examples: the target holds
    assert default_epochs(1000) == 3
    assert default_epochs(10_000) == 2  # 25,000 // 10,000
    assert default_epochs(100_000) == 1


def test_an_unknown_model_has_no_price_rather_than_a_guess() -> None:
    assert estimate_cost(examples=100, billable_tokens=1000, model_id="mystery-model").cost_usd is None


def test_the_fast_path_reports_exactly_what_the_full_checks_report() -> None:
    from jobs_app.finetune.validation import DatasetValidator

    examples: list[object] = [chat_example(i, system=i % 3 != 0) for i in range(30)]
    examples += [{"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": ""},
                               {"role": "assistant", "content": "ok", "weight": 1}]},
                 {"messages": [{"role": "assistant", "content": "unprompted"}]},
                 {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]}]
    raw = [*jsonl(examples).splitlines(keepends=True), b"\n", b"{oops\n"]
    one_by_one = DatasetValidator(method="supervised", model_id="gpt-4.1-mini")
    for line_no, line in enumerate(raw, start=1):
        one_by_one.feed(line_no, line)
    streamed = DatasetValidator(method="supervised", model_id="gpt-4.1-mini")
    streamed.feed_lines(raw)
    assert streamed.report() == one_by_one.report()
    assert one_by_one.report()["error_counts"] == {"tool_call_id_missing": 1, "invalid_json": 1}


def test_many_different_system_prompts_are_counted_the_same_once_the_prompt_cache_gives_up() -> None:
    from jobs_app.finetune.validation import MAX_CACHED_PROMPTS, DatasetValidator

    examples = [{"messages": [{"role": "system", "content": f"You are assistant number {i}."},
                              {"role": "user", "content": "hi"}, {"role": "assistant", "content": f"hello {i}"}]}
                for i in range(3 * MAX_CACHED_PROMPTS)]
    raw = jsonl(examples).splitlines(keepends=True)
    one_by_one = DatasetValidator(method="supervised", model_id="gpt-4.1-mini")
    for line_no, line in enumerate(raw, start=1):
        one_by_one.feed(line_no, line)
    streamed = DatasetValidator(method="supervised", model_id="gpt-4.1-mini")
    streamed.feed_lines(raw)
    assert streamed.report() == one_by_one.report()

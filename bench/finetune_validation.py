"""Validating a 50,000-example fine-tuning file vs tiktoken counting the same text alone.

Run: DJANGO_SETTINGS_MODULE=project.settings python -m bench.finetune_validation [examples]
Both figures are measured in the same run on the same text (best of 5 each). The baseline
encodes every message's text (role and content) with the same encoding, one call per
text, and does nothing else; the validator reads the file line by line from disk, parses
JSON, checks every rule, counts tokens and keeps the distributions. Two datasets: one
where every example repeats the same system prompt (the usual case, which the validator
counts once) and one where every system prompt differs (no such help).
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()

from jobs_app.finetune.validation import validate_lines  # noqa: E402
from project.tokens import encoding_named  # noqa: E402

MODEL = "gpt-4.1-mini"
WORDS = [
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "invoice", "refund", "order", "shipping",
    "customer", "account", "password", "reset", "billing", "address", "delivery", "tracking", "number",
    "warranty", "return", "policy", "thanks", "please", "help",
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def make_file(path: Path, examples: int, *, distinct_system: bool = False) -> list[str]:
    rng = random.Random(7)
    texts: list[str] = []
    with path.open("w") as fh:
        for i in range(examples):
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": _sentence(rng, 8) if distinct_system else "You are a helpful support agent."},
                {"role": "user", "content": _sentence(rng, rng.randint(10, 60))},
                {"role": "assistant", "content": _sentence(rng, rng.randint(20, 120))},
            ]
            if i % 5 == 0:
                messages += [{"role": "user", "content": _sentence(rng, 15)},
                             {"role": "assistant", "content": _sentence(rng, 40), "weight": 1}]
            fh.write(json.dumps({"messages": messages}) + "\n")
            for m in messages:
                texts.append(m["role"])
                texts.append(m["content"])
    return texts


def measure(examples: int, *, distinct_system: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        texts = make_file(path, examples, distinct_system=distinct_system)
        size_mb = path.stat().st_size / 1e6
        encode = encoding_named("o200k_base").encode_ordinary
        encode("warm up")
        results: dict[str, list[float]] = {"tiktoken": [], "validator": []}
        for _ in range(5):
            start = time.perf_counter()
            total = sum(len(encode(t)) for t in texts)
            results["tiktoken"].append(time.perf_counter() - start)
            start = time.perf_counter()
            with path.open("rb") as fh:
                report = validate_lines(fh, method="supervised", model_id=MODEL)
            results["validator"].append(time.perf_counter() - start)
        assert report["valid"], report["error_counts"]
        tracemalloc.start()
        with path.open("rb") as fh:
            validate_lines(fh, method="supervised", model_id=MODEL)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    base, ours = min(results["tiktoken"]), min(results["validator"])
    label = "a different system prompt in every example" if distinct_system else "one system prompt shared by all"
    print(f"-- {examples} examples, {label}: file {size_mb:.1f} MB, {total:,} text tokens")
    print(f"tiktoken alone: {base:.3f} s ({examples / base:,.0f} examples/s)")
    print(f"validator:      {ours:.3f} s ({examples / ours:,.0f} examples/s)")
    print(f"validator speed / tiktoken speed = {base / ours:.0%} (target >= 80%)")
    print(f"validator peak Python memory (tracemalloc): {peak:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    examples = next((int(arg.split("=")[1]) for arg in argv if arg.startswith("--examples=")), 50_000)
    measure(examples, distinct_system=False)
    measure(examples, distinct_system=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Batch speed: build+validate a 50,000-request batch from a CSV, parse a 50,000-line
output file into request rows, and record its spend (a ledger row per line). Each must
take under 10 s and 300 MB peak memory.

`make bench ARGS=batch_bench` or `python -m devtools.testrun --bench batch_bench` (needs DATABASE_URL /
REDIS_URL like the tests; the database is migrated first).

Everything it writes is rolled back at the end. Time and RSS are measured in a plain
run; Python's peak allocation (tracemalloc) in a second run, since tracing slows code down.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs_app.batches.models import BatchGroup
    from project.providers.models import ProviderConnection
    from project.teams.models import Team

N = 50_000
TOPICS = ["tides", "volcanoes", "bread", "jazz", "orbits", "moss", "glass", "rivers"]
LIMIT_SECONDS = 10.0
LIMIT_MB = 300.0


class Rollback(Exception):
    pass


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_csv(path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["custom_id", "name", "topic", "detail"])
        for i in range(N):
            writer.writerow([f"row-{i}", f"Person {i}", TOPICS[i % len(TOPICS)],
                             f"Mention fact number {i} and keep it under {i % 90 + 10} words, please."])


def write_output(path: Path) -> None:
    with path.open("w") as fh:
        for i in range(N):
            content = json.dumps({"summary": f"A note about {TOPICS[i % len(TOPICS)]} for person {i}.", "score": i % 7})
            fh.write(json.dumps({"id": f"batch_req_{i}", "custom_id": f"row-{i}", "error": None, "response": {
                "status_code": 200, "request_id": f"req_{i}", "body": {
                    "id": f"chatcmpl-{i}", "object": "chat.completion", "model": "gpt-4.1-mini",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 60 + i % 11, "completion_tokens": 20 + i % 5, "total_tokens": 85}}}})
                     + "\n")


def build(csv_path: Path, team: Team, connection: ProviderConnection) -> BatchGroup:
    from jobs_app.batches.build import BodySpec, items_from_csv
    from jobs_app.batches.services import batch_group_build
    from jobs_app.batches.validation import InputProblems

    spec = BodySpec(model="gpt-4.1-mini", instructions="You write short, friendly notes.",
                    response_format={"type": "json_schema", "json_schema": {"name": "note", "schema": {
                        "type": "object", "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
                        "required": ["summary", "score"], "additionalProperties": False}, "strict": True}})
    problems = InputProblems()
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        items = items_from_csv(fh, template="Write to {name} about {topic}. {detail}", spec=spec,
                               endpoint="/v1/chat/completions", problems=problems)
        return batch_group_build(team=team, connection=connection, actor=None, name="bench", endpoint="/v1/chat/completions",
                                 source="csv", items=items, problems=problems)


def parse(output_path: Path, group: BatchGroup) -> int:
    from jobs_app.batches.results import join_results, parse_result_lines

    part = group.parts.get()
    with output_path.open("rb") as fh:
        return join_results(batch=part, rows=parse_result_lines(fh, endpoint=part.endpoint, structured=True))


def record_spend(group: BatchGroup) -> int:
    from django.db.models import Sum

    from jobs_app.batches.results import batch_spend_record
    from project.spend.models import SpendDaily, SpendEntry

    part = group.parts.get()
    sums = part.requests.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    batch_spend_record(batch=part, input_tokens=int(sums["i"] or 0), output_tokens=int(sums["o"] or 0))
    rows = SpendEntry.objects.filter(team=group.team, source_kind="batch").count()
    assert rows == N, rows
    assert SpendDaily.objects.get(team=group.team).calls == N
    return rows


def measure(label: str, run: Callable[[], Any], traced: bool) -> Any:
    if traced:
        tracemalloc.start()
        started = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  {label:<44} {elapsed:6.2f} s (traced)   tracemalloc peak {peak / 2**20:7.1f} MB")
        return result
    rss_before = rss_mb()
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    delta = rss_mb() - rss_before
    verdict = "ok" if elapsed < LIMIT_SECONDS and delta < LIMIT_MB else "OVER LIMIT"
    print(f"  {label:<44} {elapsed:6.2f} s            max RSS +{delta:7.1f} MB (now {rss_mb():.0f} MB)  {verdict}")
    return result


def one_pass(traced: bool, csv_path: Path, output_path: Path) -> None:
    from django.contrib.auth.models import User
    from django.db import transaction

    from jobs_app.batches.models import BatchRequest, RequestStatus
    from project.providers.services import connection_save
    from project.teams.services import team_create

    try:
        with transaction.atomic():
            owner = User.objects.create_user(username=f"bench-{time.time_ns()}")
            team = team_create(name="Batch bench", owner=owner)
            connection = connection_save(team=team, actor=None, kind="sandbox", name="Bench", base_url="http://127.0.0.1:9/v1",
                                         api_key="sk-bench", webhook_secret="")
            group = measure(f"build+validate {N:,} requests from CSV", lambda: build(csv_path, team, connection), traced)
            assert group.request_count == N, group.request_count
            updated = measure(f"parse {N:,}-line output file into rows", lambda: parse(output_path, group), traced)
            assert updated == N, updated
            measure(f"ledger: one row per output line ({N:,})", lambda: record_spend(group), traced)
            assert BatchRequest.objects.filter(batch__group=group, status=RequestStatus.SUCCEEDED).count() == N
            sample = BatchRequest.objects.get(batch__group=group, custom_id="row-123")
            assert sample.output_json == {"summary": "A note about jazz for person 123.", "score": 4}
            if not traced:
                print(f"  (estimate: {group.estimated_input_tokens:,} input tokens, ${group.estimated_cost_usd} "
                      f"at batch prices; {group.input_bytes / 2**20:.1f} MB of JSONL)")
            raise Rollback
    except Rollback:
        pass


def main(argv: list[str]) -> int:
    os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix="bench-media-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    with tempfile.TemporaryDirectory() as folder:
        csv_path, output_path = Path(folder) / "input.csv", Path(folder) / "output.jsonl"
        write_csv(csv_path)
        write_output(output_path)
        print(f"inputs: CSV {csv_path.stat().st_size / 2**20:.1f} MB, output file {output_path.stat().st_size / 2**20:.1f} MB")
        print("plain run (wall time, process max-RSS growth):")
        one_pass(False, csv_path, output_path)
        print("traced run (Python allocations):")
        one_pass(True, csv_path, output_path)
    return 0

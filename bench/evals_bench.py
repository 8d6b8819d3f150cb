"""Evals speed: grading 10,000 outputs with the non-model graders (exact, contains, regex,
JSON schema, JSON path, number, tool call) under 5 s; a 1,000-case run against two
targets on the sandbox (no stream pacing) under 60 s, live; the same through the Batch API on
the sandbox's fast clock, its results joined to their cases.

`make bench ARGS="evals_bench"` (`--cases=1000 --concurrency=16`). The run part starts a
sandbox in a process of its own on a free port and calls the run's worker code (what the
Celery task calls) in this process; everything it writes is rolled back at the end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

GRADE_OUTPUTS = 10_000
GRADE_LIMIT_SECONDS = 5.0
RUN_LIMIT_SECONDS = 60.0

FAST_GRADERS: list[dict[str, Any]] = [
    {"kind": "exact"},
    {"kind": "contains", "value": "order"},
    {"kind": "not_contains", "value": "sorry", "ignore_case": True},
    {"kind": "regex", "pattern": r"order #\d+"},
    {"kind": "json_schema", "schema": {"type": "object", "properties": {"order": {"type": "integer"},
                                                                      "status": {"enum": ["shipped", "late"]}},
                                       "required": ["order", "status"], "additionalProperties": False}},
    {"kind": "json_path", "path": "$.status", "value": "shipped"},
    {"kind": "number", "path": "$.order", "value": 5000, "tolerance": 5000},
    {"kind": "tool_call", "name": "lookup", "arguments": {"order": 7}},
]


class Rollback(Exception):
    pass


@dataclass
class Case:
    expected_text: str
    expected_json: Any = None
    expected_tool_call: Any = None
    rubric: str = ""


def grade_outputs() -> None:
    from evals_app import graders as g

    graders = g.parse_graders(FAST_GRADERS)
    work = []
    for i in range(GRADE_OUTPUTS):
        text = json.dumps({"order": i, "status": "shipped" if i % 3 else "late"})
        calls = [{"id": f"c{i}", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"order": i % 10})}}]
        work.append((Case(expected_text=text if i % 2 else "other"), g.ModelOutput(text, calls)))
    started = time.perf_counter()
    passed = 0
    for case, output in work:
        verdicts = [g.grade_fast(grader, case, output) for grader in graders]
        passed += g.combine(verdicts, 0.75).passed
    elapsed = time.perf_counter() - started
    verdict = "ok" if elapsed < GRADE_LIMIT_SECONDS else "OVER LIMIT"
    print(f"  grade {GRADE_OUTPUTS:,} outputs x {len(graders)} fast graders: {elapsed:.2f} s "
          f"({GRADE_OUTPUTS * len(graders) / elapsed:,.0f} verdicts/s; {passed:,} cases passed)  {verdict}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_sandbox(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    # No stream pacing; batches on a fast clock (a 2,000-request batch takes about 1.3 s).
    env = {**os.environ, "SANDBOX_TTFT_MS": "0", "SANDBOX_TOKENS_PER_SECOND": "0", "SANDBOX_DATA_DIR": data_dir,
           "SANDBOX_TIME_SCALE": "1000"}
    process = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port), "--data-dir", data_dir], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return process, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the sandbox did not start")


def runs(cases: int, concurrency: int) -> None:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import transaction

    from assistants_app.services import assistant_create
    from evals_app import services
    from evals_app.cases import CaseDraft
    from project.providers.services import connection_save
    from project.teams.services import team_create

    with tempfile.TemporaryDirectory() as data_dir:
        sandbox, url = _start_sandbox(data_dir)
        settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
        try:
            with transaction.atomic():
                owner = User.objects.create_user(username=f"bench-{time.time_ns()}")
                team = team_create(name="Evals bench", owner=owner)
                connection = connection_save(team=team, actor=None, kind="sandbox", name="Bench", base_url=url,
                                             api_key="sk-bench", webhook_secret="")
                config: dict[str, Any] = {
                    "model": "gpt-4.1-mini", "instructions": "Answer briefly.", "temperature": None, "top_p": None,
                    "reasoning_effort": "", "max_output_tokens": None, "tools": [], "response_schema": {}}
                assistant = assistant_create(team=team, actor=None, name="Bench", connection=connection, config=config)
                version = assistant.current_version
                assert version is not None
                test_set = services.test_set_create(team=team, actor=None, name="Bench set", pass_threshold=0.5,
                                                    graders=[{"kind": "exact"}, {"kind": "contains", "value": "answer"}])
                drafts = [CaseDraft(messages=[{"role": "user", "content": f"echo: answer {i}"}], expected_text=f"answer {i}")
                          for i in range(cases)]
                set_version = services.test_set_add_cases(test_set=test_set, actor=None, drafts=drafts, note="bench")
                targets = [services.TargetChoice(version, "gpt-4.1-mini"), services.TargetChoice(version, "gpt-5.4-mini")]
                for mode in ("live", "batch"):
                    _one_run(team, set_version, connection, targets, mode=mode, cases=cases, concurrency=concurrency)
                raise Rollback
        except Rollback:
            pass
        finally:
            sandbox.terminate()
            sandbox.wait(10)


def _one_run(team: Any, set_version: Any, connection: Any, targets: list[Any], *, mode: str, cases: int,
             concurrency: int) -> None:
    from evals_app import batch_runs, runner, services
    from evals_app.selectors import run_figures

    started = time.perf_counter()
    run = services.eval_run_create(team=team, actor=None, version=set_version, connection=connection,
                                   concurrency=concurrency, targets=targets, mode=mode)
    created = time.perf_counter() - started
    if mode == "live":
        runner.run_execute(run.pk)  # what the Celery task runs
    else:
        batch_runs.batch_run_submit(run.pk)
        submitted = time.perf_counter() - started
        ended = None
        run.refresh_from_db()
        while run.status == "running":
            time.sleep(0.2)
            batch_runs.batch_run_sync(run.pk)  # what beat's sync tick sends
            run.refresh_from_db()
            if run.batch_status in batch_runs.ACTIVE:
                ended = time.perf_counter() - started  # the last moment it was still running there
        print(f"    (batch sent after {submitted:.2f} s, still running on the provider at {ended or 0:.2f} s, "
              f"collected and graded by {time.perf_counter() - started:.2f} s)")
    elapsed = time.perf_counter() - started
    run.refresh_from_db()
    joined = sum(1 for output, position in run.results.values_list("output_text", "case__position")
                 if output == f"answer {position - 1}")
    limit_ok = mode == "batch" or elapsed < RUN_LIMIT_SECONDS
    verdict = "ok" if limit_ok and run.status == "succeeded" and joined == 2 * cases else "NOT OK"
    print(f"  {mode} run, {cases:,} cases x 2 targets ({2 * cases:,} requests, concurrency {concurrency}): "
          f"{elapsed:.2f} s ({2 * cases / elapsed:,.0f} answers/s; creating the run and its estimate {created:.2f} s); "
          f"{run.status}; {joined:,} outputs joined to their cases  {verdict}")
    for figures in run_figures(run=run):
        print(f"    {figures.target.label}: {figures.passed}/{figures.finished} passed, errors {figures.errors}, "
              f"p50 {figures.p50_ms} ms, p95 {figures.p95_ms} ms, cost ${figures.cost}")


def main(argv: list[str]) -> int:
    options = dict(arg.removeprefix("--").split("=", 1) for arg in argv if "=" in arg)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    print(f"machine load (1/5/15 min): {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    grade_outputs()
    runs(int(options.get("cases", 1000)), int(options.get("concurrency", 16)))
    print(f"machine load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0

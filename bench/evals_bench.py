"""Evals speed: grading 10,000 outputs with the non-model graders (exact, contains, regex,
JSON schema, JSON path, number, tool call) under 5 s; a 1,000-case run against two
targets on the sandbox (no stream pacing) under 60 s, live.

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
    env = {**os.environ, "SANDBOX_TTFT_MS": "0", "SANDBOX_TOKENS_PER_SECOND": "0", "SANDBOX_DATA_DIR": data_dir}
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


def live_run(cases: int, concurrency: int) -> None:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import transaction

    from assistants_app.services import assistant_create
    from evals_app import runner, services
    from evals_app.cases import CaseDraft
    from evals_app.selectors import run_figures
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
                config = {"model": "gpt-4.1-mini", "instructions": "Answer briefly.", "temperature": None, "top_p": None,
                          "reasoning_effort": "", "max_output_tokens": None, "tools": [], "response_schema": {}}
                assistant = assistant_create(team=team, actor=None, name="Bench", connection=connection, config=config)
                version = assistant.current_version
                assert version is not None
                test_set = services.test_set_create(team=team, actor=None, name="Bench set", pass_threshold=0.5,
                                                    graders=[{"kind": "exact"}, {"kind": "contains", "value": "answer"}])
                drafts = [CaseDraft(messages=[{"role": "user", "content": f"echo: answer {i}"}], expected_text=f"answer {i}")
                          for i in range(cases)]
                set_version = services.test_set_add_cases(test_set=test_set, actor=None, drafts=drafts, note="bench")
                started = time.perf_counter()
                run = services.eval_run_create(team=team, actor=None, version=set_version, connection=connection,
                                               concurrency=concurrency,
                                               targets=[services.TargetChoice(version, "gpt-4.1-mini"),
                                                        services.TargetChoice(version, "gpt-5.4-mini")])
                created = time.perf_counter() - started
                runner.run_execute(run.pk)
                elapsed = time.perf_counter() - started
                run.refresh_from_db()
                verdict = "ok" if elapsed < RUN_LIMIT_SECONDS and run.status == "succeeded" else "OVER LIMIT"
                print(f"  run {cases:,} cases x 2 targets ({2 * cases:,} requests, concurrency {concurrency}): "
                      f"{elapsed:.2f} s ({2 * cases / elapsed:,.0f} answers/s; creating the run and its estimate "
                      f"{created:.2f} s)  {run.status}  {verdict}")
                for figures in run_figures(run=run):
                    print(f"    {figures.target.label}: {figures.passed}/{figures.finished} passed, errors {figures.errors}, "
                          f"p50 {figures.p50_ms} ms, p95 {figures.p95_ms} ms, cost ${figures.cost}")
                raise Rollback
        except Rollback:
            pass
        finally:
            sandbox.terminate()
            sandbox.wait(10)


def main(argv: list[str]) -> int:
    options = dict(arg.removeprefix("--").split("=", 1) for arg in argv if "=" in arg)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    print(f"machine load (1/5/15 min): {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    grade_outputs()
    live_run(int(options.get("cases", 1000)), int(options.get("concurrency", 16)))
    print(f"machine load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0

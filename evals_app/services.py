"""Writes: test sets and their versions, cases and graders, eval runs and the switch."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from assistants_app.conversation import Assistant, AssistantVersion, ChatError, assistant_switch_model
from evals_app import graders as g
from evals_app.batch_runs import COLLECTING
from evals_app.cases import CaseDraft, CasesInvalid, case_from_thread
from evals_app.estimate import run_estimate
from evals_app.models import (
    EvalResult,
    EvalRun,
    EvalTarget,
    RunMode,
    RunStatus,
    TestCase,
    TestSet,
    TestSetVersion,
    eval_reservation_key,
)
from evals_app.runner import TargetPlan, finish, target_plan
from project.providers.models import ProviderConnection
from project.queue import task_send_on_commit
from project.spend.budgets import BudgetExceeded, budget_reserve
from project.teams.models import Team
from project.teams.services import audit_record

MAX_TARGETS = 6
MAX_CONCURRENCY = 64
MAX_BATCH_LINES = 50_000
# A run's estimate is held against the budget until it finishes, or at most this long (a batch-mode
# run waits on the provider's 24-hour window).
EVAL_RESERVATION_HOURS = 48.0


class EvalError(Exception):
    """A request the user can fix; the message is shown on the page."""


# -- sets and versions -------------------------------------------------------------------------------

@transaction.atomic
def test_set_create(*, team: Team, actor: User | None, name: str, description: str = "",
                    assistant: Assistant | None = None, graders: list[dict[str, Any]] | None = None,
                    pass_threshold: float = 1.0) -> TestSet:
    if not name.strip():
        raise EvalError("Give the test set a name.")
    if assistant is not None and assistant.team_id != team.pk:
        raise EvalError("Unknown assistant.")
    test_set = TestSet.objects.create(team=team, name=name.strip()[:120], description=description.strip(),
                                      assistant=assistant)
    _version_new(test_set=test_set, actor=actor, note="created", graders=graders or [], pass_threshold=pass_threshold)
    audit_record(team=team, actor=actor, action="evals.set_create", target=str(test_set.pk), name=test_set.name)
    return test_set


def _new_key() -> str:
    return uuid.uuid4().hex[:16]


def _case_row(version: TestSetVersion, position: int, draft: CaseDraft, key: str) -> TestCase:
    return TestCase(set_version=version, position=position, key=key, name=draft.name, messages=draft.messages,
                    tool_results=draft.tool_results, expected_text=draft.expected_text, expected_json=draft.expected_json,
                    expected_tool_call=draft.expected_tool_call, rubric=draft.rubric, source=draft.source,
                    source_ref=draft.source_ref[:200])


def _version_new(*, test_set: TestSet, actor: User | None, note: str, graders: list[dict[str, Any]] | None = None,
                 pass_threshold: float | None = None, add: Sequence[CaseDraft] = (),
                 remove_keys: Iterable[str] = ()) -> TestSetVersion:
    """A new current version: the current one's cases (less `remove_keys`) and `add`, with
    the given graders and threshold or the current ones."""
    current = test_set.current_version
    # Locks the set's row: two edits at once make two versions one after the other.
    TestSet.objects.select_for_update().filter(pk=test_set.pk).first()
    last = test_set.versions.order_by("-number").values_list("number", flat=True).first() or 0
    checked = g.parse_graders(graders if graders is not None else (current.graders if current else []))
    threshold = pass_threshold if pass_threshold is not None else (current.pass_threshold if current else 1.0)
    if not 0 <= threshold <= 1:
        raise EvalError("The pass threshold is a score from 0 to 1.")
    version = TestSetVersion.objects.create(test_set=test_set, number=last + 1, graders=[gr.as_dict() for gr in checked],
                                            pass_threshold=threshold, note=note[:200], created_by=actor)
    removed = set(remove_keys)
    rows: list[TestCase] = []
    if current is not None:
        for case in current.cases.exclude(key__in=removed).order_by("position"):
            case.pk, case.set_version, case.position = None, version, len(rows) + 1
            rows.append(case)
    rows += [_case_row(version, len(rows) + i, draft, _new_key()) for i, draft in enumerate(add, start=1)]
    TestCase.objects.bulk_create(rows, batch_size=1000)
    TestSetVersion.objects.filter(pk=version.pk).update(case_count=len(rows))
    version.case_count = len(rows)
    test_set.current_version = version
    test_set.save(update_fields=["current_version"])
    return version


@transaction.atomic
def test_set_add_cases(*, test_set: TestSet, actor: User | None, drafts: Sequence[CaseDraft], note: str) -> TestSetVersion:
    if not drafts:
        raise EvalError("No cases to add.")
    return _version_new(test_set=test_set, actor=actor, note=note, add=drafts)


@transaction.atomic
def test_set_remove_case(*, test_set: TestSet, actor: User | None, case_key: str) -> TestSetVersion:
    current = test_set.current_version
    if current is None or not current.cases.filter(key=case_key).exists():
        raise EvalError("That case is not in the set's current version.")
    return _version_new(test_set=test_set, actor=actor, note="removed a case", remove_keys=[case_key])


@transaction.atomic
def test_set_set_graders(*, test_set: TestSet, actor: User | None, graders: list[dict[str, Any]],
                         pass_threshold: float, note: str = "graders changed") -> TestSetVersion:
    try:
        return _version_new(test_set=test_set, actor=actor, note=note, graders=graders, pass_threshold=pass_threshold)
    except g.GraderError as error:
        raise EvalError(str(error)) from None


def test_set_add_grader(*, test_set: TestSet, actor: User | None, grader: dict[str, Any]) -> TestSetVersion:
    current = test_set.current_version
    existing = list(current.graders) if current else []
    try:
        checked = g.parse_grader(grader, len(existing) + 1)
    except g.GraderError as error:
        raise EvalError(str(error)) from None
    return test_set_set_graders(test_set=test_set, actor=actor, graders=[*existing, checked.as_dict()],
                                pass_threshold=current.pass_threshold if current else 1.0,
                                note=f"added grader: {g.KINDS[checked.kind]}")


def test_set_remove_grader(*, test_set: TestSet, actor: User | None, index: int) -> TestSetVersion:
    current = test_set.current_version
    existing = list(current.graders) if current else []
    if not 0 <= index < len(existing):
        raise EvalError("That grader is not in the set's current version.")
    removed = existing.pop(index)
    return test_set_set_graders(test_set=test_set, actor=actor, graders=existing,
                                pass_threshold=current.pass_threshold if current else 1.0,
                                note=f"removed grader: {g.KINDS.get(str(removed.get('kind')), '?')}")


def test_set_from_threads(*, test_set: TestSet, actor: User | None, picks: Sequence[tuple[Any, int | None]]) -> TestSetVersion:
    """picks: (thread, reply message id or None for its last reply). Threads must already be the
    team's (read through a team selector). Every pick must make a case, or none is added."""
    drafts, problems = [], []
    for thread, turn in picks:
        if thread.team_id != test_set.team_id:
            raise EvalError("Unknown thread.")
        try:
            drafts.append(case_from_thread(thread, turn))
        except CasesInvalid as invalid:
            problems += invalid.problems
    if problems:
        raise CasesInvalid(problems)
    return test_set_add_cases(test_set=test_set, actor=actor, drafts=drafts,
                              note=f"added {len(drafts)} case{'s' if len(drafts) != 1 else ''} from threads")


# -- runs -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetChoice:
    version: AssistantVersion
    model: str  # the version's own model, or a candidate in its place

    @property
    def label(self) -> str:
        base = f"{self.version.assistant.name} v{self.version.number}"
        return base if self.model == self.version.model else f"{base} with {self.model}"


def _check_run(team: Team, version: TestSetVersion, connection: ProviderConnection, targets: Sequence[TargetChoice]) -> None:
    if version.test_set.team_id != team.pk or connection.team_id != team.pk:
        raise EvalError("Unknown test set or connection.")
    if not targets:
        raise EvalError("Choose at least one target: an assistant version, or a version with another model.")
    if len(targets) > MAX_TARGETS:
        raise EvalError(f"At most {MAX_TARGETS} targets in one run.")
    if len({(t.version.pk, t.model) for t in targets}) != len(targets):
        raise EvalError("The same target is chosen twice.")
    if any(t.version.assistant.team_id != team.pk for t in targets):
        raise EvalError("Unknown assistant version.")
    if not version.graders:
        raise EvalError("The set has no grader yet: add one (exact, contains, a judge…) before running it.")
    if not version.case_count:
        raise EvalError("The set has no cases yet.")


def eval_estimate(*, team: Team, version: TestSetVersion, connection: ProviderConnection,
                  targets: Sequence[TargetChoice], case_keys: Sequence[str] | None = None,
                  mode: str = RunMode.LIVE) -> dict[str, Any]:
    """The estimate shown before a run starts (tokens and cost, the judge's included)."""
    _check_run(team, version, connection, targets)
    cases = list(version.cases.all() if case_keys is None else version.cases.filter(key__in=case_keys))
    plans = [(t.label, _plan(t)) for t in targets]
    estimate = run_estimate(plans, cases, g.parse_graders(version.graders), batch=mode == RunMode.BATCH)
    return {"estimate": estimate, "cases": len(cases)}


def _plan(choice: TargetChoice) -> TargetPlan:
    return target_plan(EvalTarget(version=choice.version, model=choice.model))


@transaction.atomic
def eval_run_create(*, team: Team, actor: User | None, version: TestSetVersion, connection: ProviderConnection,
                    targets: Sequence[TargetChoice], concurrency: int = 16, case_keys: Sequence[str] | None = None,
                    migration_assistant: Assistant | None = None, rerun_of: EvalRun | None = None,
                    mode: str = RunMode.LIVE) -> EvalRun:
    """The run, its targets and one pending result per case and target; a worker starts on commit
    (live: it asks them; batch: it sends them as one batch, which the sync follows)."""
    _check_run(team, version, connection, targets)
    cases = list(version.cases.all() if case_keys is None else version.cases.filter(key__in=case_keys))
    if not cases:
        raise EvalError("No case to run.")
    if mode == RunMode.BATCH and len(cases) * len(targets) > MAX_BATCH_LINES:
        raise EvalError(f"A batch holds at most {MAX_BATCH_LINES:,} requests; this run needs "
                        f"{len(cases) * len(targets):,}. Run it live, or with fewer targets.")
    estimate = run_estimate([(t.label, _plan(t)) for t in targets], cases, g.parse_graders(version.graders),
                            batch=mode == RunMode.BATCH)
    run = EvalRun.objects.create(team=team, set_version=version, connection=connection, created_by=actor, mode=mode,
                                 concurrency=max(1, min(MAX_CONCURRENCY, concurrency)), estimate=estimate.as_dict(),
                                 migration_assistant=migration_assistant, rerun_of=rerun_of)
    rows = []
    for position, choice in enumerate(targets, start=1):
        target = EvalTarget.objects.create(run=run, position=position, version=choice.version, model=choice.model,
                                           label=choice.label[:200])
        rows += [EvalResult(run=run, target=target, case=case) for case in cases]
    EvalResult.objects.bulk_create(rows, batch_size=2000)
    audit_record(team=team, actor=actor, action="evals.run", target=str(run.pk), set=version.test_set.name,
                 version=version.number, targets=[t.label for t in targets])
    try:
        # Last in the transaction: the budget's meter rows stay locked until the commit. A
        # refusal rolls the run back; work already running finishes.
        budget_reserve(team=team, connection_id=connection.pk, key=eval_reservation_key(run.pk),
                       amount=estimate.cost_usd or Decimal(0), what="this eval run",
                       hours=EVAL_RESERVATION_HOURS)
    except BudgetExceeded as error:
        raise EvalError(str(error)) from error
    task_send_on_commit(_start_task(run), run.pk)
    return run


def _start_task(run: EvalRun) -> str:
    return "evals_app.batch_run_submit" if run.mode == RunMode.BATCH else "evals_app.run_execute"


def eval_run_rerun_failed(*, run: EvalRun, actor: User | None) -> EvalRun:
    """A new run of the same targets over the cases that failed (or errored) for any of them."""
    failed = list(run.results.exclude(passed=True).values_list("case__key", flat=True).distinct())
    if not failed:
        raise EvalError("No case failed in this run.")
    targets = [TargetChoice(t.version, t.model) for t in run.targets.select_related("version__assistant")]
    return eval_run_create(team=run.team, actor=actor, version=run.set_version, connection=run.connection,
                           targets=targets, concurrency=run.concurrency, case_keys=failed,
                           migration_assistant=run.migration_assistant, rerun_of=run, mode=run.mode)


@transaction.atomic
def eval_switch_model(*, target: EvalTarget, actor: User | None) -> AssistantVersion:
    """"Switch to this model": the target's assistant gets a new version with the target's
    model; the run is named in the version's note and the target keeps the new version."""
    run = target.run
    if run.status != "succeeded":
        raise EvalError("Switch once the run has finished.")
    if target.switched_version_id is not None:
        raise EvalError("This target was already switched to.")
    assistant = target.version.assistant
    try:
        version = assistant_switch_model(assistant=assistant, model=target.model, actor=actor,
                                         note=f"switched to {target.model}: eval run #{run.pk}")
    except ChatError as error:
        raise EvalError(str(error)) from None
    EvalTarget.objects.filter(pk=target.pk).update(switched_version=version)
    audit_record(team=run.team, actor=actor, action="evals.switch", target=str(run.pk), model=target.model,
                 assistant=assistant.name, version=version.number)
    return version


def eval_runs_recover_stale(*, stale_after_seconds: float, max_attempts: int = 3) -> tuple[int, int]:
    """Runs nobody is working on (the worker died, or the task was lost before a worker took
    it) are sent again; their answered cases are kept. After max_attempts a run fails, its
    unanswered cases marked with the reason. Returns (sent again, failed)."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_seconds)
    # A batch the provider holds is the sync's to follow (for up to 24 hours), unless its
    # collector died: then the next sync collects what was not saved yet.
    EvalRun.objects.filter(status=RunStatus.RUNNING, batch_status=COLLECTING, heartbeat_at__lt=cutoff).update(
        batch_status="", heartbeat_at=timezone.now())
    stale = (EvalRun.objects.filter(Q(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
                                    | Q(status=RunStatus.QUEUED, created_at__lt=cutoff, started_at__isnull=True))
             .exclude(mode=RunMode.BATCH, remote_batch_id__gt=""))
    again = failed = 0
    for run in stale.select_related("team", "set_version__test_set"):
        if run.attempts < max_attempts:
            # The heartbeat moves on, so the next sweep waits for this attempt.
            if EvalRun.objects.filter(pk=run.pk, status=run.status).update(heartbeat_at=timezone.now(),
                                                                           created_at=F("created_at")):
                task_send_on_commit(_start_task(run), run.pk)
                again += 1
        else:
            # Ended as a finished run is (its reservation let go, the team told), but only
            # if no worker finished it since it was read.
            reason = "The run's worker stopped several times; re-run the failed cases."
            if finish(run, RunStatus.FAILED, error=reason, if_status=run.status):
                failed += 1
    return again, failed


# -- the migration assistant ---------------------------------------------------------------------------

RECENT_THREADS = 20
MIGRATION_GRADERS: list[dict[str, Any]] = [
    {"kind": "judge", "weight": 1.0,
     "rubric": "The reply answers the user's last message as well as the reference answer does: the same facts, "
               "no errors, a fitting tone."},
]


@transaction.atomic
def test_set_from_recent_threads(*, team: Team, actor: User | None, assistant: Assistant) -> TestSet:
    """A set for an assistant that has none: its recent threads' last replies, graded by a judge."""
    threads = [t for t in assistant.threads.filter(team=team).order_by("-updated_at", "-id")[:RECENT_THREADS * 2]]
    drafts = []
    for thread in threads:
        try:
            drafts.append(case_from_thread(thread))
        except CasesInvalid:
            continue  # a thread without a reply says nothing about the model
        if len(drafts) == RECENT_THREADS:
            break
    if not drafts:
        raise EvalError(f"{assistant.name} has no thread with a reply to make a test set from: "
                        "make a set by hand or from a file first.")
    test_set = test_set_create(team=team, actor=actor, name=f"{assistant.name}: recent threads"[:120], assistant=assistant,
                               graders=MIGRATION_GRADERS, pass_threshold=0.7)
    test_set_add_cases(test_set=test_set, actor=actor, drafts=drafts, note=f"{len(drafts)} recent threads")
    return test_set


@transaction.atomic
def migration_run_start(*, team: Team, actor: User | None, assistant: Assistant, test_set: TestSet | None,
                        candidates: Sequence[str], connection: ProviderConnection) -> EvalRun:
    """The assistant's set (one made from its recent threads when none is given) against its
    current version and the version with each candidate model."""
    version = assistant.current_version
    if version is None or assistant.team_id != team.pk:
        raise EvalError("This assistant has no version yet.")
    if test_set is None:
        test_set = test_set_from_recent_threads(team=team, actor=actor, assistant=assistant)
    set_version = test_set.current_version
    assert set_version is not None
    targets = [TargetChoice(version, version.model)] + [TargetChoice(version, model) for model in candidates
                                                         if model != version.model]
    return eval_run_create(team=team, actor=actor, version=set_version, connection=connection, targets=targets,
                           migration_assistant=assistant)

"""The migration assistant's facts: which assistants use a model that shuts down (the model
facts know the dates; a fine-tuned model shuts down with its base), which current models of
the same tier could replace it, and how far each assistant's migration has got."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.utils import timezone

from assistants_app.conversation import Assistant, team_assistants
from evals_app.models import EvalRun, EvalTarget, RunStatus
from project.providers.model_facts import ModelFacts, known_model_ids, model_facts
from project.providers.team_models import TeamModel, team_models_list
from project.teams.models import Team

WARN_DAYS = 90


def shutdown_date(model: str) -> date | None:
    raw = model_facts(model).shutdown_date
    return date.fromisoformat(raw) if raw else None


def days_left(model: str, today: date | None = None) -> int | None:
    when = shutdown_date(model)
    return None if when is None else (when - (today or timezone.localdate())).days


def needs_replacement(model: str, today: date | None = None) -> bool:
    left = days_left(model, today)
    return left is not None and left <= WARN_DAYS


def _chat_model(facts: ModelFacts) -> bool:
    return "chat_completions" in facts.endpoints and not facts.supports("embeddings")


def replacement_candidates(model: str, today: date | None = None) -> list[ModelFacts]:
    """Current chat models of the same tier with no shutdown within the warning window,
    cheapest first; when the tier has none, every such model."""
    today = today or timezone.localdate()
    current = model_facts(model)
    usable = [model_facts(m) for m in known_model_ids()]
    usable = [f for f in usable if _chat_model(f) and f.base_id != current.base_id
              and not (shutdown_date(f.model_id) and shutdown_date(f.model_id) <= today + timedelta(days=WARN_DAYS))]  # type: ignore[operator]
    same_tier = [f for f in usable if f.tier == current.tier] or usable
    return sorted(same_tier, key=lambda f: (f.price("input") or 0, f.model_id))


class MigrationState:
    NOT_STARTED = "not started"
    RUNNING = "evaluating"
    EVALUATED = "evaluated"
    SWITCHED = "switched"


@dataclass(frozen=True)
class FineTunedRow:
    model: TeamModel
    shutdown: date
    days_left: int
    assistants: list[str]  # the team's assistants that use it
    state: str


@dataclass(frozen=True)
class ShutdownRow:
    assistant: Assistant
    model: str
    fine_tuned: bool
    shutdown: date
    days_left: int
    state: str
    latest_run: EvalRun | None


def _state(runs: list[EvalRun], switched: bool) -> str:
    if switched:
        return MigrationState.SWITCHED
    if any(run.status == RunStatus.SUCCEEDED for run in runs):
        return MigrationState.EVALUATED
    if any(run.is_active for run in runs):
        return MigrationState.RUNNING
    return MigrationState.NOT_STARTED


def team_shutdown_rows(*, team: Team, today: date | None = None) -> list[ShutdownRow]:
    """Every assistant (and so every fine-tuned model an assistant uses) whose model has a
    shutdown date ahead, soonest first. An assistant switched by an eval run away from a
    retiring model no longer uses it, so it is listed with its old model as switched."""
    today = today or timezone.localdate()
    rows: list[ShutdownRow] = []
    runs_by_assistant: dict[int, list[EvalRun]] = {}
    for run in EvalRun.objects.filter(team=team, migration_assistant__isnull=False).order_by("-id"):
        runs_by_assistant.setdefault(run.migration_assistant_id or 0, []).append(run)
    switched: dict[int, str] = {}  # assistant id -> the model it left
    for target in EvalTarget.objects.filter(run__team=team, switched_version__isnull=False).select_related("version"):
        switched[target.version.assistant_id] = target.version.model
    for assistant in team_assistants(team=team):
        version = assistant.current_version
        if version is None:
            continue
        model = switched.get(assistant.pk, version.model)
        when = shutdown_date(model)
        if when is None or when < today:
            continue
        runs = runs_by_assistant.get(assistant.pk, [])
        rows.append(ShutdownRow(assistant, model, model.startswith("ft:"), when, (when - today).days,
                                _state(runs, assistant.pk in switched), runs[0] if runs else None))
    return sorted(rows, key=lambda row: (row.days_left, row.assistant.name))


def team_fine_tuned_rows(*, team: Team, shutdown_rows: list[ShutdownRow], today: date | None = None) -> list[FineTunedRow]:
    """Every fine-tuned model the team made whose base model shuts down ahead; its state is that
    of the assistants using it (not started when none does: make an assistant to evaluate it)."""
    today = today or timezone.localdate()
    by_model: dict[str, list[ShutdownRow]] = {}
    for row in shutdown_rows:
        by_model.setdefault(row.model, []).append(row)
    rows = []
    for made in team_models_list(team=team):
        when = shutdown_date(made.model)
        if when is None or when < today:
            continue
        users = by_model.get(made.model, [])
        states = {row.state for row in users}
        state = next((s for s in (MigrationState.SWITCHED, MigrationState.EVALUATED, MigrationState.RUNNING)
                      if s in states), MigrationState.NOT_STARTED)
        rows.append(FineTunedRow(made, when, (when - today).days, [row.assistant.name for row in users], state))
    return sorted(rows, key=lambda row: (row.days_left, row.model.model))

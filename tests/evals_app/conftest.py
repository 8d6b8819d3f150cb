"""Evals fixtures: a sandbox connection, an assistant on it, a set with cases."""

from __future__ import annotations

from typing import Any

import pytest

from evals_app import services
from evals_app.cases import CaseDraft
from evals_app.models import EvalRun, TestSet
from project.providers.models import ProviderConnection, ProviderKind
from tests import factories

CALCULATOR = {"name": "calculator", "binding": "builtin", "builtin": "calculator", "description": "maths", "timeout": 5,
              "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                             "required": ["expression"], "additionalProperties": False}}


@pytest.fixture
def eval_connection(team: factories.Team, sandbox_url: str) -> ProviderConnection:
    return factories.make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")


@pytest.fixture
def assistant(team: factories.Team, eval_connection: ProviderConnection) -> Any:
    return factories.make_assistant(team, eval_connection, name="Support", model="gpt-4.1-mini", instructions="")


def question(text: str, **extra: Any) -> CaseDraft:
    return CaseDraft(messages=[{"role": "user", "content": text}], **extra)


def make_set(team: Any, *drafts: CaseDraft, graders: list[dict[str, Any]] | None = None, threshold: float = 1.0,
             assistant: Any = None, name: str = "Capitals") -> TestSet:
    test_set = services.test_set_create(team=team, actor=None, name=name, assistant=assistant,
                                        graders=graders if graders is not None else [{"kind": "exact"}],
                                        pass_threshold=threshold)
    if drafts:
        services.test_set_add_cases(test_set=test_set, actor=None, drafts=list(drafts), note="cases")
    test_set.refresh_from_db()
    return test_set


def start_run(team: Any, test_set: TestSet, connection: ProviderConnection, *targets: tuple[Any, str]) -> EvalRun:
    version = test_set.current_version
    assert version is not None
    return services.eval_run_create(team=team, actor=None, version=version, connection=connection,
                                    targets=[services.TargetChoice(v, m) for v, m in targets])

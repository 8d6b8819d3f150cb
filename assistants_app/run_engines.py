"""Which loop runs a run: the engine its connection uses (Responses or Chat Completions,
project.providers.models.Engine), recorded on the run when a worker takes it."""

from __future__ import annotations

from assistants_app import responses_loop, run_loop
from assistants_app.models import Run
from project.providers.models import Engine


def _engine_loop(run: Run) -> run_loop.RunLoop | None:
    """The loop for the run's engine, which the claim recorded (run_loop._claim_sql says
    run_engine in SQL, in the same statement)."""
    return responses_loop.execute if run.engine == Engine.RESPONSES else None


def run_execute(run_id: int, *, posted_in: int | None = None) -> None:
    run_loop.run_execute(run_id, choose_loop=_engine_loop, posted_in=posted_in)

"""Which loop runs a run: the engine its connection uses (Responses or Chat Completions,
project.providers.models.Engine), recorded on the run when a worker takes it."""

from __future__ import annotations

from assistants_app import responses_loop, run_loop
from assistants_app.models import Run
from project.providers.models import Engine


def run_engine(run: Run) -> str:
    connection = run.assistant.connection
    return connection.run_engine if connection is not None else Engine.CHAT_COMPLETIONS


def _engine_loop(run: Run) -> run_loop.RunLoop | None:
    """The loop for the run's engine; the claim records run.engine with the run's other
    claimed fields, in one update."""
    run.engine = run_engine(run)
    return responses_loop.execute if run.engine == Engine.RESPONSES else None


def run_execute(run_id: int) -> None:
    run_loop.run_execute(run_id, choose_loop=_engine_loop)

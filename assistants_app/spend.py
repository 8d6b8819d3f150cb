"""Chat's spend: what a run attempt cost goes to the platform's ledger, and a run is let
through a hard budget limit with its most possible cost reserved. Both engines' run loops
(Chat Completions, Responses) call `run_spend_record` where they save a run's usage."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any, Protocol

from django.contrib.auth.models import User
from django.db.models import Field

from assistants_app.models import Message, Run, Thread
from assistants_app.reply_budget import output_budget
from project.joined_rows import pipelined
from project.providers.connection_facts import connection_price_facts
from project.providers.model_facts import PER_MILLION, ModelFacts
from project.spend.budgets import CountedCost, budget_reserve
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature
from project.teams.models import Team

# A run that never reports (its worker died for good) stops holding budget after this long.
RESERVATION_HOURS = 1.0


class RunUsage(Protocol):
    """The counts a run loop keeps for one attempt (run_attempt.Usage)."""

    input: int
    cached: int
    output: int
    reasoning: int
    calls: int
    estimated: bool


def run_reservation_key(run_id: int) -> str:
    return f"run:{run_id}"


def run_spend_record(*, run: Run, usage: RunUsage, part: str = "", settle: bool = True,
                     facts: ModelFacts | None = None, poster: tuple[int | None, str] | None = None) -> None:
    """Put what this attempt of the run cost in the ledger (nothing when no call was billed):
    call it in the transaction that saves the run's usage. The row outlives the thread.
    `part` names a share of the attempt saved before its end (the rounds a worker ran before
    it handed a background response to polling), a row of its own that, with `settle`
    off, leaves the run's budget reservation to the attempt's end. `facts`: the run's model
    facts (they price the run's own cost too), `poster`: run_poster's answer, when the
    caller has them; read here otherwise."""
    if not usage.calls:
        return
    person_id, person_name = poster if poster is not None else _poster(run)
    connection = run.assistant.connection
    spend_record(SpendLine(
        team_id=run.team_id, feature=Feature.CHAT, model=run.model, source_kind="run", source_id=run.pk,
        source_label=run.thread.title, key=f"run:{run.pk}:attempt:{run.attempts}" + (f":{part}" if part else ""),
        connection_id=connection.pk if connection else None, connection_name=connection.name if connection else "",
        person_id=person_id, person_name=person_name,
        assistant_id=run.assistant_id, assistant_name=run.assistant.name, version_id=run.version_id,
        version_number=run.version.number, input_tokens=usage.input, cached_tokens=usage.cached,
        output_tokens=usage.output, reasoning_tokens=usage.reasoning, calls=usage.calls, estimated=usage.estimated,
        settles=run_reservation_key(run.pk) if settle else ""), facts=facts)


def _poster(run: Run) -> tuple[int | None, str]:
    """Who posted the message that started the run (id and username), for the ledger: one
    query (the statement run_finish pipelines with its own), made when the run's usage is
    saved (the worker's claim leaves it out, being on the way to the first token)."""
    statement = run_poster_statement(run)
    if statement is not None:
        return run_poster(pipelined([statement])[0])
    author = run.user_message.author if run.user_message_id is not None and run.user_message is not None else None
    return (author.pk, author.get_username()) if author else (None, "")


@cache
def _poster_sql() -> str:
    username = User._meta.get_field(User.USERNAME_FIELD)
    assert isinstance(username, Field)
    # Only the models' own table and column names are formatted in; the id is a parameter.
    return (f'SELECT m.author_id, u."{username.column}" FROM {Message._meta.db_table} m '  # noqa: S608
            f"JOIN {User._meta.db_table} u ON u.id = m.author_id WHERE m.id = %s")


def run_poster_statement(run: Run) -> tuple[str, tuple[int]] | None:
    """_poster's query as a statement for a caller that runs it with others in one round
    trip (project.joined_rows.pipelined); None when no query is needed."""
    if run.user_message_id is None or Run.user_message.is_cached(run):
        return None
    return _poster_sql(), (run.user_message_id,)


def run_poster(row: tuple[Any, ...] | None) -> tuple[int | None, str]:
    """Who posted the message that started the run, from run_poster_statement's row."""
    return (row[0], row[1]) if row is not None else (None, "")


# The thread's history in tokens, summed by the database in the reserving round trip ($1: the thread).
_HISTORY_TOKENS = f"SELECT sum(token_count) FROM {Message._meta.db_table} WHERE thread_id = $1"  # noqa: S608


def run_most_cost(*, thread: Thread, run: Run, facts: ModelFacts | None = None) -> CountedCost | Decimal:
    """The most one call of the run can cost: the history that fits the context window plus
    the output budget, at the prices its ledger row will be priced by (the connection's for
    the model where an admin set them, free included, else the catalog's; 0 when unknown).
    The history is summed where the reservation is made, in the same round trip."""
    facts = facts if facts is not None else connection_price_facts(thread.assistant.connection_id, run.model)
    input_price, output_price = facts.price("input"), facts.price("output")
    if input_price is None or output_price is None:
        return Decimal(0)
    output = output_budget(run.version, facts)
    return CountedCost(fixed_usd=output * output_price / PER_MILLION, per_unit_usd=input_price / PER_MILLION,
                       cap=max(facts.context_window - output, 0), count_sql=_HISTORY_TOKENS, count_arg=thread.pk)


def run_budget_reserve(*, team: Team, thread: Thread, run: Run, facts: ModelFacts | None = None) -> None:
    """Refuse the run when a hard limit is used up (BudgetExceeded), else reserve its most cost.
    `facts`: the run's price facts (connection_price_facts) when the caller has read them."""
    budget_reserve(team=team, connection_id=thread.assistant.connection_id, key=run_reservation_key(run.pk),
                   amount=run_most_cost(thread=thread, run=run, facts=facts), what="this reply",
                   hours=RESERVATION_HOURS)

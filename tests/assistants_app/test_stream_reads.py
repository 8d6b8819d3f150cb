"""The event stream's blocks, read by prepared statements rather than the ORM
(assistants_app.stream_reads): a run's `done` block is the one the thread page shows, its
`run` block the one the ORM's reading renders, and a run of another thread renders nothing."""

from __future__ import annotations

import re

import pytest
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory

from assistants_app.models import Run, RunStatus, Thread
from assistants_app.view_helpers import run_group_context
from assistants_app.views_stream import render_run
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature
from tests.factories import Team, User, make_assistant, make_message, make_run, make_thread

pytestmark = pytest.mark.django_db

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def _request(owner: User, team: Team) -> HttpRequest:
    request = RequestFactory().get("/events/")
    request.user = owner
    request.team = team  # type: ignore[attr-defined]
    return request


def _billed(run: Run, key: str, output_tokens: int) -> None:
    spend_record(SpendLine(team_id=run.team_id, feature=Feature.CHAT, model=run.model, source_kind="run",
                           source_id=run.pk, key=f"run:{run.pk}:{key}", input_tokens=120, output_tokens=output_tokens))


def _tool_round_run(thread: Thread, owner: User) -> Run:
    """A billed run (two ledger rows) that called a tool, thought, and answered."""
    question = make_message(thread, "Look it up, <please>.", author=owner)
    run = make_run(thread, user_message=question, status=RunStatus.SUCCEEDED, attempts=1, input_tokens=240,
                   output_tokens=30, reasoning_tokens=12, ttft_ms=210, total_ms=900, engine="chat_completions")
    make_message(thread, "", role="assistant", run=run, version=run.version, reasoning_summary="Think **first**.",
                 tool_calls=[{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}])
    make_message(thread, "<b>found</b>", role="tool", run=run, tool_name="lookup", tool_call_id="c1")
    make_message(thread, "It is **42**.\n\n```python\nprint(42)\n```", role="assistant", run=run,
                 version=run.version)
    _billed(run, "attempt:1", 10)
    _billed(run, "attempt:2", 20)
    return run


def _page_block(client: Client, run: Run) -> str:
    page = client.get(f"/threads/{run.thread_id}/").content.decode()
    start = page.index(f'<section class="run-group" id="run-{run.pk}"')
    return page[start:page.index("</section>", start) + len("</section>")]


@pytest.mark.parametrize("kind", ["billed_tool_round", "failed_before_writing", "stopped_midway", "unpriced"])
def test_a_done_event_shows_the_block_the_thread_page_shows(owner_client, owner, team, kind) -> None:
    thread = make_thread(team, make_assistant(team))
    if kind == "billed_tool_round":
        run = _tool_round_run(thread, owner)
    else:
        question = make_message(thread, "Hello?", author=owner)
        status = RunStatus.FAILED if kind == "failed_before_writing" else (
            RunStatus.CANCELLED if kind == "stopped_midway" else RunStatus.SUCCEEDED)
        run = make_run(thread, user_message=question, status=status, attempts=1, error="The provider said <no>.")
        if kind != "failed_before_writing":
            make_message(thread, "Partly", role="assistant", run=run, version=run.version)
        if kind == "unpriced":
            spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="no-such-model", source_kind="run",
                                   source_id=run.pk, key=f"run:{run.pk}:1", input_tokens=5, output_tokens=5))

    block = render_run(thread.pk, run.pk, _request(owner, team))

    assert block.rstrip("\n") == _page_block(owner_client, run)  # the template file ends with a newline
    if kind == "billed_tool_round":
        assert "calls <code>lookup</code>" in block and "&lt;b&gt;found&lt;/b&gt;" in block
        assert "240 in / 30 out (12 reasoning) · $" in block


@pytest.mark.parametrize("kind", ["fresh", "resumed_after_writing", "finished", "no_user_message", "no_author"])
def test_a_run_event_shows_what_the_orms_reading_of_the_run_renders(owner, team, kind) -> None:
    thread = make_thread(team, make_assistant(team))
    question = None if kind == "no_user_message" else make_message(
        thread, "A question\non two lines", author=None if kind == "no_author" else owner,
        attachments=[{"type": "file", "name": "notes.txt"}])
    if kind == "finished":
        run = _tool_round_run(thread, owner)
    elif kind == "resumed_after_writing":
        run = make_run(thread, user_message=question, attempts=1)
        make_message(thread, "So far", role="assistant", run=run, version=run.version)
    else:
        run = make_run(thread, user_message=question)
    request = _request(owner, team)
    reread = Run.objects.select_related("version", "user_message__author").get(pk=run.pk)
    expected = render_to_string("assistants_app/_run_started.html",
                                {"message": reread.user_message, **run_group_context(reread)}, request=request)

    block = render_run(thread.pk, run.pk, request, with_user_message=True)

    assert _CSRF.sub("", block) == _CSRF.sub("", expected)
    assert f'id="run-{run.pk}"' in block


def test_a_run_id_of_another_thread_renders_nothing(owner, team, other_team) -> None:
    mine = make_thread(team, make_assistant(team))
    same_team = _tool_round_run(make_thread(team, make_assistant(team)), owner)
    other = make_thread(other_team, make_assistant(other_team))
    theirs = make_run(other, user_message=make_message(other, "Theirs"), status=RunStatus.SUCCEEDED)
    make_message(other, "Their secret reply", role="assistant", run=theirs, version=theirs.version)
    request = _request(owner, team)

    for run in (same_team, theirs):
        assert render_run(mine.pk, run.pk, request) == ""
        assert render_run(mine.pk, run.pk, request, with_user_message=True) == ""
    assert render_run(mine.pk, 2**62, request) == ""


def test_a_live_run_shows_no_cost_even_when_its_ledger_has_rows(owner, team) -> None:
    thread = make_thread(team, make_assistant(team))
    run = make_run(thread, user_message=make_message(thread, "Hi", author=owner), status=RunStatus.RUNNING,
                   attempts=1)
    _billed(run, "attempt:1", 10)

    block = render_run(thread.pk, run.pk, _request(owner, team))

    assert f'id="run-{run.pk}"' in block and "writing…" in block and "$" not in block

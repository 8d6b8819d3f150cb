"""The build paths that use the chat models: a CSV with an assistant, threads run again, and
batch spend on the Usage page."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from jobs_app.batches.models import Batch, BatchBuild, BatchGroup, BatchRequest, BatchStatus, RequestStatus
from jobs_app.batches.tasks import batch_build_task
from project.teams.models import Role, Team
from tests.conftest import client_for
from tests.factories import add_member, make_assistant, make_batch_group, make_connection, make_message, make_thread

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"fr": {"type": "string"}}, "required": ["fr"], "additionalProperties": False}
TOOL = {"name": "dictionary", "description": "Look a word up", "binding": "http", "url": "https://tools.example/dict",
        "timeout": 5.0, "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}


def csv_form(connection_id: int, **extra: Any) -> dict[str, Any]:
    return {"connection": connection_id, "endpoint": "/v1/chat/completions", "source": "csv", "name": "",
            "template": "Translate {word} to French.", "model": "", "instructions": "", "response_format": "",
            "assistant": "", "file": SimpleUploadedFile("words.csv", b"word\ncat\ndog\n", "text/csv"), **extra}


def translator(team: Team) -> Any:
    return make_assistant(team, name="Translator", model="gpt-4.1-mini", instructions="One French word.",
                          tools=[TOOL], response_schema=SCHEMA, max_output_tokens=50)


# -- CSV + template + assistant ------------------------------------------------------------------------

def test_a_csv_with_an_assistant_takes_model_instructions_format_and_tools_from_its_current_version(
        owner_client: Client, team: Team) -> None:
    assistant = translator(team)
    response = owner_client.post(reverse("batch_new"), csv_form(make_connection(team).pk, assistant=assistant.pk))
    group = BatchGroup.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("batch_detail", args=[group.pk])
    body = BatchRequest.objects.get(batch__group=group, custom_id="row-1").body
    assert body == {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "system", "content": "One French word."},
                     {"role": "user", "content": "Translate cat to French."}],
        "max_completion_tokens": 50,
        "parallel_tool_calls": True,  # the same request a chat run sends (one request builder)
        "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "strict": True, "schema": SCHEMA}},
        "tools": [{"type": "function", "function": {"name": "dictionary", "description": "Look a word up",
                                                    "parameters": TOOL["parameters"]}}],
    }
    page = owner_client.get(response["Location"]).content.decode()
    assert "2 in 1 batch" in page and "at batch prices" in page and "One French word." in page
    assert "tools.example" not in page  # how a tool is bound is not the provider's business


def test_the_csv_form_requires_an_assistant_or_a_model_and_not_both(owner_client: Client, team: Team) -> None:
    connection = make_connection(team)
    response = owner_client.post(reverse("batch_new"), csv_form(connection.pk))
    assert response.status_code == 200 and "A CSV needs an assistant or a model" in response.content.decode()
    assistant = translator(team)
    response = owner_client.post(reverse("batch_new"), csv_form(connection.pk, assistant=assistant.pk,
                                                                model="gpt-4o-mini", instructions="x"))
    assert "Choose an assistant or write a model and instructions, not both" in response.content.decode()
    response = owner_client.post(reverse("batch_new"), csv_form(connection.pk, assistant=assistant.pk,
                                                                endpoint="/v1/embeddings"))
    assert "An assistant makes chat requests" in response.content.decode()
    assert not BatchGroup.objects.exists()


def test_the_assistant_choice_lists_only_the_teams_live_assistants(owner_client: Client, team: Team,
                                                                  other_team: Team) -> None:
    mine = translator(team)
    archived = make_assistant(team, name="Old helper")
    archived.archived_at = archived.created_at
    archived.save(update_fields=["archived_at"])
    theirs = make_assistant(other_team, name="Their secret bot")
    page = owner_client.get(reverse("batch_new")).content.decode()
    assert "Translator" in page and "Old helper" not in page and "Their secret bot" not in page
    response = owner_client.post(reverse("batch_new"), csv_form(make_connection(team).pk, assistant=theirs.pk))
    assert "Select a valid choice" in response.content.decode()
    assert not BatchGroup.objects.exists() and mine.pk != theirs.pk


def test_a_big_csv_checked_on_a_worker_keeps_the_version_chosen_when_it_was_sent(
        owner_client: Client, team: Team, settings: Any) -> None:
    settings.BATCH_INLINE_BUILD_BYTES = 10
    assistant = translator(team)
    owner_client.post(reverse("batch_new"), csv_form(make_connection(team).pk, assistant=assistant.pk))
    build = BatchBuild.objects.get()
    assert build.options["assistant_version_id"] == assistant.current_version_id
    # An edit after sending makes a new version; the queued build still uses the one chosen.
    from assistants_app.services import assistant_update

    assistant_update(assistant=assistant, actor=None, name="Translator", description="", connection=None, config={
        "model": "gpt-4o-mini", "instructions": "Changed.", "temperature": None, "top_p": None, "reasoning_effort": "",
        "max_output_tokens": None, "tools": [], "response_schema": {}})
    batch_build_task.run(build.pk)  # what the cpu worker runs
    body = BatchRequest.objects.get(custom_id="row-2").body
    assert body["model"] == "gpt-4.1-mini" and body["messages"][0]["content"] == "One French word."
    assert body["tools"][0]["function"]["name"] == "dictionary"


# -- threads run again ---------------------------------------------------------------------------------

def conversation(team: Team, title: str, assistant: Any = None) -> Any:
    thread = make_thread(team, assistant, title)
    make_message(thread, f"{title}: first question")
    make_message(thread, "an answer", role="assistant")
    make_message(thread, f"echo: {title} again")
    return thread


def test_the_threads_page_lists_the_teams_threads_with_their_assistant_and_message_count(
        owner_client: Client, team: Team, other_team: Team) -> None:
    assistant = make_assistant(team, name="Helper", model="gpt-4o-mini")
    conversation(team, "Pricing question", assistant)
    conversation(other_team, "Their private thread")
    page = owner_client.get(reverse("batch_from_threads")).content.decode()
    assert "Pricing question" in page and "Helper" in page and "Their private thread" not in page
    assert "<td>3</td>" in page


def test_the_threads_page_pages_with_a_keyset_cursor(owner_client: Client, team: Team) -> None:
    assistant = make_assistant(team, model="gpt-4o-mini")
    for i in range(27):
        make_thread(team, assistant, f"Thread number {i:02d}")
    first = owner_client.get(reverse("batch_from_threads")).content.decode()
    assert first.count('name="threads"') == 25 and "Older threads" in first
    cursor = first.split("cursor=", 1)[1].split('"', 1)[0]
    more = owner_client.get(reverse("batch_from_threads") + f"?cursor={cursor}", headers={"HX-Request": "true"})
    assert more.content.decode().count('name="threads"') == 2
    assert "<html" not in more.content.decode()  # a fragment appended inside the same form


def test_picking_threads_builds_a_draft_with_count_estimate_and_preview(owner_client: Client, team: Team) -> None:
    assistant = make_assistant(team, model="gpt-4o-mini", instructions="Be kind.")
    one, two = conversation(team, "One", assistant), conversation(team, "Two", assistant)
    conversation(team, "Not chosen", assistant)
    connection = make_connection(team)
    response = owner_client.post(reverse("batch_from_threads"), {"connection": connection.pk, "name": "Again",
                                                                 "threads": [one.pk, two.pk]})
    group = BatchGroup.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("batch_detail", args=[group.pk])
    assert group.source == "threads" and group.request_count == 2 and group.model == "gpt-4o-mini"
    page = owner_client.get(response["Location"]).content.decode()
    assert "2 in 1 batch" in page and "at batch prices" in page and "Submit 2 requests" in page
    assert f"thread-{one.pk}" in page and "Be kind." in page and "echo: One again" in page


def test_another_teams_thread_id_is_refused_and_nothing_is_built(owner_client: Client, team: Team,
                                                                 other_team: Team) -> None:
    mine = conversation(team, "Mine", make_assistant(team, model="gpt-4o-mini"))
    theirs = conversation(other_team, "Theirs")
    response = owner_client.post(reverse("batch_from_threads"), {"connection": make_connection(team).pk,
                                                                 "threads": [mine.pk, theirs.pk]})
    assert response.status_code == 400
    assert f"Thread {theirs.pk} is not one of this team" in response.content.decode()
    assert "Theirs" not in response.content.decode()
    assert not BatchGroup.objects.exists() and not BatchRequest.objects.exists()


def test_threads_of_different_models_are_refused_in_the_page_with_the_choices_kept(owner_client: Client,
                                                                                   team: Team) -> None:
    mini = conversation(team, "Mini thread", make_assistant(team, name="Mini", model="gpt-4o-mini"))
    big = conversation(team, "Big thread", make_assistant(team, name="Big", model="gpt-4.1-mini"))
    response = owner_client.post(reverse("batch_from_threads"), {"connection": make_connection(team).pk,
                                                                 "threads": [mini.pk, big.pk]})
    page = response.content.decode()
    assert response.status_code == 400 and "nothing was created or sent" in page
    assert "use different models (Mini: gpt-4o-mini; Big: gpt-4.1-mini)" in page.replace("&#x27;", "'")
    assert page.count("checked") == 2
    assert not BatchGroup.objects.exists()


def test_choosing_no_thread_is_a_clear_error_and_viewers_cannot_build(owner_client: Client, team: Team) -> None:
    response = owner_client.post(reverse("batch_from_threads"), {"connection": make_connection(team).pk})
    assert response.status_code == 400 and "Choose at least one thread." in response.content.decode()
    viewer = add_member(team, role=Role.VIEWER).user
    thread = conversation(team, "Mine", make_assistant(team, model="gpt-4o-mini"))
    response = client_for(viewer).post(reverse("batch_from_threads"), {"connection": make_connection(team).pk,
                                                                       "threads": [thread.pk]})
    assert response.status_code == 403 and not BatchGroup.objects.exists()


# -- usage ---------------------------------------------------------------------------------------------

def test_the_usage_page_totals_chat_and_batch_spend_from_the_ledger(owner_client: Client, team: Team,
                                                                     other_team: Team) -> None:
    from jobs_app.batches.results import batch_spend_record
    from project.spend.ledger import SpendLine, spend_record

    spend_record(SpendLine(team_id=team.pk, feature="chat", model="gpt-4.1-mini", source_kind="run", key="run:1",
                           input_tokens=625_000))  # $0.25 at $0.40 per 1M
    for owner_team in (team, other_team):
        group = make_batch_group(owner_team)
        assert isinstance(group, BatchGroup)
        Batch.objects.filter(group=group).update(remote_id=f"batch_{owner_team.pk}", status=BatchStatus.COMPLETED,
                                                 total=3, completed=3)
        part = group.parts.get()
        # Each of the three output lines is a billed call: 2.5M input tokens each here, 30M in the
        # other team (gpt-4o-mini's batch input: $0.075 per 1M).
        assert part.requests.count() == 3
        part.requests.update(status=RequestStatus.SUCCEEDED,
                             input_tokens=2_500_000 if owner_team == team else 30_000_000)
        batch_spend_record(batch=part, input_tokens=7_500_000 if owner_team == team else 90_000_000,
                           output_tokens=0)
        batch_spend_record(batch=part, input_tokens=7_500_000, output_tokens=0)  # collected again: not twice
    make_batch_group(team)  # a draft never sent is not spend
    page = " ".join(owner_client.get(reverse("usage")).content.decode().split())
    assert "<strong>$0.8125</strong> in 4 calls" in page
    assert "<td>Batches</td><td>$0.5625</td>" in page and "<td>Chat</td><td>$0.25</td>" in page
    assert "$6.75" not in page

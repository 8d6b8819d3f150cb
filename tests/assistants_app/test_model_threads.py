"""Threads with a given model, e.g. the one a fine-tuning job made, alone or beside its
base model: the services (which assistant, which connection, which models are allowed)
and the pages (a confirm step, the side-by-side comparison, one message to both)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.urls import reverse

from assistants_app.models import Assistant, Message, Run, Thread
from assistants_app.services import ChatError, model_threads_start, thread_post_message, threads_post_message
from project.providers.models import ProviderConnection, ProviderKind
from project.teams.models import Role
from tests.conftest import client_for
from tests.factories import add_member, make_connection, make_finished_finetune_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_connection(team, sandbox_url) -> ProviderConnection:
    return make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX, name="Sandbox")


def _start_url(**params: object) -> str:
    return reverse("thread_start_with_model") + "?" + urlencode(params)


# -- services ---------------------------------------------------------------------------------

def test_it_starts_a_thread_with_the_fine_tuned_model_on_the_connection_that_made_it(team, owner) -> None:
    make_connection(team, name="A default one")  # not the job's: the model does not exist there
    tuned_on = make_connection(team, name="Tuning account")
    job = make_finished_finetune_job(team, connection=tuned_on, suffix="support")

    started = model_threads_start(team=team, actor=owner, connection=tuned_on, model=job.fine_tuned_model)

    assistant = started.thread.assistant
    assert started.compare is None
    assert assistant.connection == tuned_on
    assert assistant.current_version is not None and assistant.current_version.model == job.fine_tuned_model
    assert assistant.name == "Fine-tuned: support"
    assert started.thread.team == team and started.thread.created_by == owner


def test_starting_again_reuses_the_assistant_and_new_instructions_make_a_version(team, owner) -> None:
    job = make_finished_finetune_job(team)
    first = model_threads_start(team=team, actor=owner, connection=job.connection, model=job.fine_tuned_model)
    again = model_threads_start(team=team, actor=owner, connection=job.connection, model=job.fine_tuned_model)
    assert again.thread.pk != first.thread.pk
    assert again.thread.assistant_id == first.thread.assistant_id
    assert Assistant.objects.filter(team=team).count() == 1

    told = model_threads_start(team=team, actor=owner, connection=job.connection, model=job.fine_tuned_model,
                               instructions="Answer as the support desk.")
    assistant = Assistant.objects.get(pk=first.thread.assistant_id)
    assert told.thread.assistant_id == assistant.pk
    assert assistant.current_version is not None and assistant.current_version.number == 2
    assert assistant.current_version.instructions == "Answer as the support desk."


def test_a_checkpoint_gets_its_own_assistant_named_after_its_step(team, owner) -> None:
    job = make_finished_finetune_job(team, checkpoint_steps=(10, 20))
    checkpoint = f"{job.fine_tuned_model}:ckpt-step-10"
    started = model_threads_start(team=team, actor=owner, connection=job.connection, model=checkpoint)
    assert started.thread.assistant.name == "Fine-tuned: support at step 10"
    assert started.thread.assistant.current_version.model == checkpoint  # type: ignore[union-attr]


def test_compare_starts_two_threads_with_the_same_instructions(team, owner, sandbox_connection) -> None:
    job = make_finished_finetune_job(team, connection=sandbox_connection)
    started = model_threads_start(team=team, actor=owner, connection=sandbox_connection, model=job.fine_tuned_model,
                                  compare_model="gpt-4.1-mini", instructions="Be brief.")
    assert started.compare is not None
    tuned, base = started.thread.assistant, started.compare.assistant
    assert tuned.pk != base.pk
    assert base.name == "Base model: gpt-4.1-mini" and base.connection == sandbox_connection
    assert base.current_version.model == "gpt-4.1-mini"  # type: ignore[union-attr]
    assert tuned.current_version.instructions == base.current_version.instructions == "Be brief."  # type: ignore[union-attr]
    assert Thread.objects.filter(team=team).count() == 2


def test_it_refuses_a_model_the_connection_does_not_have(team, owner, sandbox_connection) -> None:
    with pytest.raises(ChatError, match="not available on Sandbox"):
        model_threads_start(team=team, actor=owner, connection=sandbox_connection, model="ft:gpt-4.1-mini:org:nope:zz")
    job = make_finished_finetune_job(team, connection=sandbox_connection)
    with pytest.raises(ChatError, match="not available"):
        model_threads_start(team=team, actor=owner, connection=sandbox_connection, model=job.fine_tuned_model,
                            compare_model="gpt-0-imaginary")
    # Nothing half-made: the fine-tuned model's assistant was not kept when the compare model failed.
    assert not Assistant.objects.exists() and not Thread.objects.exists()


def test_it_refuses_another_teams_fine_tuned_model(team, owner, other_team, sandbox_connection) -> None:
    theirs = make_finished_finetune_job(other_team)
    with pytest.raises(ChatError, match="not available"):
        model_threads_start(team=team, actor=owner, connection=sandbox_connection, model=theirs.fine_tuned_model)
    assert not Thread.objects.exists()


def test_an_unreachable_connection_is_a_clear_refusal(team, owner) -> None:
    connection = make_connection(team, name="Down", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ChatError, match="Could not check the models of Down"):
        model_threads_start(team=team, actor=owner, connection=connection, model="gpt-4.1-mini")


def test_one_message_goes_to_both_threads_or_to_neither(team, owner) -> None:
    job = make_finished_finetune_job(team, checkpoint_steps=(5,))
    started = model_threads_start(team=team, actor=owner, connection=job.connection, model=job.fine_tuned_model,
                                  compare_model=f"{job.fine_tuned_model}:ckpt-step-5")
    assert started.compare is not None
    pairs = threads_post_message(threads=[started.thread, started.compare], actor=owner, text="Hello both")
    assert [run.thread_id for _, run in pairs] == [started.thread.pk, started.compare.pk]
    assert [run.model for _, run in pairs] == [job.fine_tuned_model, f"{job.fine_tuned_model}:ckpt-step-5"]

    # The first thread's reply is still being written: the second message reaches neither thread.
    Run.objects.filter(thread=started.compare).update(status="succeeded")
    with pytest.raises(ChatError, match="still being written"):
        threads_post_message(threads=[started.compare, started.thread], actor=owner, text="Again")
    assert not Message.objects.filter(text="Again").exists()
    assert Run.objects.count() == 2


# -- pages ------------------------------------------------------------------------------------

def test_the_link_shows_a_confirm_page_and_creates_nothing(owner_client, team) -> None:
    job = make_finished_finetune_job(team)
    response = owner_client.get(_start_url(model=job.fine_tuned_model, connection=job.connection_id))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Start the thread" in page and job.connection.name in page
    assert not Assistant.objects.exists() and not Thread.objects.exists()


def test_posting_the_confirm_form_opens_the_thread_on_the_jobs_connection(owner_client, team) -> None:
    make_connection(team, name="A default one")
    job = make_finished_finetune_job(team, connection=make_connection(team, name="Tuning account"))
    # No job or connection named: the team's job that made the model decides where it lives.
    response = owner_client.post(reverse("thread_start_with_model"), {"model": job.fine_tuned_model})
    thread = Thread.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("thread_detail", args=[thread.pk])
    assert thread.assistant.connection == job.connection


def test_compare_opens_both_threads_side_by_side_and_sends_one_message_to_both(owner_client, team,
                                                                                sandbox_connection) -> None:
    job = make_finished_finetune_job(team, connection=sandbox_connection)
    response = owner_client.post(reverse("thread_start_with_model"), {"model": job.fine_tuned_model,
                                                                      "compare": "gpt-4.1-mini", "connection": job.connection_id})
    tuned = Thread.objects.get(assistant__current_version__model=job.fine_tuned_model)
    base = Thread.objects.get(assistant__current_version__model="gpt-4.1-mini")
    compare_url = reverse("thread_compare", args=[tuned.pk]) + f"?with={base.pk}"
    assert response.status_code == 302 and response["Location"] == compare_url
    page = owner_client.get(compare_url).content.decode()
    assert job.fine_tuned_model in page and "gpt-4.1-mini" in page and "Send to both" in page

    for thread in (tuned, base):  # each column follows its own thread's stream
        assert f'sse-connect="{reverse("thread_events", args=[thread.pk])}?feed=' in page
    response = owner_client.post(reverse("thread_compare", args=[tuned.pk]), {"with": base.pk, "text": "Hi"},
                                 HTTP_HX_REQUEST="true")
    runs = list(Run.objects.order_by("id"))
    assert [(run.thread_id, run.model) for run in runs] == [(tuned.pk, job.fine_tuned_model), (base.pk, "gpt-4.1-mini")]
    # The columns (and their open streams) stay; the streams bring the message and the live reply.
    assert response["HX-Reswap"] == "none"
    assert response.content.decode() == '<div id="post-error" hx-swap-oob="true" aria-live="polite"></div>'
    assert [run.user_message.text for run in runs if run.user_message] == ["Hi", "Hi"]


def test_an_empty_message_to_both_is_an_error_and_swaps_nothing(owner_client, team) -> None:
    job = make_finished_finetune_job(team, checkpoint_steps=(5,))
    started = model_threads_start(team=team, actor=None, connection=job.connection, model=job.fine_tuned_model,
                                  compare_model=f"{job.fine_tuned_model}:ckpt-step-5")
    assert started.compare is not None
    response = owner_client.post(reverse("thread_compare", args=[started.thread.pk]),
                                 {"with": started.compare.pk, "text": "  "}, HTTP_HX_REQUEST="true")
    assert response["HX-Reswap"] == "none" and "Write a message" in response.content.decode()
    assert not Run.objects.exists()


def test_an_unknown_model_is_explained_on_the_page_not_a_traceback(owner_client, team, sandbox_connection) -> None:
    response = owner_client.get(_start_url(model="ft:gpt-4.1-mini:org:ghost:123", connection=sandbox_connection.pk))
    page = response.content.decode()
    assert response.status_code == 400
    assert "is not available on Sandbox" in page and "Start the thread" not in page
    response = owner_client.post(reverse("thread_start_with_model"), {"model": "ft:gpt-4.1-mini:org:ghost:123",
                                                                      "connection": sandbox_connection.pk})
    assert response.status_code == 400 and "is not available on Sandbox" in response.content.decode()
    assert not Thread.objects.exists()
    assert "Choose a model" in owner_client.get(_start_url()).content.decode()


def test_another_teams_job_connection_or_thread_is_a_404(owner_client, team, other_team) -> None:
    theirs = make_finished_finetune_job(other_team)
    for params in ({"model": theirs.fine_tuned_model, "connection": theirs.connection_id},):
        assert owner_client.get(_start_url(**params)).status_code == 404
        assert owner_client.post(reverse("thread_start_with_model"), params).status_code == 404
    assert owner_client.get(_start_url(model="x", connection="abc")).status_code == 404
    mine = make_finished_finetune_job(team, checkpoint_steps=(5,))
    started = model_threads_start(team=team, actor=None, connection=mine.connection, model=mine.fine_tuned_model)
    foreign = model_threads_start(team=other_team, actor=None, connection=theirs.connection,
                                  model=theirs.fine_tuned_model)
    url = reverse("thread_compare", args=[started.thread.pk])
    assert owner_client.get(url, {"with": foreign.thread.pk}).status_code == 404
    assert owner_client.post(url, {"with": foreign.thread.pk, "text": "hi"}).status_code == 404
    assert not Message.objects.exists()


def test_a_viewer_cannot_start_a_thread_with_a_model(team) -> None:
    viewer = add_member(team, role=Role.VIEWER).user
    job = make_finished_finetune_job(team)
    client = client_for(viewer)
    assert client.get(_start_url(model=job.fine_tuned_model, connection=job.connection_id)).status_code == 403
    assert client.post(reverse("thread_start_with_model"), {"model": job.fine_tuned_model}).status_code == 403
    assert not Thread.objects.exists()


def test_thread_post_message_is_unchanged_for_a_single_thread(team, owner) -> None:
    job = make_finished_finetune_job(team)
    started = model_threads_start(team=team, actor=owner, connection=job.connection, model=job.fine_tuned_model)
    _, run = thread_post_message(thread=started.thread, actor=owner, text="hi")
    assert run.model == job.fine_tuned_model and run.assistant.connection == job.connection

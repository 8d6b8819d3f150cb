"""The migration assistant: shutdowns ahead, candidates of the same tier, a comparison run,
and "Switch to this model" making a new version with the run as its evidence."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from evals_app import migration, runner
from evals_app.models import EvalRun, TestSet
from tests.factories import make_assistant, make_message, make_thread

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 29)


def test_the_catalog_dates_and_same_tier_candidates() -> None:
    assert migration.days_left("gpt-4.1-mini", TODAY) == 46
    assert migration.days_left("ft:gpt-4.1-mini-2025-04-14:org:support:abc123", TODAY) == 46  # shuts down with its base
    assert migration.needs_replacement("gpt-5-mini", TODAY)
    assert not migration.needs_replacement("gpt-5.4-mini", TODAY)
    # balanced, current, cheapest first; gpt-5-mini (12 days left) and o4-mini (gone) are not proposed
    assert [f.model_id for f in migration.replacement_candidates("gpt-4.1-mini", TODAY)] == ["gpt-5.4-mini", "gpt-5.6-terra"]
    assert [f.model_id for f in migration.replacement_candidates("gpt-4o-mini", TODAY)] == ["gpt-5.4-nano", "gpt-5.6-luna"]


def test_the_team_page_lists_assistants_with_a_shutdown_ahead(owner_client, team) -> None:
    retiring = make_assistant(team, name="Old faithful", model="gpt-4.1-mini")
    make_assistant(team, name="Tuned", model="ft:gpt-4o-mini-2024-07-18:org:support:abc123")
    make_assistant(team, name="Current", model="gpt-5.4-mini")
    rows = migration.team_shutdown_rows(team=team, today=TODAY)
    assert [(r.assistant.name, r.days_left, r.fine_tuned, r.state) for r in rows] == [
        ("Old faithful", 46, False, "not started"), ("Tuned", 46, True, "not started")]
    page = owner_client.get(reverse("eval_shutdowns")).content.decode()
    assert "Old faithful" in page and "Tuned" in page and "Current" not in page
    assert reverse("eval_migrate", args=[retiring.pk]) in page


def test_find_a_replacement_run_it_and_switch(owner_client, team, eval_connection) -> None:
    assistant = make_assistant(team, eval_connection, name="Support", model="gpt-4.1-mini", instructions="")
    for text in ("echo: hello", "echo: goodbye"):
        thread = make_thread(team, assistant, title=text)
        make_message(thread, text)
        make_message(thread, text.removeprefix("echo: "), role="assistant")
    page = owner_client.get(reverse("eval_migrate", args=[assistant.pk])).content.decode()
    assert "gpt-5.4-mini" in page and "make one from its recent threads" in page
    response = owner_client.post(reverse("eval_migrate", args=[assistant.pk]),
                                 {"candidates": ["gpt-5.4-mini", "not-a-candidate"], "test_set": "",
                                  "connection": eval_connection.pk})
    run = EvalRun.objects.get()
    assert response["Location"] == reverse("eval_run_detail", args=[run.pk])
    test_set = TestSet.objects.get(assistant=assistant)
    assert test_set.current_version.case_count == 2 and test_set.current_version.graders[0]["kind"] == "judge"  # type: ignore[union-attr]
    assert [(t.model, t.label) for t in run.targets.all()] == [
        ("gpt-4.1-mini", "Support v1"), ("gpt-5.4-mini", "Support v1 with gpt-5.4-mini")]
    assert [r.state for r in migration.team_shutdown_rows(team=team, today=TODAY)] == ["evaluating"]
    runner.run_execute(run.pk)
    assert [r.state for r in migration.team_shutdown_rows(team=team, today=TODAY)] == ["evaluated"]
    detail = owner_client.get(reverse("eval_run_detail", args=[run.pk])).content.decode()
    assert "Switch to this model" in detail
    candidate = run.targets.get(position=2)
    switched = owner_client.post(reverse("eval_switch", args=[candidate.pk]), follow=True).content.decode()
    assert "now uses gpt-5.4-mini" in switched
    assistant.refresh_from_db()
    version = assistant.current_version
    assert version is not None and version.number == 2 and version.model == "gpt-5.4-mini"
    assert version.note == f"switched to gpt-5.4-mini: eval run #{run.pk}"
    candidate.refresh_from_db()
    assert candidate.switched_version == version
    rows = migration.team_shutdown_rows(team=team, today=TODAY)
    assert [(r.model, r.state) for r in rows] == [("gpt-4.1-mini", "switched")]
    again = owner_client.post(reverse("eval_switch", args=[candidate.pk]), follow=True).content.decode()
    assert "already switched" in again
    assistant.refresh_from_db()
    assert assistant.current_version.number == 2  # type: ignore[union-attr]


def test_an_assistant_without_threads_cannot_get_a_set_made_for_it(owner_client, team, eval_connection) -> None:
    assistant = make_assistant(team, eval_connection, name="Fresh", model="gpt-4.1-mini")
    response = owner_client.post(reverse("eval_migrate", args=[assistant.pk]),
                                 {"candidates": ["gpt-5.4-mini"], "connection": eval_connection.pk})
    assert response.status_code == 400 and "has no thread with a reply" in response.content.decode()
    assert not EvalRun.objects.exists()


def test_fine_tuned_models_with_a_retiring_base_are_listed_with_their_assistants(owner_client, team) -> None:
    from tests.factories import make_finished_finetune_job

    job = make_finished_finetune_job(team, suffix="support")
    unused = make_finished_finetune_job(team, suffix="legal", fine_tuned_model="ft:gpt-4o-mini-2024-07-18:org:legal:x1")
    make_assistant(team, name="Tuned support", model=job.fine_tuned_model)
    rows = migration.team_shutdown_rows(team=team, today=TODAY)
    fine_tuned = migration.team_fine_tuned_rows(team=team, shutdown_rows=rows, today=TODAY)
    assert {(r.model.model, r.days_left, tuple(r.assistants), r.state) for r in fine_tuned} == {
        (job.fine_tuned_model, 46, ("Tuned support",), "not started"), (unused.fine_tuned_model, 46, (), "not started")}
    page = owner_client.get(reverse("eval_shutdowns")).content.decode()
    assert f'data-fine-tuned="{unused.fine_tuned_model}"' in page and "fine-tuning job" in page


def test_a_retiring_assistants_page_links_to_find_a_replacement(owner_client, team, settings) -> None:
    retiring = make_assistant(team, name="Old faithful", model="gpt-4.1-mini")
    current = make_assistant(team, name="Current", model="gpt-5.4-mini")
    page = owner_client.get(reverse("assistant_detail", args=[retiring.pk])).content.decode()
    banner = page.split("data-retiring-banner>")[1].split("</div>")[0]
    assert f'href="{reverse("eval_migrate", args=[retiring.pk])}">Find a replacement</a>' in banner
    assert "Find a replacement" not in owner_client.get(reverse("assistant_detail", args=[current.pk])).content.decode()
    # Chat links to evals by URL name: without the evals app the page still shows, banner and all.
    settings.ROOT_URLCONF = "tests.evals_app.urls_without_evals"
    page = owner_client.get(f"/assistants/{retiring.pk}/").content.decode()
    assert "data-retiring-banner" in page and "Find a replacement" not in page

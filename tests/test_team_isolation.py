"""Every view that takes an id answers 404 for another team's object.

The table below names, for each such URL, how to make an object of another
team; `test_every_id_view_is_covered` fails when a view with an id is added
without a row here, so isolation is checked for new views too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from project.teams.models import Invitation, Membership, Role, Team
from tests.conftest import client_for
from tests.factories import add_member, make_connection, make_file

MakeObject = Callable[[Team], object]


def _connection(team: Team) -> object:
    return make_connection(team)


def _membership(team: Team) -> object:
    return add_member(team, role=Role.MEMBER)


def _file(team: Team) -> object:
    return make_file(team)


def _chat_image(team: Team) -> object:
    import base64

    from assistants_app.images import chat_image_store

    dot = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    return chat_image_store(team=team, data=dot, name="dot.png")


def _upload_request(team: Team) -> object:
    from project.files.models import UploadRequest

    return UploadRequest.objects.create(team=team, connection=make_connection(team), purpose="user_data", name="big.bin",
                                        bytes=1)


def _invitation(team: Team) -> object:
    _, token_hash = Invitation.new_token()
    return Invitation.objects.create(team=team, email="x@example.com", token_hash=token_hash)


def _assistant(team: Team) -> object:
    from tests.factories import make_assistant

    return make_assistant(team)


def _version(team: Team) -> object:
    from tests.factories import make_assistant

    return make_assistant(team).current_version


def _thread(team: Team) -> object:
    from tests.factories import make_thread

    return make_thread(team)


def _run(team: Team) -> object:
    from assistants_app.models import Run
    from tests.factories import make_thread

    thread = make_thread(team)
    version = thread.assistant.current_version
    assert version is not None
    return Run.objects.create(thread=thread, team=team, assistant=thread.assistant, version=version,
                              model=version.model, status="waiting")


def _pending_tool_message(team: Team) -> object:
    from tests.factories import make_message

    run = _run(team)
    return make_message(run.thread, "", role="tool", pending=True, run=run, tool_call_id="call_1")  # type: ignore[attr-defined]
def _dataset(team: Team) -> object:
    from tests.factories import make_dataset

    return make_dataset(team, validate=False)


def _finetune_job(team: Team) -> object:
    from tests.factories import make_finetune_job

    return make_finetune_job(team)


def _batch_group(team: Team) -> object:
    from tests.factories import make_batch_group

    return make_batch_group(team)


def _batch_build(team: Team) -> object:
    from jobs_app.batches.models import BatchBuild

    return BatchBuild.objects.create(team=team, connection=make_connection(team), name="big.csv",
                                     endpoint="/v1/chat/completions", source="csv")


def _test_set(team: Team) -> object:
    from evals_app.services import test_set_create

    return test_set_create(team=team, actor=None, name="Set", graders=[{"kind": "exact"}])


def _eval_run(team: Team) -> object:
    from evals_app.cases import CaseDraft
    from evals_app.services import TargetChoice, eval_run_create, test_set_add_cases
    from tests.factories import make_assistant

    test_set = _test_set(team)
    version = test_set_add_cases(test_set=test_set, actor=None, note="",  # type: ignore[arg-type]
                                 drafts=[CaseDraft(messages=[{"role": "user", "content": "hi"}])])
    assistant_version = make_assistant(team).current_version
    assert assistant_version is not None
    return eval_run_create(team=team, actor=None, version=version, connection=make_connection(team),
                           targets=[TargetChoice(assistant_version, "gpt-5.4-mini")])


def _eval_target(team: Team) -> object:
    from evals_app.models import EvalRun, RunStatus

    run = _eval_run(team)
    assert isinstance(run, EvalRun)
    EvalRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    return run.targets.get()


def _message(team: Team) -> object:
    from tests.factories import make_message, make_thread

    return make_message(make_thread(team), "another team's words")


def _search_backfill(team: Team) -> object:
    from search_app.models import EmbeddingBackfill

    return EmbeddingBackfill.objects.create(team=team, model="text-embedding-3-small", dimensions=256, status="paused")


def _budget(team: Team) -> object:
    from decimal import Decimal

    from project.spend.models import Budget

    return Budget.objects.create(team=team, connection=make_connection(team), amount_usd=Decimal("10"),
                                 hard_limit=True)


# url name -> (factory of another team's object, methods to try)
ID_VIEWS: dict[str, tuple[MakeObject, list[str]]] = {
    "connection_edit": (_connection, ["get", "post"]),
    "connection_delete": (_connection, ["post"]),
    "connection_test": (_connection, ["post"]),
    "connection_server": (_connection, ["get"]),
    "connection_model_facts": (_connection, ["get", "post"]),
    "member_role": (_membership, ["post"]),
    "member_remove": (_membership, ["post"]),
    "invitation_revoke": (_invitation, ["post"]),
    "assistant_detail": (_assistant, ["get"]),
    "assistant_edit": (_assistant, ["get", "post"]),
    "assistant_duplicate": (_assistant, ["post"]),
    "assistant_archive": (_assistant, ["post"]),
    "thread_start": (_assistant, ["post"]),
    "version_diff": (_version, ["get"]),
    "version_rollback": (_version, ["post"]),
    "thread_detail": (_thread, ["get"]),
    "thread_post": (_thread, ["post"]),
    "thread_export": (_thread, ["get"]),
    "thread_delete": (_thread, ["get", "post"]),
    "thread_compare": (_thread, ["get", "post"]),
    "thread_events": (_thread, ["get"]),
    "run_stop": (_run, ["post"]),
    "tool_answer": (_pending_tool_message, ["post"]),
    "finetune_dataset_detail": (_dataset, ["get"]),
    "finetune_job_detail": (_finetune_job, ["get"]),
    "finetune_job_cancel": (_finetune_job, ["post"]),
    "finetune_job_pause": (_finetune_job, ["post"]),
    "finetune_job_resume": (_finetune_job, ["post"]),
    "file_detail": (_file, ["get"]),
    "file_fetch": (_file, ["post"]),
    "file_image": (_file, ["get"]),
    "chat_image": (_chat_image, ["get"]),
    "file_download": (_file, ["get"]),
    "file_delete": (_file, ["get", "post"]),
    "upload_request_status": (_upload_request, ["get"]),
    "batch_build_detail": (_batch_build, ["get"]),
    "batch_detail": (_batch_group, ["get"]),
    "batch_submit": (_batch_group, ["post"]),
    "batch_discard": (_batch_group, ["post"]),
    "batch_check_submit": (_batch_group, ["post"]),
    "batch_cancel": (_batch_group, ["post"]),
    "batch_retry_failed": (_batch_group, ["post"]),
    "batch_results": (_batch_group, ["get"]),
    "batch_download_csv": (_batch_group, ["get"]),
    "batch_download_jsonl": (_batch_group, ["get"]),
    "eval_set_detail": (_test_set, ["get", "post"]),
    "eval_set_threads": (_test_set, ["get", "post"]),
    "eval_set_upload": (_test_set, ["post"]),
    "eval_case_remove": (_test_set, ["post"]),
    "eval_grader_add": (_test_set, ["post"]),
    "eval_grader_remove": (_test_set, ["post"]),
    "eval_threshold": (_test_set, ["post"]),
    "eval_run_new": (_test_set, ["get", "post"]),
    "eval_run_detail": (_eval_run, ["get"]),
    "eval_run_csv": (_eval_run, ["get"]),
    "eval_run_jsonl": (_eval_run, ["get"]),
    "eval_run_rerun": (_eval_run, ["post"]),
    "eval_switch": (_eval_target, ["post"]),
    "eval_migrate": (_assistant, ["get", "post"]),


    "message_similar": (_message, ["get"]),
    "search_backfill_progress": (_search_backfill, ["get"]),
    "search_backfill_pause": (_search_backfill, ["post"]),
    "search_backfill_resume": (_search_backfill, ["post"]),


    "budget_delete": (_budget, ["post"]),
}

# Views whose id is not a team object looked up by pk (tokens, public ids that carry their own proof).
NOT_TEAM_SCOPED = {"invitation_accept", "webhook_receive"}


def _walk(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if getattr(pattern, "namespace", None) == "admin":
                continue
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif pattern.name:
            yield pattern.name, prefix + str(pattern.pattern)


def test_every_id_view_is_covered() -> None:
    with_ids = {name for name, route in _walk(get_resolver().url_patterns) if "<" in route}
    assert with_ids - NOT_TEAM_SCOPED <= set(ID_VIEWS), f"add rows to ID_VIEWS for: {with_ids - NOT_TEAM_SCOPED - set(ID_VIEWS)}"


@pytest.mark.parametrize("url_name", sorted(ID_VIEWS))
def test_another_teams_object_is_a_404(url_name: str, team, owner, other_team) -> None:
    from django.urls import reverse

    make, methods = ID_VIEWS[url_name]
    foreign = make(other_team)
    url = reverse(url_name, args=[foreign.pk])  # type: ignore[attr-defined]
    client = client_for(owner)
    for method in methods:
        response = getattr(client, method)(url)
        assert response.status_code == 404, f"{method.upper()} {url} gave {response.status_code}"
    # And nothing was changed or removed.
    assert type(foreign).objects.filter(pk=foreign.pk).exists()  # type: ignore[attr-defined]
    if isinstance(foreign, Membership):
        foreign.refresh_from_db()
        assert foreign.role == Role.MEMBER

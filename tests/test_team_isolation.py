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
from tests.factories import add_member, make_connection

MakeObject = Callable[[Team], object]


def _connection(team: Team) -> object:
    return make_connection(team)


def _membership(team: Team) -> object:
    return add_member(team, role=Role.MEMBER)


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


# url name -> (factory of another team's object, methods to try)
ID_VIEWS: dict[str, tuple[MakeObject, list[str]]] = {
    "connection_edit": (_connection, ["get", "post"]),
    "connection_delete": (_connection, ["post"]),
    "connection_test": (_connection, ["post"]),
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
    "run_events": (_run, ["get"]),
    "run_stop": (_run, ["post"]),
    "tool_answer": (_pending_tool_message, ["post"]),
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

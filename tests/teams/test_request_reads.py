"""What every request reads before its view: the user's membership of the current team,
and, for a thread's pages and its message POST, the thread with what the view uses next.
Both are prepared statements of their own (not the ORM's), so they are checked here for
what the ORM gave: the related objects loaded, and another team's object not found."""

from __future__ import annotations

import pytest
from django.http import Http404

from assistants_app.selectors import team_thread_get
from project.teams.models import Role
from project.teams.selectors import membership_for
from tests.factories import add_member, make_assistant, make_connection, make_team, make_thread, make_user

pytestmark = pytest.mark.django_db


def test_a_membership_is_read_with_its_team_and_only_for_the_users_own_teams(django_assert_num_queries) -> None:
    person = make_user()
    team, other = make_team(name="Ours"), make_team(name="Theirs")
    add_member(team, person, role=Role.ADMIN)

    membership = membership_for(user=person, team_id=team.pk)
    assert membership is not None
    with django_assert_num_queries(0):  # the team came with it
        assert (membership.team.name, membership.role, membership.user_id) == ("Ours", Role.ADMIN, person.pk)
    assert membership_for(user=person, team_id=other.pk) is None
    assert membership_for(user=person, team_id=2**70) is None  # no such id: not an error


def test_a_thread_is_read_with_its_assistant_version_and_connection_only_in_its_own_team(
        django_assert_num_queries) -> None:
    team, other = make_team(), make_team()
    connection = make_connection(team, name="Our server")
    thread = make_thread(team, make_assistant(team, connection, name="Helper"))

    found = team_thread_get(team=team, thread_id=thread.pk)
    with django_assert_num_queries(0):  # what the views read next came with it
        assert found.assistant.name == "Helper"
        assert found.assistant.current_version is not None
        assert found.assistant.current_version.model == "gpt-4.1-mini"
        assert found.assistant.connection is not None and found.assistant.connection.name == "Our server"
        assert found.team == team
    assert found.assistant.connection.get_api_key()  # the secret reads as the ORM's instance did

    for team_asked, thread_id in ((other, thread.pk), (team, thread.pk + 10_000), (team, 2**70), (team, 0)):
        with pytest.raises(Http404):
            team_thread_get(team=team_asked, thread_id=thread_id)


def test_a_thread_whose_assistant_has_no_connection_reads_as_none() -> None:
    team = make_team()
    thread = make_thread(team, make_assistant(team, None))
    assert team_thread_get(team=team, thread_id=thread.pk).assistant.connection is None

"""Test data, made in one place. Plain functions: each returns a saved object."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from django.contrib.auth.models import User

from project.providers.models import ProviderConnection, ProviderKind
from project.providers.services import connection_save
from project.teams.models import Membership, Role, Team
from project.teams.services import team_create

if TYPE_CHECKING:
    from assistants_app.models import Assistant, Message, Thread

PASSWORD = "correct horse battery staple"
_sequence = itertools.count(1)


def make_user(username: str | None = None, **extra: object) -> User:
    username = username or f"user{next(_sequence)}"
    return User.objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.com", **extra)


def make_team(name: str | None = None, owner: User | None = None) -> Team:
    return team_create(name=name or f"Team {next(_sequence)}", owner=owner or make_user())


def add_member(team: Team, user: User | None = None, role: str = Role.MEMBER) -> Membership:
    return Membership.objects.create(team=team, user=user or make_user(), role=role)


def make_connection(team: Team, *, base_url: str = "http://127.0.0.1:9/v1", api_key: str = "sk-test-1234",
                    kind: str = ProviderKind.COMPATIBLE, name: str | None = None, webhook_secret: str = "") -> ProviderConnection:
    return connection_save(team=team, actor=None, kind=kind, name=name or f"Connection {next(_sequence)}",
                           base_url=base_url, api_key=api_key, webhook_secret=webhook_secret)


# -- chat (assistants_app) -------------------------------------------------------------------

def make_assistant(team: Team, connection: ProviderConnection | None = None, *, name: str | None = None,
                   actor: User | None = None, **config: object) -> Assistant:
    from assistants_app.services import assistant_create

    settings: dict[str, object] = {"model": "gpt-4.1-mini", "instructions": "Be brief.", "temperature": None,
                                   "top_p": None, "reasoning_effort": "", "max_output_tokens": None, "tools": [],
                                   "response_schema": {}}
    settings.update(config)
    return assistant_create(team=team, actor=actor, name=name or f"Assistant {next(_sequence)}", description="",
                            connection=connection, config=settings)


def make_thread(team: Team, assistant: Assistant | None = None, title: str = "A thread") -> Thread:
    from assistants_app.models import Thread as ThreadModel

    return ThreadModel.objects.create(team=team, assistant=assistant or make_assistant(team), title=title)


def make_message(thread: Thread, text: str = "hello", role: str = "user", **extra: object) -> Message:
    from assistants_app.models import Message as MessageModel

    return MessageModel.objects.create(thread=thread, team_id=thread.team_id, role=role, text=text, **extra)

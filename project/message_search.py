"""Searching the team's messages by meaning: a registry the search feature fills.

Chat owns the thread list and the built-in "search the team's threads" tool; the search
feature (search_app) owns embeddings and ranking. Chat must not import a feature, so the
search feature registers here, from its AppConfig.ready(), the page the thread list's
search box sends to and the search the tool calls. With nothing registered, chat keeps
its own keyword search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from project.teams.models import Team


@dataclass(frozen=True)
class SearchModes:
    url_name: str  # the results page the search box submits to (GET, with the thread list's filters)
    modes: tuple[str, ...]  # offered to this team, e.g. ("keyword", "semantic", "hybrid")
    default: str
    note: str = ""  # why a mode is missing, shown under the box


@dataclass(frozen=True)
class MessageSearchHit:
    thread_title: str
    role: str
    text: str


ModesSource = Callable[[Team], SearchModes]
ToolSearch = Callable[[Team, str, int], list[MessageSearchHit]]
_modes: list[ModesSource] = []
_tool_search: list[ToolSearch] = []


def register_message_search(*, modes: ModesSource, tool_search: ToolSearch) -> None:
    _modes[:] = [modes]
    _tool_search[:] = [tool_search]


def search_modes(*, team: Team) -> SearchModes | None:
    return _modes[0](team) if _modes else None


def registered_tool_search() -> ToolSearch | None:
    return _tool_search[0] if _tool_search else None

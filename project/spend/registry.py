"""What the team spent, by feature: a registry the features add a section to.

The Usage page is the platform's; it imports no feature. Each feature registers, from
its AppConfig.ready(), a function that reads its own spend for a team and returns a
section (its own template and context, and its total cost), so chat and batches never
import each other to be shown on one page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from project.teams.models import Team


@dataclass(frozen=True)
class SpendSection:
    key: str  # "chat", "batches": also the order on the page
    title: str
    template: str  # rendered with `section` (this object) in its context
    cost: Decimal  # what is known; `unknown_cost` counts what is left out of it
    context: dict[str, Any] = field(default_factory=dict)
    # Items whose cost is unknown (a model nobody priced): the page says so instead of $0.
    unknown_cost: int = 0


SpendSource = Callable[[Team, int], SpendSection]
_sources: dict[str, tuple[int, SpendSource]] = {}


def register_spend_source(key: str, source: SpendSource, *, order: int = 100) -> None:
    """`source(team, days)` returns the feature's section for the last `days` days."""
    _sources[key] = (order, source)


def team_spend_sections(*, team: Team, days: int) -> list[SpendSection]:
    return [source(team, days) for _, source in sorted(_sources.values(), key=lambda entry: entry[0])]

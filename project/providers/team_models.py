"""Models a team made itself (a fine-tuned model, a checkpoint): a registry features
add a lookup to, so chat can offer and check such a model without importing the
feature that made it. A checkpoint is in no provider's model list; only the team's own
records say it exists, and on which connection (provider account) it lives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from project.providers.models import ProviderConnection
from project.teams.models import Team


@dataclass(frozen=True)
class TeamModel:
    model: str
    connection: ProviderConnection  # the only account where the model exists
    assistant_name: str  # what an assistant made to chat with it is called
    made_by: str  # shown to people: "fine-tuning job ftjob-abc"
    url: str  # the page of what made it


# What an assistant made to chat with a fine-tuned model is called ("Fine-tuned: support"):
# chat names one for an ft: model it knows nothing about, a feature names its own.
FINE_TUNED_PREFIX = "Fine-tuned: "

TeamModelSource = Callable[[Team, str, ProviderConnection | None], TeamModel | None]
_sources: list[TeamModelSource] = []


def register_team_model_source(source: TeamModelSource) -> None:
    """`source(team, model_id, connection_or_None)`: the team's own model, if it made it
    (on that connection, when one is given)."""
    if source not in _sources:
        _sources.append(source)


TeamModelsLister = Callable[[Team], list[TeamModel]]
_listers: list[TeamModelsLister] = []


def register_team_models_lister(lister: TeamModelsLister) -> None:
    """`lister(team)`: every model the feature made for the team (the shutdowns page lists them)."""
    if lister not in _listers:
        _listers.append(lister)


def team_models_list(*, team: Team) -> list[TeamModel]:
    return [model for lister in _listers for model in lister(team)]


def team_model_lookup(*, team: Team, model: str, connection: ProviderConnection | None = None) -> TeamModel | None:
    if not model:
        return None
    for source in _sources:
        found = source(team, model, connection)
        if found is not None:
            return found
    return None

"""What other features measured about an assistant version (an eval's pass rate on a test
set): a registry a feature adds a source to, so chat's pages show the figures without
importing the feature that made them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from project.teams.models import Team


@dataclass(frozen=True)
class VersionResult:
    label: str  # what was measured: "Capitals v3"
    passed: int
    total: int
    url: str  # the page of the measurement

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.total if self.total else None


VersionResultsSource = Callable[[Team, Sequence[int]], Mapping[int, Sequence[VersionResult]]]
_sources: list[VersionResultsSource] = []


def register_version_results_source(source: VersionResultsSource) -> None:
    """`source(team, version_ids)`: for each version id, its latest results (newest first)."""
    if source not in _sources:
        _sources.append(source)


def version_results(*, team: Team, version_ids: Sequence[int]) -> dict[int, list[VersionResult]]:
    found: dict[int, list[VersionResult]] = {}
    for source in _sources:
        for version_id, results in source(team, version_ids).items():
            found.setdefault(version_id, []).extend(results)
    return found

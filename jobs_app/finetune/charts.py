"""Line charts as data for an inline SVG drawn by the template: readable without JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 600
HEIGHT = 220
PAD_LEFT = 48
PAD_RIGHT = 12
PAD_TOP = 12
PAD_BOTTOM = 28
MAX_POINTS = 400


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str
    points: str  # "x,y x,y ..." for <polyline points>
    last: float | None


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    series: list[Series]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PAD_LEFT
    bottom: int = HEIGHT - PAD_BOTTOM

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def _thin(values: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(values) <= MAX_POINTS:
        return values
    stride = len(values) / MAX_POINTS
    return [values[int(i * stride)] for i in range(MAX_POINTS)] + [values[-1]]


def line_chart(title: str, steps: Sequence[int], lines: Sequence[tuple[str, str, Sequence[float | None]]]) -> Chart:
    """lines: (name, css class, one value or None per step)."""
    present = [(s, v) for _, _, values in lines for s, v in zip(steps, values, strict=False) if v is not None]
    if not present:
        return Chart(title=title, series=[Series(n, c, "", None) for n, c, _ in lines], y_ticks=[], x_ticks=[])
    x_min = min(s for s, _ in present)
    x_max = max(s for s, _ in present)
    y_min = min(0.0, min(v for _, v in present))
    y_max = max(v for _, v in present) or 1.0
    x_span = (x_max - x_min) or 1
    y_span = (y_max - y_min) or 1.0
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(step: float) -> float:
        return PAD_LEFT + (step - x_min) / x_span * plot_w

    def y(value: float) -> float:
        return PAD_TOP + (1 - (value - y_min) / y_span) * plot_h

    series = []
    for name, css_class, values in lines:
        pairs = _thin([(s, v) for s, v in zip(steps, values, strict=False) if v is not None])
        points = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in pairs)
        series.append(Series(name, css_class, points, pairs[-1][1] if pairs else None))
    y_ticks = [Tick(y(y_min + y_span * i / 4), f"{y_min + y_span * i / 4:.2f}") for i in range(5)]
    x_ticks = [Tick(x(x_min + x_span * i / 4), str(round(x_min + x_span * i / 4))) for i in range(5)]
    return Chart(title=title, series=series, y_ticks=y_ticks, x_ticks=x_ticks)

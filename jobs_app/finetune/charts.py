"""Line charts of a job's metrics by training step, for an inline SVG drawn by the
template (see project.svg_charts): readable without JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from project.svg_charts import Axes, Frame, spread_ticks, value_ticks

FRAME = Frame(width=600, height=220, left=48, right=12, top=12, bottom=28)
MAX_POINTS = 400


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str
    points: str  # "x,y x,y ..." for <polyline points>
    last: float | None


@dataclass(frozen=True)
class Chart(Axes):
    series: list[Series]

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
        return Chart(title=title, frame=FRAME, y_ticks=[], x_ticks=[],
                     series=[Series(n, c, "", None) for n, c, _ in lines])
    x_min = min(s for s, _ in present)
    x_max = max(s for s, _ in present)
    y_min = min(0.0, min(v for _, v in present))
    y_max = max(v for _, v in present) or 1.0
    x_span = (x_max - x_min) or 1
    y_span = (y_max - y_min) or 1.0

    series = []
    for name, css_class, values in lines:
        pairs = _thin([(s, v) for s, v in zip(steps, values, strict=False) if v is not None])
        points = " ".join(f"{FRAME.x((s - x_min) / x_span):.1f},{FRAME.y((v - y_min) / y_span):.1f}" for s, v in pairs)
        series.append(Series(name, css_class, points, pairs[-1][1] if pairs else None))
    return Chart(title=title, frame=FRAME, series=series,
                 y_ticks=value_ticks(FRAME, y_min, y_min + y_span, lambda value: f"{value:.2f}"),
                 x_ticks=spread_ticks(FRAME, x_min, x_min + x_span, lambda step: str(round(step))))

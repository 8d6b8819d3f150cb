"""Bar charts as data for an inline SVG the template draws (no script, no CDN): cost per
day stacked by feature or model, tokens per day, and horizontal bars for the top lists."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

WIDTH = 720
HEIGHT = 240
LEFT = 64
RIGHT = 8
TOP = 10
BOTTOM = 26
# Enough colours to tell a handful of series apart; more than that are summed as "other".
PALETTE = ("#3b6fd8", "#e07b39", "#3aa17e", "#b8499c", "#c9a227", "#6c7a89", "#8d5cd6", "#d0464e")
MAX_SERIES = len(PALETTE)


# Coordinates are strings made here: a float in a template goes through number
# localisation, which cost more than the rest of the page with a month of bars.
@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    fill: str
    title: str  # the tooltip: what and how much


@dataclass(frozen=True)
class Tick:
    position: str
    label: str


@dataclass(frozen=True)
class Legend:
    name: str
    fill: str


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    legend: list[Legend]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not self.bars


def _nice_top(value: float) -> float:
    """The axis' top: the value rounded up to 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if value <= step * magnitude * (1 + 1e-9))


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def _count(value: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def stacked_bars(title: str, days: Sequence[date], series: Mapping[str, Mapping[date, Decimal | int]],
                 *, money: bool) -> BarChart:
    """One bar per day, one segment per series (largest series first, the rest as "other")."""
    totals = {name: float(sum(values.values())) for name, values in series.items()}
    ranked = sorted((n for n in totals if totals[n] > 0), key=lambda n: -totals[n])
    shown = ranked[:MAX_SERIES - 1] if len(ranked) > MAX_SERIES else ranked
    stacks: dict[str, dict[date, float]] = {name: {d: float(v) for d, v in series[name].items()} for name in shown}
    rest = ranked[len(shown):]
    if rest:
        stacks["other"] = {}
        for name in rest:
            for day, figure in series[name].items():
                stacks["other"][day] = stacks["other"].get(day, 0.0) + float(figure)
    fills = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(stacks)}
    day_totals = [sum(stack.get(day, 0.0) for stack in stacks.values()) for day in days]
    top = _nice_top(max(day_totals, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    fmt = _money if money else _count
    bars: list[Bar] = []
    for i, day in enumerate(days):
        y = float(TOP + plot_h)
        for name, stack in stacks.items():
            value = stack.get(day, 0.0)
            if value <= 0:
                continue
            height = value / top * plot_h
            y -= height
            bars.append(Bar(x=f"{LEFT + i * slot + slot * 0.1:.2f}", y=f"{y:.2f}", width=f"{slot * 0.8:.2f}",
                            height=f"{max(height, 0.5):.2f}", fill=fills[name],
                            title=f"{day:%b %d} · {name}: {fmt(value)}"))
    y_ticks = [Tick(position=f"{TOP + plot_h - plot_h * k / 4:.2f}", label=fmt(top * k / 4)) for k in range(5)]
    every = max(1, len(days) // 8)
    x_ticks = [Tick(position=f"{LEFT + i * slot + slot / 2:.2f}", label=f"{day:%b %d}")
               for i, day in enumerate(days) if i % every == 0]
    return BarChart(title=title, bars=bars, legend=[Legend(name, fill) for name, fill in fills.items()],
                    y_ticks=y_ticks, x_ticks=x_ticks)


@dataclass(frozen=True)
class RankRow:
    label: str
    value: Decimal
    share: str  # of the largest, 0..100: the bar's width in the template
    calls: int
    tokens: int


def ranked(rows: Sequence[tuple[str, Decimal, int, int]]) -> list[RankRow]:
    """(label, cost, calls, tokens) rows, largest first, with each bar's width."""
    largest = max((float(cost) for _, cost, _, _ in rows), default=0.0) or 1.0
    return [RankRow(label=label, value=cost, share=f"{float(cost) / largest * 100:.1f}", calls=calls, tokens=tokens)
            for label, cost, calls, tokens in rows]

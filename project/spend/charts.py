"""Bar charts for an inline SVG (see project.svg_charts): cost per day stacked by feature
or model, tokens per day, and horizontal bars for the top lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from project.svg_charts import Axes, Frame, coordinate, nice_top, slot_ticks, value_ticks

FRAME = Frame(width=720, height=240, left=64, right=8, top=10, bottom=26)
# Enough colours to tell a handful of series apart; more than that are summed as "other".
PALETTE = ("#3b6fd8", "#e07b39", "#3aa17e", "#b8499c", "#c9a227", "#6c7a89", "#8d5cd6", "#d0464e")
MAX_SERIES = len(PALETTE)


@dataclass(frozen=True)
class Legend:
    name: str
    fill: str


@dataclass(frozen=True)
class BarChart(Axes):
    legend: list[Legend]
    # The bars as SVG, made here: a month of stacked bars drawn by the template's loop
    # was most of the page's time.
    bars: SafeString

    @property
    def empty(self) -> bool:
        return not self.bars


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
    names = {name: escape(name) for name in stacks}
    day_totals = [sum(stack.get(day, 0.0) for stack in stacks.values()) for day in days]
    top = nice_top(max(day_totals, default=0.0))
    plot_h = FRAME.plot_height
    slot = FRAME.plot_width / max(len(days), 1)
    fmt = _money if money else _count
    bars: list[str] = []
    for i, day in enumerate(days):
        y = float(FRAME.baseline)
        x, width, label = coordinate(FRAME.left + i * slot + slot * 0.1), coordinate(slot * 0.8), f"{day:%b %d}"
        for name, stack in stacks.items():
            value = stack.get(day, 0.0)
            if value <= 0:
                continue
            height = value / top * plot_h
            y -= height
            bars.append(f'<rect x="{x}" y="{y:.2f}" width="{width}" height="{max(height, 0.5):.2f}" '
                        f'fill="{fills[name]}"><title>{label} · {names[name]}: {escape(fmt(value))}</title></rect>')
    return BarChart(title=title, frame=FRAME, y_ticks=value_ticks(FRAME, 0.0, top, fmt),
                    x_ticks=slot_ticks(FRAME, [f"{day:%b %d}" for day in days]),
                    legend=[Legend(name, fill) for name, fill in fills.items()],
                    bars=mark_safe("".join(bars)))  # noqa: S308 - numbers made here and escaped names


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

"""The geometry every server-rendered SVG chart shares (the Usage page's bars, the
fine-tune metrics' lines): the frame the plot sits in, value axes rounded to readable
numbers, and ticks. Charts are data the templates draw as inline SVG: no script, no CDN.

Coordinates are strings made here: a float in a template goes through number
localisation, which cost more than the rest of a page with a month of bars."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    """The chart's size and the margins around its plot (axis labels sit in them)."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def plot_width(self) -> float:
        return float(self.width - self.left - self.right)

    @property
    def plot_height(self) -> float:
        return float(self.height - self.top - self.bottom)

    @property
    def baseline(self) -> int:
        return self.height - self.bottom

    def x(self, fraction: float) -> float:
        """Across the plot: 0 is its left edge, 1 its right."""
        return self.left + fraction * self.plot_width

    def y(self, fraction: float) -> float:
        """Up the plot: 0 is its baseline, 1 its top."""
        return self.top + (1 - fraction) * self.plot_height


@dataclass(frozen=True)
class Tick:
    position: str
    label: str


def coordinate(value: float) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class Axes:
    """What a chart's template draws around its marks: title, frame and ticks."""

    title: str
    frame: Frame
    y_ticks: list[Tick]
    x_ticks: list[Tick]

    # The template's names for the frame.
    @property
    def width(self) -> int:
        return self.frame.width

    @property
    def height(self) -> int:
        return self.frame.height

    @property
    def left(self) -> int:
        return self.frame.left

    @property
    def bottom(self) -> int:
        return self.frame.baseline


def nice_top(value: float) -> float:
    """An axis' top: the value rounded up to 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if value <= step * magnitude * (1 + 1e-9))


TICKS = 4  # intervals on an axis: five labels


def value_ticks(frame: Frame, low: float, high: float, label: Callable[[float], str]) -> list[Tick]:
    """Evenly spaced labels up the value axis, from `low` at the baseline to `high` at the top."""
    return [Tick(position=coordinate(frame.y(k / TICKS)), label=label(low + (high - low) * k / TICKS))
            for k in range(TICKS + 1)]


def spread_ticks(frame: Frame, low: float, high: float, label: Callable[[float], str]) -> list[Tick]:
    """Evenly spaced labels along the horizontal axis of a continuous scale (steps, time)."""
    return [Tick(position=coordinate(frame.x(k / TICKS)), label=label(low + (high - low) * k / TICKS))
            for k in range(TICKS + 1)]


def slot_ticks(frame: Frame, labels: Sequence[str], *, most: int = 8) -> list[Tick]:
    """Labels under one slot each of a bar chart (one bar per slot), at most about `most`."""
    slot = frame.plot_width / max(len(labels), 1)
    every = max(1, len(labels) // most)
    return [Tick(position=coordinate(frame.left + i * slot + slot / 2), label=label)
            for i, label in enumerate(labels) if i % every == 0]

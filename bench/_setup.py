"""Percentile helpers shared by the chat benchmarks."""

from __future__ import annotations

import statistics


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(name: str, values_ms: list[float]) -> str:
    return (f"{name}: n={len(values_ms)} median={statistics.median(values_ms):.1f} ms "
            f"p95={pct(values_ms, 95):.1f} ms max={max(values_ms):.1f} ms")

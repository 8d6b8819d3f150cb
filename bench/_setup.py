"""Shared by the chat benchmarks: Django set up against DATABASE_URL (migrated), and
percentile helpers. Run benchmarks with the same env as the tests (see README)."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

django.setup()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(name: str, values_ms: list[float]) -> str:
    return (f"{name}: n={len(values_ms)} median={statistics.median(values_ms):.1f} ms "
            f"p95={pct(values_ms, 95):.1f} ms max={max(values_ms):.1f} ms")

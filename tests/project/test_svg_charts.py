"""The chart geometry both SVG charts share (the Usage page's bars, the fine-tune metrics'
lines): readable axis tops, ticks placed in the frame, and labels escaped in drawn bars."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from jobs_app.finetune.charts import line_chart
from project.spend.charts import FRAME, stacked_bars
from project.svg_charts import Frame, nice_top, slot_ticks, value_ticks


def test_an_axis_top_is_rounded_up_to_a_readable_number() -> None:
    assert [nice_top(v) for v in (0, 0.7, 1, 1.2, 2.2, 3, 7, 80, 0.013)] == [1.0, 1.0, 1, 2, 2.5, 5, 10, 100, 0.02]


def test_ticks_sit_in_the_frame() -> None:
    frame = Frame(width=100, height=60, left=10, right=0, top=10, bottom=10)
    ticks = value_ticks(frame, 0.0, 2.0, lambda v: f"{v:g}")
    assert [(t.position, t.label) for t in ticks] == [
        ("50.00", "0"), ("40.00", "0.5"), ("30.00", "1"), ("20.00", "1.5"), ("10.00", "2")]
    slots = slot_ticks(frame, [str(i) for i in range(20)], most=4)
    assert [t.label for t in slots] == ["0", "5", "10", "15"] and slots[0].position == "12.25"


def test_both_charts_are_drawn_in_their_frames_from_the_shared_geometry() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(3)]
    bars = stacked_bars("Cost", days, {"<b>model</b>": {days[0]: Decimal("1.5")}}, money=True)
    assert bars.y_ticks[-1].label == "$2.00" and bars.y_ticks[0].position == f"{FRAME.baseline:.2f}"
    assert "&lt;b&gt;model&lt;/b&gt;: $1.50</title>" in bars.bars and "<b>" not in bars.bars
    lines = line_chart("Loss", [1, 2, 3], [("training loss", "train", [2.0, 1.0, 0.5])])
    assert (lines.width, lines.left, lines.bottom) == (600, 48, 192)
    assert [t.label for t in lines.x_ticks] == ["1", "2", "2", "2", "3"] and lines.y_ticks[-1].label == "2.00"
    assert lines.series[0].points.startswith("48.0,12.0 ")

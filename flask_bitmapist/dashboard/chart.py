"""The geometry of the event page's bar chart, drawn as inline SVG by a template.

The server computes every coordinate, so the chart needs no script and no
inline style: colours come from the dashboard's stylesheet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    """One bar: its box in SVG units, and what it stands for."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Tick:
    """A horizontal grid line at ``y`` for ``value``."""

    y: float
    value: int


@dataclass(frozen=True)
class BarChart:
    """A bar chart of ``(label, value)`` points in a ``width`` x ``height`` box,
    with a left margin for the axis labels and a bottom one for the first and
    last labels."""

    width: int
    height: int
    left: int
    bottom: int
    bars: list[Bar]
    ticks: list[Tick]

    @property
    def plot_bottom(self) -> int:
        """The y of the axis the bars stand on."""
        return self.height - self.bottom


def bar_chart(
    points: Sequence[tuple[str, int]],
    width: int = 720,
    height: int = 220,
    left: int = 48,
    bottom: int = 24,
) -> BarChart:
    """Lay out ``points`` as bars scaled to a round maximum with 4 grid lines.

    :param points: ``(label, value)`` pairs, left to right; values >= 0.
    """
    top_value = _round_up(max((value for _, value in points), default=0))
    plot_height = height - bottom - 8
    slot = (width - left) / max(len(points), 1)
    gap = min(2.0, slot / 4)

    def y_of(value: float) -> float:
        return round(height - bottom - plot_height * value / top_value, 2)

    bars = [
        Bar(
            x=round(left + index * slot + gap / 2, 2),
            y=y_of(value),
            width=round(slot - gap, 2),
            height=round(height - bottom - y_of(value), 2),
            label=label,
            value=value,
        )
        for index, (label, value) in enumerate(points)
    ]
    ticks = [
        Tick(y=y_of(top_value * step / 4), value=top_value * step // 4)
        for step in range(5)
    ]
    return BarChart(width, height, left, bottom, bars, ticks)


def _round_up(value: int) -> int:
    """The smallest multiple of 4 round units that is at least ``value`` (a
    unit is 1 up to 99, 10 up to 999, ...), so the grid lines fall on round
    numbers."""
    unit: int = 10 ** max(len(str(max(value, 1))) - 2, 0)
    return max(4 * unit * math.ceil(value / (4 * unit)), 4)

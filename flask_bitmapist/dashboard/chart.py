"""The geometry of the dashboard's charts, drawn as inline SVG by templates:
the event page's bar charts (daily users, stickiness), its stacked lifecycle
chart, and the funnel's horizontal bars.

The server computes every coordinate, so the charts need no script and no
inline style: colours come from the dashboard's stylesheet, by the class of
each shape.
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

    @property
    def middle(self) -> float:
        """The x of the bar's middle, where its label is centred."""
        return round(self.x + self.width / 2, 2)


@dataclass(frozen=True)
class Tick:
    """A horizontal grid line at ``y`` for ``value``."""

    y: float
    value: int


# The width of a bar's label of two digits, in SVG units, with a gap.
_LABEL_WIDTH = 16


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

    @property
    def label_step(self) -> int:
        """Label every this many bars, from the first, so that labels of up
        to two digits (about 16 units wide at the axis' 12px) keep apart."""
        slot = (self.width - self.left) / max(len(self.bars), 1)
        return math.ceil(_LABEL_WIDTH / slot)


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


def stickiness_chart(counts: Sequence[int]) -> BarChart:
    """:func:`bar_chart` of a stickiness, ``counts[k - 1]`` users with ``k``
    days labelled ``k``, in a box half as wide as the daily chart's: it
    shares the page's width with another one.
    """
    return bar_chart(
        [(str(days), count) for days, count in enumerate(counts, 1)],
        width=360,
        height=180,
        left=36,
    )


def _round_up(value: int) -> int:
    """The smallest multiple of 4 round units that is at least ``value`` (a
    unit is 1 up to 99, 10 up to 999, ...), so the grid lines fall on round
    numbers."""
    unit: int = 10 ** max(len(str(max(value, 1))) - 2, 0)
    return max(4 * unit * math.ceil(value / (4 * unit)), 4)


@dataclass(frozen=True)
class Segment:
    """One part of a stacked bar: its box in SVG units, the series it belongs
    to (the class that colours it), its bar's label and its value."""

    x: float
    y: float
    width: float
    height: float
    series: str
    label: str
    value: int


@dataclass(frozen=True)
class StackedBarChart:
    """Bars stacked from a horizontal axis at ``zero``: some series upwards,
    others downwards, in a ``width`` x ``height`` box with the margins of
    :class:`BarChart`. ``labels`` are the bars' labels, left to right, and
    ``ticks`` the grid lines, with negative values below the axis."""

    width: int
    height: int
    left: int
    bottom: int
    zero: float
    labels: list[str]
    segments: list[Segment]
    ticks: list[Tick]


def stacked_bar_chart(
    labels: Sequence[str],
    above: Sequence[tuple[str, Sequence[int]]],
    below: Sequence[tuple[str, Sequence[int]]] = (),
    width: int = 720,
    height: int = 240,
    left: int = 48,
    bottom: int = 24,
) -> StackedBarChart:
    """Lay out one bar per label, made of the ``above`` series stacked upwards
    from the axis in their order, and the ``below`` series stacked downwards.

    Both sides share one scale, in steps of a round number (as
    :func:`bar_chart`'s grid): the taller side spans up to 4 steps, the
    other as many as it needs, so the axis sits where the two sides' heights
    put it. A segment of value 0 is left out.

    :param labels: the bars' labels, left to right.
    :param above: ``(series, values)`` pairs, one value per label, >= 0.
    :param below: the same, drawn below the axis.
    """
    sides = (above, below)
    tallest = [
        max(
            (sum(values[index] for _, values in side) for index in range(len(labels))),
            default=0,
        )
        for side in sides
    ]
    step = _round_up(max(tallest)) // 4
    steps_up, steps_down = (math.ceil(value / step) for value in tallest)
    if steps_up + steps_down == 0:
        steps_up = 4
    plot_height = height - bottom - 8
    per_unit = plot_height / ((steps_up + steps_down) * step)
    zero = 8 + steps_up * step * per_unit
    slot = (width - left) / max(len(labels), 1)
    gap = min(2.0, slot / 4)
    segments: list[Segment] = []
    for index, label in enumerate(labels):
        for direction, side in ((-1, above), (1, below)):
            stacked = 0
            for series, values in side:
                value = values[index]
                if not value:
                    continue
                # Each edge from the running total, so that stacked segments
                # meet exactly whatever the rounding.
                near = round(zero + direction * stacked * per_unit, 2)
                stacked += value
                far = round(zero + direction * stacked * per_unit, 2)
                segments.append(
                    Segment(
                        x=round(left + index * slot + gap / 2, 2),
                        y=min(near, far),
                        width=round(slot - gap, 2),
                        height=round(abs(far - near), 2),
                        series=series,
                        label=label,
                        value=value,
                    )
                )
    ticks = [
        Tick(y=round(zero - number * step * per_unit, 2), value=number * step)
        for number in range(steps_up, -steps_down - 1, -1)
    ]
    return StackedBarChart(
        width, height, left, bottom, round(zero, 2), list(labels), segments, ticks
    )


@dataclass(frozen=True)
class FunnelBar:
    """One step of a funnel chart: a horizontal bar from ``x`` whose width is
    the step's users, then the part of the previous step's bar it lost
    (``dropped_width``, 0 for the first step), under a line of text at
    ``text_y``."""

    x: float
    y: float
    width: float
    height: float
    dropped_width: float
    text_y: float
    label: str
    value: int

    @property
    def dropped_x(self) -> float:
        """Where the lost part starts: the end of the bar."""
        return round(self.x + self.width, 2)


@dataclass(frozen=True)
class PercentTick:
    """A vertical grid line at ``x`` for ``percent`` of the widest bar."""

    x: float
    percent: int


@dataclass(frozen=True)
class FunnelChart:
    """A funnel's steps as horizontal bars, one under the other, scaled to
    the widest (the first step's, in a funnel), in a ``width`` x ``height``
    box with a bottom margin for the percent axis."""

    width: int
    height: int
    left: int
    bottom: int
    bars: list[FunnelBar]
    ticks: list[PercentTick]


def funnel_chart(
    points: Sequence[tuple[str, int]],
    width: int = 720,
    row_height: int = 52,
    bar_height: int = 24,
    left: int = 8,
    bottom: int = 24,
) -> FunnelChart:
    """Lay out ``points`` as a funnel: a row of ``row_height`` per step, its
    text line above a bar of ``bar_height`` whose width is proportional to its
    value, with grid lines at 0, 25, 50, 75 and 100% of the widest bar.

    :param points: ``(label, value)`` pairs, first step first; values >= 0.
    """
    widest = max((value for _, value in points), default=0)
    plot_width = width - 2 * left

    def width_of(value: int) -> float:
        return round(plot_width * value / widest, 2) if widest else 0.0

    bars = []
    for index, (label, value) in enumerate(points):
        top = index * row_height
        previous = points[index - 1][1] if index else value
        bars.append(
            FunnelBar(
                x=left,
                y=top + row_height - bar_height - 4,
                width=width_of(value),
                height=bar_height,
                dropped_width=round(max(width_of(previous) - width_of(value), 0), 2),
                text_y=top + row_height - bar_height - 10,
                label=label,
                value=value,
            )
        )
    ticks = [
        PercentTick(x=round(left + plot_width * percent / 100, 2), percent=percent)
        for percent in range(0, 101, 25)
    ]
    height = len(points) * row_height + bottom
    return FunnelChart(width, height, left, bottom, bars, ticks)

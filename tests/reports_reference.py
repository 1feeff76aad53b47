"""What the reports of issue 15 must answer, on Python sets: retention modes of
``get_cohort``, ``get_funnel``, ``get_lifecycle`` and ``get_stickiness``,
computed from a list of marks one user at a time, straight from their
definitions. No package code: periods come from tests/model.py
(``datetime`` and ``date.isocalendar()`` arithmetic), so the reference
cannot share a mistake with the package. tests/test_reports.py compares the
package with it on random marks.

A mark is ``(event, user id, time)``: it puts the user in the event's day,
ISO week, month and year of that time (UTC). A period is named by its first
day (see :func:`model.period_start`). "Earlier" and "first" are over every
mark of the event, however far in the past and in whatever order the marks
were written; "now's period" is the period that holds ``now``, whole (a mark
later on now's day is in it).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

from model import period_start, plural_group, shift

__all__ = [
    "FunnelAnswer",
    "LifecycleAnswer",
    "Mark",
    "Reference",
    "conversion_from_first",
    "conversion_from_previous",
    "drop_off",
]

User = Hashable
Mark = tuple[str, User, datetime]
Table = list[list[int | None]]
TIME_GROUPS = ("days", "weeks", "months", "years")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


@dataclass(frozen=True)
class FunnelAnswer:
    """``dates``: each entry period's start, oldest first; ``rows[i][k]``: the
    users who entered in ``dates[i]`` and completed step ``k``."""

    dates: list[datetime]
    rows: list[list[int]]

    @property
    def counts(self) -> list[int]:
        """The users who completed each step: the rows' column sums."""
        return [sum(column) for column in zip(*self.rows, strict=True)]


@dataclass(frozen=True)
class LifecycleAnswer:
    """One period of a lifecycle: its start and its four counts."""

    date: datetime
    new: int
    returning: int
    resurrecting: int
    dormant: int


def conversion_from_previous(counts: Sequence[int]) -> list[float | None]:
    """Each step as a percent of the step before it; step 1 is 100 (when
    anyone entered); ``None`` where the step before has no user."""
    first: float | None = 100.0 if counts[0] else None
    return [first] + [
        counts[k] / counts[k - 1] * 100 if counts[k - 1] else None
        for k in range(1, len(counts))
    ]


def conversion_from_first(counts: Sequence[int]) -> list[float | None]:
    """Each step as a percent of step 1; ``None`` when nobody entered."""
    return [count / counts[0] * 100 if counts[0] else None for count in counts]


def drop_off(counts: Sequence[int]) -> list[int]:
    """The users lost at each step (0 at step 1)."""
    return [0] + [counts[k - 1] - counts[k] for k in range(1, len(counts))]


class Reference:
    """Each user's periods of each event, from a list of marks, and the
    reports computed from them user by user."""

    def __init__(self, marks: Iterable[Mark]) -> None:
        # (event, time group) -> user -> the starts of the periods in which
        # the user did the event.
        self._periods: defaultdict[tuple[str, str], defaultdict[User, set[date]]] = (
            defaultdict(lambda: defaultdict(set))
        )
        for event, user, when in marks:
            for group in TIME_GROUPS:
                self._periods[event, group][user].add(period_start(group, when))

    def periods(self, event: str, group: str) -> Mapping[User, set[date]]:
        """Each user who ever did ``event``, with the starts of their periods
        of ``group`` with it."""
        return self._periods.get((event, group), {})

    def users(self, event: str, group: str, start: date) -> set[User]:
        """``E[t]``: the users who did ``event`` in the period ``start``."""
        return {
            user
            for user, starts in self.periods(event, group).items()
            if start in starts
        }

    def chain(
        self,
        base: str,
        chain: Sequence[Mapping[str, str]],
        group: str,
        start: date,
    ) -> set[User]:
        """``base`` chained with ``[{"name", "op"}]`` in period ``start``: an
        "or" joins its event to the group of the one before it, an "and"
        starts a new group; the result is the intersection of the groups'
        unions (``A and B or C and D`` is ``A & (B | C) & D``)."""
        groups: list[list[str]] = [[base]]
        for item in chain:
            if item["op"] == "or":
                groups[-1].append(item["name"])
            else:
                groups.append([item["name"]])
        result: set[User] | None = None
        for names in groups:
            union: set[User] = set()
            for name in names:
                union |= self.users(name, group, start)
            result = union if result is None else result & union
        assert result is not None
        return result

    def first_timers(self, event: str, group: str, start: date) -> set[User]:
        """The users whose earliest period with ``event``, over every mark of
        it, is ``start``."""
        return {
            user
            for user, starts in self.periods(event, group).items()
            if min(starts) == start
        }

    def cohort(
        self,
        primary: str,
        secondary: str,
        additional: Sequence[Mapping[str, str]],
        time_group: str,
        num_rows: int,
        num_cols: int,
        with_replacement: bool,
        now: datetime,
        *,
        cohort: str = "recurring",
        retention: str = "on",
    ) -> tuple[Table, list[datetime], list[int]]:
        """``(table, dates, totals)`` of ``get_cohort``.

        Rows are the ``num_rows`` periods ``t_i`` ending with now's. Row
        ``i``'s users: who did ``primary`` in ``t_i`` (``recurring``), or
        whose earliest ``primary`` period is ``t_i`` (``first_time``).
        Cell ``(i, j)``: row ``i``'s users in the chained secondary set of
        period ``t_i + j`` (``on``; without replacement, less those counted
        in an earlier column of the row), or of any period from ``t_i + j``
        to now's (``on_or_after``, where replacement plays no part). A cell
        after now's period is ``None``; a row without users is all ``None``.
        """
        cells = self.cohort_cells(
            primary,
            secondary,
            additional,
            time_group,
            num_rows,
            num_cols,
            with_replacement,
            now,
            cohort=cohort,
            retention=retention,
        )
        rows = self.row_users(primary, time_group, num_rows, now, cohort)
        table: Table = [
            [None if cell is None else len(cell) for cell in row] for row in cells
        ]
        return (
            table,
            [_midnight(start) for start in rows],
            [len(users) for users in rows.values()],
        )

    def cohort_cells(
        self,
        primary: str,
        secondary: str,
        additional: Sequence[Mapping[str, str]],
        time_group: str,
        num_rows: int,
        num_cols: int,
        with_replacement: bool,
        now: datetime,
        *,
        cohort: str = "recurring",
        retention: str = "on",
    ) -> list[list[set[User] | None]]:
        """The users of each cell of :meth:`cohort` (``None`` where its
        count is)."""
        group = plural_group(time_group)
        current = period_start(group, now)

        @functools.cache
        def came_back(start: date) -> frozenset[User]:
            return frozenset(self.chain(secondary, additional, group, start))

        cells: list[list[set[User] | None]] = []
        for start, row_users in self.row_users(
            primary, group, num_rows, now, cohort
        ).items():
            if not row_users:
                cells.append([None] * num_cols)
                continue
            counted: set[User] = set()
            row: list[set[User] | None] = []
            for column in range(num_cols):
                cell_start = shift(group, start, column)
                if cell_start > current:
                    row.append(None)
                    continue
                if retention == "on_or_after":
                    back = {
                        user
                        for user in row_users
                        if any(
                            user in came_back(later)
                            for later in self._starts(group, cell_start, current)
                        )
                    }
                else:
                    back = row_users & came_back(cell_start)
                    if not with_replacement:
                        back -= counted
                        counted |= back
                row.append(back)
            cells.append(row)
        return cells

    def row_users(
        self, primary: str, time_group: str, num_rows: int, now: datetime, cohort: str
    ) -> dict[date, set[User]]:
        """Each cohort row's period start and users, oldest first."""
        group = plural_group(time_group)
        current = period_start(group, now)
        starts = [shift(group, current, offset) for offset in range(1 - num_rows, 1)]
        if cohort == "first_time":
            return {start: self.first_timers(primary, group, start) for start in starts}
        return {start: self.users(primary, group, start) for start in starts}

    @staticmethod
    def _starts(group: str, first: date, last: date) -> list[date]:
        """The starts of the periods from ``first`` to ``last``, both in."""
        starts = [first]
        while starts[-1] < last:
            starts.append(shift(group, starts[-1], 1))
        return starts

    def funnel(
        self,
        steps: Sequence[str],
        time_group: str,
        num_periods: int,
        within: int,
        now: datetime,
    ) -> FunnelAnswer:
        """``get_funnel``'s dates and rows.

        A user enters in the first of the ``num_periods`` periods ending with
        now's in which they did ``steps[0]``. Step ``k`` is completed in the
        first period ``u`` in which they did ``steps[k]`` with ``u`` no
        earlier than the period in which they completed step ``k - 1`` and
        no later than entry + ``within`` periods, nor than now's period; a
        user who misses a step completes none after it.
        """
        group = plural_group(time_group)
        current = period_start(group, now)
        starts = [shift(group, current, offset) for offset in range(1 - num_periods, 1)]
        rows = [[0] * len(steps) for _ in starts]
        for user, entered in self.periods(steps[0], group).items():
            entries = [index for index, start in enumerate(starts) if start in entered]
            if not entries:
                continue
            row = entries[0]
            rows[row][0] += 1
            completed = starts[row]
            deadline = min(shift(group, completed, within), current)
            for step in range(1, len(steps)):
                done = self.periods(steps[step], group).get(user, set())
                in_time = [start for start in done if completed <= start <= deadline]
                if not in_time:
                    break
                completed = min(in_time)
                rows[row][step] += 1
        return FunnelAnswer([_midnight(start) for start in starts], rows)

    def lifecycle(
        self, event: str, time_group: str, num_periods: int, now: datetime
    ) -> list[LifecycleAnswer]:
        """``get_lifecycle``'s rows: for each of the ``num_periods`` periods
        ``t`` ending with now's, the users who did ``event`` in ``t`` split
        into new (no period before ``t``), returning (also in ``t - 1``) and
        resurrecting (not in ``t - 1`` but in one before it), and the dormant
        ones (in ``t - 1``, not in ``t``)."""
        group = plural_group(time_group)
        current = period_start(group, now)
        answers = []
        for offset in range(1 - num_periods, 1):
            start = shift(group, current, offset)
            previous = shift(group, start, -1)
            new = returning = resurrecting = dormant = 0
            for starts in self.periods(event, group).values():
                if start in starts:
                    if not any(earlier < start for earlier in starts):
                        new += 1
                    elif previous in starts:
                        returning += 1
                    else:
                        resurrecting += 1
                elif previous in starts:
                    dormant += 1
            answers.append(
                LifecycleAnswer(_midnight(start), new, returning, resurrecting, dormant)
            )
        return answers

    def stickiness(self, event: str, time_group: str, now: datetime) -> list[int]:
        """``get_stickiness``: in the ISO week or month that holds ``now``,
        item ``k - 1`` counts the users who did ``event`` on exactly ``k`` of
        its days, for ``k`` from 1 to the period's number of days."""
        group = plural_group(time_group)
        start = period_start(group, now)
        end = shift(group, start, 1)
        counts = [0] * (end - start).days
        for days in self.periods(event, "days").values():
            active_days = sum(1 for day in days if start <= day < end)
            if active_days:
                counts[active_days - 1] += 1
        return counts

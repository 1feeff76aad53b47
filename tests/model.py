"""What the queries must answer, on Python sets: a model of ``get_cohort`` and
``chain_events`` built from a list of marks, with ``datetime`` and
``date.isocalendar()`` arithmetic only (no package code, no bitmapist, no
dateutil). tests/test_differential.py compares the package with it on random
marks, with or without bitmapist installed.

A mark is ``(event, user id, time)``; times are UTC (aware times are
converted, naive ones taken as UTC). A period is named by its first day: the
day itself, the Monday of its ISO week, the 1st of its month, or January 1st
of its year. A year holds every mark of its twelve months.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone

__all__ = ["Cohort", "Mark", "Model", "period_start", "plural_group", "shift"]

Mark = tuple[str, int, datetime]
Cohort = list[list[int | None]]
TIME_GROUPS = ("days", "weeks", "months", "years")


def plural_group(time_group: str) -> str:
    plural = time_group if time_group.endswith("s") else f"{time_group}s"
    if plural not in TIME_GROUPS:
        raise ValueError(f"Unknown time group {time_group!r}.")
    return plural


def _utc_day(when: datetime) -> date:
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.date()


def period_start(time_group: str, when: datetime) -> date:
    """The first day of the ``time_group`` period that holds ``when``."""
    day = _utc_day(when)
    group = plural_group(time_group)
    if group == "days":
        return day
    if group == "weeks":
        iso_year, iso_week, _ = day.isocalendar()
        return date.fromisocalendar(iso_year, iso_week, 1)
    if group == "months":
        return date(day.year, day.month, 1)
    return date(day.year, 1, 1)


def shift(time_group: str, start: date, count: int) -> date:
    """The first day of the period ``count`` periods after the one that
    starts on ``start`` (before it, if ``count`` is negative)."""
    group = plural_group(time_group)
    if group == "days":
        return start + timedelta(days=count)
    if group == "weeks":
        return start + timedelta(weeks=count)
    if group == "months":
        year, month = divmod(start.year * 12 + start.month - 1 + count, 12)
        return date(year, month + 1, 1)
    return date(start.year + count, 1, 1)


class Model:
    """The users of each event in each period, from a list of marks."""

    def __init__(self, marks: Iterable[Mark]) -> None:
        self._users: defaultdict[tuple[str, str, date], set[int]] = defaultdict(set)
        for event, user, when in marks:
            for group in TIME_GROUPS:
                self._users[event, group, period_start(group, when)].add(user)

    def users(self, event: str, time_group: str, when: datetime) -> set[int]:
        """The users of ``event`` in the ``time_group`` period that holds ``when``."""
        group = plural_group(time_group)
        return self._at(event, group, period_start(group, when))

    def _at(self, event: str, group: str, start: date) -> set[int]:
        return set(self._users.get((event, group, start), set()))

    def chain(
        self,
        base: str,
        chain: Sequence[Mapping[str, str]],
        time_group: str,
        when: datetime,
    ) -> set[int]:
        """``base`` chained with ``[{"name", "op"}]`` in the period of ``when``:
        each "or" joins its event to its direct predecessor's group, an "and"
        starts a new group; the groups' unions are intersected."""
        group = plural_group(time_group)
        return self._chain(base, chain, group, period_start(group, when))

    def _chain(
        self, base: str, chain: Sequence[Mapping[str, str]], group: str, start: date
    ) -> set[int]:
        groups: list[list[str]] = [[base]]
        for item in chain:
            if item["op"] == "or":
                groups[-1].append(item["name"])
            elif item["op"] == "and":
                groups.append([item["name"]])
            else:
                raise ValueError(f"Unknown operator {item['op']!r}.")
        result: set[int] | None = None
        for names in groups:
            union: set[int] = set()
            for name in names:
                union |= self._at(name, group, start)
            result = union if result is None else result & union
        assert result is not None
        return result

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
    ) -> tuple[Cohort, list[datetime], list[int]]:
        """``(cohort, dates, totals)`` as ``get_cohort`` defines them: rows
        are the ``num_rows`` periods that end with the one holding ``now``;
        cell ``[i][j]`` counts row ``i``'s primary users who did the chained
        secondary events ``j`` periods later; ``None`` for a period after
        ``now``'s and for every cell of a row without primary users. Without
        replacement a user counts only in the first column they come back in."""
        group = plural_group(time_group)
        current = period_start(group, now)
        starts = [shift(group, current, offset) for offset in range(1 - num_rows, 1)]
        cohort: Cohort = []
        totals: list[int] = []
        for start in starts:
            primary_users = self._at(primary, group, start)
            totals.append(len(primary_users))
            if not primary_users:
                cohort.append([None] * num_cols)
                continue
            remaining = set(primary_users)
            row: list[int | None] = []
            for column in range(num_cols):
                cell_start = shift(group, start, column)
                if cell_start > current:
                    row.append(None)
                    continue
                back = remaining & self._chain(secondary, additional, group, cell_start)
                row.append(len(back))
                if not with_replacement:
                    remaining -= back
            cohort.append(row)
        dates = [
            datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
            for start in starts
        ]
        return cohort, dates, totals

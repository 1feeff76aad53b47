"""Cohorts: :func:`get_cohort`, the request that asks for one, validated field
by field, and the resulting table with its totals and averages, as JSON and CSV.

The dashboard and the ``flask bitmapist cohort`` command share the request and
report, so both show the numbers of :func:`get_cohort`.
"""

from __future__ import annotations

import csv
import functools
import io
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from ..state import resolve_store
from ..store.backend import Store
from ..store.layout import Period, to_utc, unit_of_time_group
from ..store.program import Program, Ref
from .events import (
    EventSet,
    FieldError,
    UsersPage,
    chained_set,
    current_temp_key_ttl,
    period_of,
    validate_chained_events,
    validate_event_field,
    validate_period_count,
    validate_time_group,
)

Cohort = list[list[int | None]]
#: The most cells one script of a cohort counts, so that it holds a node for
#: a few milliseconds: on 100,000 users a day, a cell's AND and BITCOUNT take
#: about 25 us (scripts/bench_queries.py).
_CELLS_PER_PROGRAM = 500


def get_cohort(
    primary_event_name: str,
    secondary_event_name: str,
    additional_events: Sequence[Mapping[str, str]] | None = None,
    time_group: str = "days",
    num_rows: int = 10,
    num_cols: int = 10,
    system: str | Store | None = None,
    with_replacement: bool = False,
    now: datetime | None = None,
) -> tuple[Cohort, list[datetime], list[int]]:
    """A cohort table: of the users who did the primary event in a period, how
    many did the secondary event (chained with ``additional_events``) in that
    period and each of the following ones.

    Row ``i`` is a period (oldest first, the last one holding ``now``); cell
    ``[i][j]`` counts the row's users who did the chained events ``j`` periods
    later. A row whose primary total is 0 is all ``None``, and so is a cell
    whose period lies in the future. Without replacement a user is counted
    only in the first column in which they come back.

    The whole table costs one round trip per node (plus one to learn the
    shards of a sharded layout): a script per row and shard, which builds
    the row's keys and counts its cells.

    :param primary_event_name: the event that defines each row's users.
    :param secondary_event_name: the event counted in the cells.
    :param additional_events: ``[{"name": ..., "op": "and" | "or"}, ...]``
        chained to the secondary event as in :func:`chain_events`.
    :param time_group: days, weeks, months or years (or the singular).
    :param num_rows: periods, from 1 to 1000.
    :param num_cols: periods after each row's, from 1 to 1000.
    :param system: a bitmapist system name; default the current app's.
    :param with_replacement: count a user in every column they come back in.
    :param now: the time in the last row's period; naive datetimes are UTC.
    :returns: ``(cohort, dates, primary_totals)``: the table, each row's period
        start (UTC), and each row's number of primary users.
    :raises ValueError: for an invalid argument.
    """
    chained, group, rows, cols = _validated(
        primary_event_name,
        secondary_event_name,
        additional_events,
        time_group,
        num_rows,
        num_cols,
    )
    when = to_utc(now)
    store = resolve_store(system)

    row_offsets = range(1 - rows, 1)
    periods = {offset: period_of(group, when, offset) for offset in row_offsets}
    # Programs of whole rows, run on every shard: each builds its own
    # chained keys (none without additional events), so that it can be sent
    # again on its own after a failover, and holds a node for at most
    # _CELLS_PER_PROGRAM cells.
    primaries = {
        offset: EventSet.of_period(primary_event_name, period, store)
        for offset, period in periods.items()
    }
    chains = {
        offset: chained_set(store, secondary_event_name, chained, period)
        for offset, period in periods.items()
    }
    # Rows go into programs of at most _CELLS_PER_PROGRAM cells (a row is
    # never split), each building the chained keys its rows need once.
    programs: list[Program] = []
    rows_of: list[int] = []  # each program's number of rows
    cells_in_program = _CELLS_PER_PROGRAM
    emitted: dict[int, Ref] = {}
    for row_offset in row_offsets:
        offsets = range(row_offset, min(row_offset + cols, 1))
        if cells_in_program + len(offsets) > _CELLS_PER_PROGRAM:
            program = Program()
            programs.append(program)
            rows_of.append(0)
            cells_in_program = 0
            emitted = {}
        for offset in offsets:
            if offset not in emitted:
                emitted[offset] = chains[offset].emit(program)
        program.cohort_row(
            primaries[row_offset].emit(program),
            [emitted[offset] for offset in offsets],
            with_replacement,
        )
        rows_of[-1] += 1
        cells_in_program += len(offsets)
    shards = store.shards()
    results = store.run(
        [(program, shard) for program in programs for shard in shards],
        current_temp_key_ttl(),
    )
    # Each row's counts, summed over the shards.
    row_sums: list[list[int]] = []
    for number, row_count in enumerate(rows_of):
        first = len(row_sums)
        row_sums += [
            [0] * (1 + min(cols, rows - row)) for row in range(first, first + row_count)
        ]
        for result in results[number * len(shards) : (number + 1) * len(shards)]:
            for index, row in enumerate(result):
                for cell, value in enumerate(row):
                    row_sums[first + index][cell] += int(value)

    totals: list[int] = []
    cohort: Cohort = []
    for sums in row_sums:
        total, *counts = sums
        totals.append(total)
        if total == 0:
            cohort.append([None] * cols)
            continue
        cohort.append(counts + [None] * (cols - len(counts)))
    dates = [periods[offset].start for offset in row_offsets]
    return cohort, dates, totals


def _validated(
    primary_event_name: str,
    secondary_event_name: str,
    additional_events: Sequence[Mapping[str, str]] | None,
    time_group: str,
    num_rows: int,
    num_cols: int,
) -> tuple[list[tuple[str, str]], str, int, int]:
    """A cohort's arguments checked: the chained events, the time group, the
    rows and the columns."""
    validate_event_field("primary_event_name", primary_event_name)
    validate_event_field("secondary_event_name", secondary_event_name)
    return (
        validate_chained_events(additional_events, "additional_events"),
        validate_time_group(time_group),
        validate_period_count("num_rows", num_rows),
        validate_period_count("num_cols", num_cols),
    )


def get_cohort_cell(
    primary_event_name: str,
    secondary_event_name: str,
    additional_events: Sequence[Mapping[str, str]] | None = None,
    time_group: str = "days",
    num_rows: int = 10,
    num_cols: int = 10,
    system: str | Store | None = None,
    with_replacement: bool = False,
    now: datetime | None = None,
    *,
    row: int,
    column: int,
) -> EventSet:
    """The users that :func:`get_cohort` with the same arguments counts in
    cell ``[row][column]``, as an :class:`EventSet`.

    The cell holds the users of row ``row``'s primary event who did the
    chained secondary events ``column`` periods later; without replacement,
    less those who did them in an earlier column of the row.

    :param row: from 0 (the oldest row) to ``num_rows - 1``.
    :param column: from 0 to ``num_cols - 1``, and no later than now's period.
    :raises ValueError: for an invalid argument; a :exc:`FieldError` names
        ``row`` or ``column``.
    """
    chained, group, rows, cols = _validated(
        primary_event_name,
        secondary_event_name,
        additional_events,
        time_group,
        num_rows,
        num_cols,
    )
    for name, value, count in (("row", row, rows), ("column", column, cols)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(name, f"must be an int, got {value!r}.")
        if not 0 <= value < count:
            raise FieldError(name, f"must be from 0 to {count - 1}, got {value}.")
    row_offset = row - (rows - 1)
    if row_offset + column > 0:
        raise FieldError(
            "column",
            f"must be from 0 to {-row_offset} for row {row}, whose later "
            "periods are in the future.",
        )
    when = to_utc(now)
    store = resolve_store(system)
    primary = EventSet.of_period(
        primary_event_name, period_of(group, when, row_offset), store
    )

    def chain(offset: int) -> EventSet:
        period = period_of(group, when, row_offset + offset)
        return chained_set(store, secondary_event_name, chained, period)

    cell = primary & chain(column)
    if with_replacement or column == 0:
        return cell
    return cell - functools.reduce(operator.or_, map(chain, range(column)))


def get_cohort_users(
    primary_event_name: str,
    secondary_event_name: str,
    additional_events: Sequence[Mapping[str, str]] | None = None,
    time_group: str = "days",
    num_rows: int = 10,
    num_cols: int = 10,
    system: str | Store | None = None,
    with_replacement: bool = False,
    now: datetime | None = None,
    *,
    row: int,
    column: int,
    limit: int = 100,
    after: int | str | None = None,
) -> UsersPage:
    """The users of a cohort's cell, a page at a time: :meth:`EventSet.page`
    of :func:`get_cohort_cell` with the same arguments.

    :param limit: users per page, from 1 to 1,000.
    :param after: the previous page's ``next_after``; ``None`` for the first.
    """
    cell = get_cohort_cell(
        primary_event_name,
        secondary_event_name,
        additional_events,
        time_group,
        num_rows,
        num_cols,
        system,
        with_replacement,
        now,
        row=row,
        column=column,
    )
    return cell.page(limit, after)


MAX_PERIODS = 366
# Rows x columns. The limit on each side alone allows 366 x 366 = 133,956
# cells, which took 1.8 s and 15.6 MB of HTML; this keeps one request to
# about a seventh of that (the heatmap of 20,000 cells is about 2 MB).
MAX_CELLS = 20_000
MAX_ADDITIONAL_EVENTS = 10
_FIELDS = (
    "primary_event",
    "secondary_event",
    "additional_events",
    "time_group",
    "num_rows",
    "num_cols",
    "as_percent",
    "with_replacement",
)
_TRUE_WORDS = ("1", "true", "on", "yes")
_FALSE_WORDS = ("", "0", "false", "off", "no")


@dataclass(frozen=True)
class CohortRequest:
    """The parameters of a cohort, as the dashboard's ``POST /cohort`` JSON
    body names them (the body of the original flask-bitmapist).

    ``additional_events`` holds ``(event name, "and" | "or")`` pairs. Rows and
    columns are limited to 1..366 each, so one request cannot ask Redis for
    more than a year of days, and to :data:`MAX_CELLS` (20,000) together.
    """

    primary_event: str
    secondary_event: str
    additional_events: tuple[tuple[str, str], ...] = ()
    time_group: str = "days"
    num_rows: int = 10
    num_cols: int = 10
    as_percent: bool = False
    with_replacement: bool = False

    @classmethod
    def from_json(cls, body: Any) -> CohortRequest:
        """Validate a decoded JSON body.

        :raises FieldError: naming the first field that is missing, unknown
            or of the wrong type or range, or ``num_cols`` when the rows times
            the columns exceed :data:`MAX_CELLS`.
        """
        if not isinstance(body, Mapping):
            raise FieldError("body", "must be a JSON object.")
        for name in body:
            if name not in _FIELDS:
                raise FieldError(
                    str(name)[:100],
                    f"is not a field; the fields are {', '.join(_FIELDS)}.",
                )
        primary_event = _event(body, "primary_event")
        secondary_event = _event(body, "secondary_event")
        additional_events = _additional_events(body.get("additional_events", []))
        time_group = validate_time_group(body.get("time_group", "days"))
        num_rows = validate_period_count(
            "num_rows", body.get("num_rows", 10), MAX_PERIODS
        )
        num_cols = validate_period_count(
            "num_cols", body.get("num_cols", 10), MAX_PERIODS
        )
        if num_rows * num_cols > MAX_CELLS:
            raise FieldError(
                "num_cols",
                f"num_rows x num_cols must be at most {MAX_CELLS}, "
                f"got {num_rows} x {num_cols} = {num_rows * num_cols}.",
            )
        return cls(
            primary_event=primary_event,
            secondary_event=secondary_event,
            additional_events=additional_events,
            time_group=time_group,
            num_rows=num_rows,
            num_cols=num_cols,
            as_percent=_flag(body, "as_percent"),
            with_replacement=_flag(body, "with_replacement"),
        )

    @classmethod
    def from_query(cls, args: Any) -> CohortRequest:
        """Validate the fields of a query string or form (a werkzeug
        ``MultiDict``): the JSON fields as text, with each additional event as
        a repeated ``additional_event`` and ``additional_op`` pair.

        :raises FieldError: as :meth:`from_json`.
        """
        names = args.getlist("additional_event")
        operators = args.getlist("additional_op")
        if len(operators) != len(names):
            raise FieldError(
                "additional_events", "needs one additional_op per additional_event."
            )
        body: dict[str, Any] = {
            "additional_events": [
                {"name": name, "op": op}
                for name, op in zip(names, operators, strict=True)
                if name
            ]
        }
        for name in ("primary_event", "secondary_event", "time_group"):
            if name in args:
                body[name] = args[name]
        for name in ("num_rows", "num_cols"):
            if name in args:
                body[name] = _int_text(name, args[name])
        for name in ("as_percent", "with_replacement"):
            if name in args:
                body[name] = _flag_text(name, args[name])
        return cls.from_json(body)

    def to_json(self) -> dict[str, Any]:
        """The request as a JSON body that :meth:`from_json` reads back."""
        return {
            "primary_event": self.primary_event,
            "secondary_event": self.secondary_event,
            "additional_events": [
                {"name": name, "op": op} for name, op in self.additional_events
            ],
            "time_group": self.time_group,
            "num_rows": self.num_rows,
            "num_cols": self.num_cols,
            "as_percent": self.as_percent,
            "with_replacement": self.with_replacement,
        }

    def to_query(self) -> list[tuple[str, str]]:
        """The request as query-string pairs that :meth:`from_query` reads back."""
        pairs = [
            ("primary_event", self.primary_event),
            ("secondary_event", self.secondary_event),
        ]
        for name, op in self.additional_events:
            pairs += [("additional_event", name), ("additional_op", op)]
        pairs += [
            ("time_group", self.time_group),
            ("num_rows", str(self.num_rows)),
            ("num_cols", str(self.num_cols)),
        ]
        pairs += [
            (name, "1")
            for name in ("as_percent", "with_replacement")
            if getattr(self, name)
        ]
        return pairs

    def run(
        self, now: datetime | None = None, system: str | Store | None = None
    ) -> CohortReport:
        """Compute the cohort with :func:`~flask_bitmapist.report.events.get_cohort`."""
        cohort, dates, totals = get_cohort(
            self.primary_event,
            self.secondary_event,
            additional_events=[
                {"name": name, "op": op} for name, op in self.additional_events
            ],
            time_group=self.time_group,
            num_rows=self.num_rows,
            num_cols=self.num_cols,
            system=system,
            with_replacement=self.with_replacement,
            now=now,
        )
        return CohortReport(self, cohort, dates, totals)


@dataclass(frozen=True)
class CohortReport:
    """A computed cohort with what the heatmap shows around it.

    ``cohort``, ``dates`` and ``row_totals`` are what ``get_cohort`` returned.
    A column's total adds its cells that are not ``None``, and its average is
    their mean (``None`` when the column has none). ``percentages[i][j]`` is
    cell ``[i][j]`` as a percent of row ``i``'s users, and
    ``average_percentages`` are the columns' means of those.
    """

    request: CohortRequest
    cohort: Cohort
    dates: list[datetime]
    row_totals: list[int]

    @cached_property
    def column_totals(self) -> list[int]:
        """Each column's cells that are not ``None``, added up."""
        return [
            sum(cell for cell in column if cell is not None)
            for column in zip(*self.cohort, strict=True)
        ]

    @cached_property
    def averages(self) -> list[float | None]:
        """Each column's mean of its cells that are not ``None``."""
        return [_mean(column) for column in zip(*self.cohort, strict=True)]

    @cached_property
    def percentages(self) -> list[list[float | None]]:
        """Each cell as a percent of its row's users."""
        return [
            [None if cell is None else 100.0 * cell / total for cell in row]
            for row, total in zip(self.cohort, self.row_totals, strict=True)
        ]

    @cached_property
    def average_percentages(self) -> list[float | None]:
        """Each column's mean of its percents that are not ``None``."""
        return [_mean(column) for column in zip(*self.percentages, strict=True)]

    @property
    def users_total(self) -> int:
        """The users of all rows (a user in two rows counts twice)."""
        return sum(self.row_totals)

    @property
    def users_average(self) -> float:
        """The mean number of users per row."""
        return self.users_total / len(self.row_totals)

    def period_label(self, row: int) -> str:
        """Row ``row``'s period, for people: 2026-11-22, 2026-W47, 2026-11, 2026."""
        unit = unit_of_time_group(self.request.time_group)
        return Period.of(unit, self.dates[row]).label

    def is_running(self, row: int, column: int) -> bool:
        """Whether cell ``[row][column]`` is of the period that holds ``now``
        (the last row's), which has not ended: its count can still grow.

        Cell ``[i][j]`` is ``j`` periods after row ``i``'s, and the last row is
        the current period, so the running cell of row ``i`` is in column
        ``num_rows - 1 - i``. An empty cell (a row without users) is not.
        """
        return (
            row + column == len(self.cohort) - 1
            and self.cohort[row][column] is not None
        )

    @cached_property
    def has_running_cells(self) -> bool:
        """Whether any cell shown :meth:`is_running`."""
        last = len(self.cohort) - 1
        return any(
            self.is_running(row, last - row)
            for row in range(len(self.cohort))
            if last - row < self.request.num_cols
        )

    def column_label(self, column: int) -> str:
        """Column ``column``'s offset from its row: "+0 days", "+1 days", ..."""
        return f"+{column} {self.request.time_group}"

    def to_json(self) -> dict[str, Any]:
        """The data as JSON: the request, then the cohort with ISO 8601 dates,
        row totals, column totals and averages."""
        return {
            "request": self.request.to_json(),
            "dates": [date.isoformat() for date in self.dates],
            "cohort": self.cohort,
            "row_totals": self.row_totals,
            "column_totals": self.column_totals,
            "averages": self.averages,
            "percentages": self.percentages,
            "average_percentages": self.average_percentages,
        }

    def to_csv(self) -> str:
        """The table as CSV: a header, one line per period (its start as an
        ISO 8601 date), then the averages and totals. Cells are counts, or
        percents of the row's users with ``as_percent``; an empty cell is a
        period in the future or a row without users.
        """
        cells: Sequence[Sequence[float | int | None]] = (
            self.percentages if self.request.as_percent else self.cohort
        )
        averages = (
            self.average_percentages if self.request.as_percent else self.averages
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(
            ["period", "users", *map(self.column_label, range(self.request.num_cols))]
        )
        for date, total, row in zip(self.dates, self.row_totals, cells, strict=True):
            writer.writerow([date.date().isoformat(), total, *map(_csv_number, row)])
        writer.writerow(
            [
                "average",
                _csv_number(self.users_average),
                *map(_csv_number, averages),
            ]
        )
        writer.writerow(["total", self.users_total, *self.column_totals])
        return buffer.getvalue()


def _mean(values: Sequence[float | int | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _csv_number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def _event(body: Mapping[str, Any], name: str) -> str:
    if name not in body:
        raise FieldError(name, "is required.")
    return validate_event_field(name, body[name])


def _additional_events(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, list) and len(value) > MAX_ADDITIONAL_EVENTS:
        raise FieldError(
            "additional_events", f"can hold at most {MAX_ADDITIONAL_EVENTS} events."
        )
    return tuple(validate_chained_events(value, "additional_events"))


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise FieldError(name, "must be true or false.")
    return value


def _int_text(name: str, text: str) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 6:
        raise FieldError(name, f"must be an int from 1 to {MAX_PERIODS}, got {text!r}.")
    return int(stripped)


def _flag_text(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise FieldError(name, "must be true or false.")

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
from ..store.idmap import shown
from ..store.layout import Period, to_utc, unit_of_time_group
from ..store.program import Program, Ref, Scratch
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
from .history import existing_periods, history_keys, history_periods, history_set

Cohort = list[list[int | None]]
#: The kinds of rows: the users who did the primary event in the period
#: (``recurring``), or did it for the first time in the store (``first_time``).
COHORT_MODES = ("recurring", "first_time")
#: The kinds of cells: the users who came back in exactly the column's period
#: (``on``), or in it or any later one (``on_or_after``).
RETENTION_MODES = ("on", "on_or_after")
#: The most cells one program of a cohort counts.
_CELLS_PER_PROGRAM = 500
#: The most bytes of bitmaps the cells of one script AND and count, so that
#: it holds Redis for about 2 ms: a cell of two 375 KB bitmaps (1,000,000
#: users a day of 3,000,000 ids) takes about 100 us in Redis on this machine
#: (scripts/bench_queries.py), 21 cells a script; of 37.5 KB, 10 us, 213
#: cells. A row is never split, so a row of more cells is a script of its
#: own, longer. Only for the ``"redis"`` query engine: the client engine
#: runs no script, and reads in chunks
#: (:data:`~flask_bitmapist.store.backend.READ_CHUNK_BYTES`).
_SCRIPT_CELL_BYTES = 8 << 20


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
    *,
    cohort: str = "recurring",
    retention: str = "on",
) -> tuple[Cohort, list[datetime], list[int]]:
    """A cohort table: of the users who did the primary event in a period, how
    many did the secondary event (chained with ``additional_events``) in that
    period and each of the following ones.

    Row ``i`` is a period ``t_i`` (oldest first, the last one holding
    ``now``). Its users are those who did the primary event in ``t_i``
    (``cohort="recurring"``, the default), or those whose earliest primary
    event in the whole store is in ``t_i`` (``cohort="first_time"``), however
    long before the rows and in whatever order the marks arrived.

    Cell ``[i][j]`` counts the row's users who did the chained events in
    period ``t_i + j`` (``retention="on"``, the default; without replacement
    a user is counted only in the first column in which they come back), or
    in ``t_i + j`` or any later period up to now's (``retention="on_or_after"``,
    unbounded retention: a row never grows from left to right, and
    ``with_replacement`` plays no part). A row whose primary total is 0 is
    all ``None``, and so is a cell whose period lies in the future.

    The whole table costs one program per shard and
    :data:`_CELLS_PER_PROGRAM` cells, which builds the rows' keys and counts
    their cells (plus a round trip to learn the shards of a sharded
    layout). The client engine runs them after reading every key they name
    once, in a round trip per node for the keys' sizes and one per
    :data:`~flask_bitmapist.store.backend.READ_CHUNK_BYTES`; the Redis
    engine sends them as scripts in one round trip per node, after one that
    reads the size of the newest keys, so that each script ANDs at most
    :data:`_SCRIPT_CELL_BYTES`. A first-time row costs three more BITOPs
    than a recurring one, and the first row of each program one OR of the
    primary event's months and days before it (see :mod:`.history`); an
    ``on_or_after`` column one OR more than an ``on`` one.

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
    :param cohort: ``"recurring"`` or ``"first_time"``.
    :param retention: ``"on"`` or ``"on_or_after"``.
    :returns: ``(cohort, dates, primary_totals)``: the table, each row's period
        start (UTC), and each row's number of primary users.
    :raises ValueError: for an invalid argument (a :exc:`FieldError` naming
        it).
    """
    chained, group, rows, cols = _validated(
        primary_event_name,
        secondary_event_name,
        additional_events,
        time_group,
        num_rows,
        num_cols,
    )
    first_time = validate_cohort_mode(cohort) == "first_time"
    on_or_after = validate_retention_mode(retention) == "on_or_after"
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
    # Rows go into programs of at most a budget of cells, each building the
    # chained keys its rows need once: for on_or_after, each column's union
    # of its period and every later one, built from now's period back; for
    # first_time, the primary's history before its first row, then each row
    # ORed into it. A row is split only where its cells do not depend on
    # each other (with replacement, "on") and only for the Redis engine,
    # whose scripts the budget bounds in bytes.
    shards = store.shards()
    bounded = store.engine == "redis"
    budget = (
        _cells_per_script(store, shards, [primaries[0], chains[0]])
        if bounded
        else _CELLS_PER_PROGRAM
    )
    splittable = bounded and with_replacement and not on_or_after
    # (row offset, its first column, the offsets of the columns) of each
    # cohort row instruction, and the first unit of each program.
    units: list[tuple[int, int, range]] = []
    starts: list[int] = []
    cells = budget
    for row_offset in row_offsets:
        offsets = range(row_offset, min(row_offset + cols, 1))
        step = budget if splittable else max(len(offsets), 1)
        for first in range(0, max(len(offsets), 1), step):
            segment = offsets[first : first + step]
            if cells + len(segment) > budget:
                starts.append(len(units))
                cells = 0
            units.append((row_offset, first, segment))
            cells += len(segment)
    # Several scripts each start from a history: learn once which of its
    # keys exist, so that each script checks only those.
    existing = None
    if first_time and len(starts) > 1:
        existing = existing_periods(
            store,
            shards,
            primary_event_name,
            (
                stored
                for unit in starts
                for stored in history_periods(periods[units[unit][0]])
            ),
        )
    programs: list[Program] = []
    placed: list[list[tuple[int, int]]] = []  # each read's row offset, column
    emitted: dict[int, Ref] = {}
    row_users_of: dict[int, Ref] = {}
    history: Scratch | None = None
    for number, (row_offset, first, segment) in enumerate(units):
        if number in starts:
            program = Program()
            programs.append(program)
            placed.append([])
            emitted = {}
            row_users_of = {}
            if first_time:
                history = program.union_existing(
                    history_keys(primary_event_name, periods[row_offset], existing)
                )
            if on_or_after:
                later: Ref | None = None
                for offset in range(0, row_offset - 1, -1):
                    chain = chains[offset].emit(program)
                    later = chain if later is None else program.union([chain, later])
                    emitted[offset] = later
        if not on_or_after:
            for offset in segment:
                if offset not in emitted:
                    emitted[offset] = chains[offset].emit(program)
        if row_offset not in row_users_of:
            primary = primaries[row_offset].emit(program)
            if first_time:
                assert history is not None
                row_users_of[row_offset] = program.difference(primary, history)
                program.bitop_into("OR", history, [history, primary])
            else:
                row_users_of[row_offset] = primary
        program.cohort_row(
            row_users_of[row_offset],
            [emitted[offset] for offset in segment],
            with_replacement or on_or_after,
        )
        placed[-1].append((row_offset, first))
    results = store.run(
        [(program, shard) for program in programs for shard in shards],
        current_temp_key_ttl(),
        apart=bounded and budget < _CELLS_PER_PROGRAM,
    )
    # Each row's counts, summed over the shards and the row's segments
    # (each segment reads the row's total again: counted once).
    row_sums = {offset: [0] * (1 + min(cols, 1 - offset)) for offset in row_offsets}
    for number, reads in enumerate(placed):
        for result in results[number * len(shards) : (number + 1) * len(shards)]:
            for (row_offset, first), (total, *counts) in zip(
                reads, result, strict=True
            ):
                sums = row_sums[row_offset]
                if first == 0:
                    sums[0] += int(total)
                for column, value in enumerate(counts, first + 1):
                    sums[column] += int(value)

    totals: list[int] = []
    table: Cohort = []
    for sums in row_sums.values():
        total, *counts = sums
        totals.append(total)
        if total == 0:
            table.append([None] * cols)
            continue
        table.append(counts + [None] * (cols - len(counts)))
    dates = [periods[offset].start for offset in row_offsets]
    return table, dates, totals


def _cells_per_script(store: Store, shards: list[int], newest: list[EventSet]) -> int:
    """How many cells a script may count to AND at most
    :data:`_SCRIPT_CELL_BYTES`: a cell costs about the length of the newest
    period's keys (one round trip for their sizes)."""
    probe = Program()
    for event_set in newest:
        # Counted, so that a set that is an event's own key is named too.
        probe.count(event_set.emit(probe))
    longest = max(store.stored_sizes(probe, shards), default=0)
    return max(1, min(_CELLS_PER_PROGRAM, _SCRIPT_CELL_BYTES // max(longest, 1)))


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


def validate_cohort_mode(cohort: Any, name: str = "cohort") -> str:
    """Return ``cohort`` if it is one of :data:`COHORT_MODES`.

    :raises FieldError: otherwise.
    """
    return _mode(name, cohort, COHORT_MODES)


def validate_retention_mode(retention: Any, name: str = "retention") -> str:
    """Return ``retention`` if it is one of :data:`RETENTION_MODES`.

    :raises FieldError: otherwise.
    """
    return _mode(name, retention, RETENTION_MODES)


def _mode(name: str, value: Any, modes: Sequence[str]) -> str:
    if isinstance(value, str) and value in modes:
        return value
    choices = " or ".join(repr(mode) for mode in modes)
    raise FieldError(name, f"must be {choices}, got {shown(value)}.")


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
    cohort: str = "recurring",
    retention: str = "on",
) -> EventSet:
    """The users that :func:`get_cohort` with the same arguments counts in
    cell ``[row][column]``, as an :class:`EventSet`.

    The cell holds the users of row ``row`` (who did the primary event in
    its period; with ``cohort="first_time"``, for the first time) who did the
    chained secondary events ``column`` periods later; without replacement,
    less those who did them in an earlier column of the row; with
    ``retention="on_or_after"``, who did them then or in any later period.

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
    first_time = validate_cohort_mode(cohort) == "first_time"
    on_or_after = validate_retention_mode(retention) == "on_or_after"
    _check_index("row", row, rows)
    _check_index("column", column, cols)
    row_offset = row - (rows - 1)
    if row_offset + column > 0:
        raise FieldError(
            "column",
            f"must be from 0 to {-row_offset} for row {row}, whose later "
            "periods are in the future.",
        )
    when = to_utc(now)
    store = resolve_store(system)
    period = period_of(group, when, row_offset)
    primary = _row_users(store, primary_event_name, period, first_time)

    def chain(offset: int) -> EventSet:
        period = period_of(group, when, row_offset + offset)
        return chained_set(store, secondary_event_name, chained, period)

    if on_or_after:
        later = range(column, 1 - row_offset)
        return primary & functools.reduce(operator.or_, map(chain, later))
    cell = primary & chain(column)
    if with_replacement or column == 0:
        return cell
    return cell - functools.reduce(operator.or_, map(chain, range(column)))


def get_cohort_row(
    primary_event_name: str,
    time_group: str = "days",
    num_rows: int = 10,
    system: str | Store | None = None,
    now: datetime | None = None,
    *,
    row: int,
    cohort: str = "recurring",
) -> EventSet:
    """The users that :func:`get_cohort` with the same arguments counts in
    row ``row``'s primary total, as an :class:`EventSet`: those who did the
    primary event in the row's period (with ``cohort="first_time"``, for the
    first time).

    :param row: from 0 (the oldest row) to ``num_rows - 1``.
    :raises ValueError: for an invalid argument; a :exc:`FieldError` names
        it.
    """
    validate_event_field("primary_event_name", primary_event_name)
    group = validate_time_group(time_group)
    rows = validate_period_count("num_rows", num_rows)
    first_time = validate_cohort_mode(cohort) == "first_time"
    _check_index("row", row, rows)
    period = period_of(group, to_utc(now), row - (rows - 1))
    return _row_users(resolve_store(system), primary_event_name, period, first_time)


def _row_users(
    store: Store, primary_event_name: str, period: Period, first_time: bool
) -> EventSet:
    """The users of a cohort row of ``period``."""
    primary = EventSet.of_period(primary_event_name, period, store)
    if first_time:
        return primary - history_set(store, primary_event_name, period)
    return primary


def _check_index(name: str, value: Any, count: int) -> None:
    """Refuse a ``row`` or ``column`` that is no int from 0 to ``count - 1``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(name, f"must be an int, got {value!r}.")
    if not 0 <= value < count:
        raise FieldError(name, f"must be from 0 to {count - 1}, got {value}.")


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
    cohort: str = "recurring",
    retention: str = "on",
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
        cohort=cohort,
        retention=retention,
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
    "cohort",
    "retention",
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
    cohort: str = "recurring"
    retention: str = "on"

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
            cohort=validate_cohort_mode(body.get("cohort", "recurring")),
            retention=validate_retention_mode(body.get("retention", "on")),
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
        for name in (
            "primary_event",
            "secondary_event",
            "time_group",
            "cohort",
            "retention",
        ):
            if name in args:
                body[name] = args[name]
        for name in ("num_rows", "num_cols"):
            if name in args:
                body[name] = int_field(name, args[name])
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
            "cohort": self.cohort,
            "retention": self.retention,
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
        pairs += [
            (name, value)
            for name, value, default in (
                ("cohort", self.cohort, "recurring"),
                ("retention", self.retention, "on"),
            )
            if value != default
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
            cohort=self.cohort,
            retention=self.retention,
        )
        return CohortReport(self, cohort, dates, totals)

    @property
    def description(self) -> str:
        """What the table counts, in words: "Each row: the users who did
        signup on that day. Each cell: how many of them did play N days
        later, counted once, on the first day they came back." """
        unit = unit_of_time_group(self.time_group)
        # "on that day", but "in that week" (month, year).
        on = "on" if unit == "day" else "in"
        first_time = " for the first time" if self.cohort == "first_time" else ""
        chain = "".join(f" {op} {name}" for name, op in self.additional_events)
        who = "the percent of them who" if self.as_percent else "how many of them"
        if self.retention == "on_or_after":
            when = f" or {on} any later {unit}"
        elif self.with_replacement:
            when = f", counted {on} every {unit} they came back"
        else:
            when = f", counted once, {on} the first {unit} they came back"
        return (
            f"Each row: the users who did {self.primary_event}{first_time} {on} "
            f"that {unit}. Each cell: {who} did {self.secondary_event}{chain} "
            f"N {self.time_group} later{when}."
        )


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

    @property
    def description(self) -> str:
        """What the table counts, in words (:attr:`CohortRequest.description`)."""
        return self.request.description

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
        """Whether cell ``[row][column]`` counts the period that holds ``now``
        (the last row's), which has not ended: its count can still grow.

        Cell ``[i][j]`` is ``j`` periods after row ``i``'s, and the last row is
        the current period, so the running cell of row ``i`` is in column
        ``num_rows - 1 - i``; with ``retention="on_or_after"`` every cell
        counts up to now's period, so every cell is running. An empty cell
        (a row without users, a period to come) is not.
        """
        if self.cohort[row][column] is None:
            return False
        return (
            self.request.retention == "on_or_after"
            or row + column == len(self.cohort) - 1
        )

    @cached_property
    def has_running_cells(self) -> bool:
        """Whether any cell shown :meth:`is_running`."""
        return any(
            self.is_running(row, column)
            for row, cells in enumerate(self.cohort)
            for column in range(len(cells))
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


def int_field(
    name: str, text: str, minimum: int = 1, maximum: int = MAX_PERIODS
) -> int:
    """The int that a query string's ``text`` spells, before its bounds are
    checked.

    :raises FieldError: naming ``name`` unless ``text`` is up to six decimal
        digits (spaces around them allowed).
    """
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 6:
        raise FieldError(
            name, f"must be an int from {minimum} to {maximum}, got {shown(text)}."
        )
    return int(stripped)


def _flag_text(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise FieldError(name, "must be true or false.")

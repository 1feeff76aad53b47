"""Funnels: :func:`get_funnel`, how many users went through a list of events
in order, by the period in which they entered; and the request that the
dashboard and the ``flask bitmapist funnel`` command validate.

**Entry.** A user enters in the first of the ``num_periods`` periods (ending
with now's) in which they did step 1, and enters once.

**Completion.** Step ``k`` (from the second on) is completed in the first
period ``u`` in which the user did step ``k``, where ``u`` is no earlier than
the period in which they completed step ``k - 1`` and no later than their
entry period plus ``within`` periods (nor than now's). Order is by period,
not by timestamp: two steps done in the same period count as done in order,
whichever came first within it.

**Computation.** With ``R[k][u]`` the users of an entry period who completed
step ``k`` by period ``u``, ``R[1][u]`` is the entry set and
``R[k][u] = R[k][u - 1] | (R[k - 1][u] & step_k[u])``: two BITOPs per step
and period of the window, run in scripts that hold a node for at most about
:data:`_OPERATIONS_PER_PROGRAM` of them, one round trip per node in all.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from ..state import resolve_store
from ..store.backend import Store
from ..store.idmap import shown
from ..store.layout import to_utc
from ..store.program import Program, Ref, Scratch
from .cohort import MAX_PERIODS, int_field
from .events import (
    MAX_ROWS_OR_COLS,
    FieldError,
    emit_period,
    period_of,
    sum_shard_counts,
    validate_event_field,
    validate_period_count,
    validate_time_group,
)

#: The fewest and most steps of a funnel.
MIN_STEPS = 2
MAX_STEPS = 10
#: The most steps x periods x window of one dashboard request:
#: ``num_periods * (within + 1) * (len(steps) - 1)``, two BITOPs each.
MAX_FUNNEL_CELLS = 20_000
# BITOPs and counts per script, so that a script holds its node about as
# long as one of a cohort's 500 cells (see cohort._CELLS_PER_PROGRAM).
_OPERATIONS_PER_PROGRAM = 1500


def validate_steps(steps: Any, name: str = "steps") -> list[str]:
    """Return ``steps`` as a list of event names.

    :raises FieldError: unless it is a list (or tuple) of 2 to 10 valid event
        names; a bad name is named by its index, ``steps[2]``.
    """
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise FieldError(
            name,
            f"must be a list of {MIN_STEPS} to {MAX_STEPS} event names, "
            f"got {shown(steps)}.",
        )
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise FieldError(
            name,
            f"must hold from {MIN_STEPS} to {MAX_STEPS} event names, got {len(steps)}.",
        )
    return [
        validate_event_field(f"{name}[{index}]", step)
        for index, step in enumerate(steps)
    ]


def validate_within(within: Any, maximum: int = MAX_ROWS_OR_COLS) -> int:
    """Return ``within`` if it is an int from 0 to ``maximum``.

    :raises FieldError: otherwise.
    """
    if isinstance(within, bool) or not isinstance(within, int):
        raise FieldError(
            "within", f"must be an int from 0 to {maximum}, got {shown(within)}."
        )
    if not 0 <= within <= maximum:
        raise FieldError("within", f"must be from 0 to {maximum}, got {within}.")
    return within


@dataclass(frozen=True)
class Funnel:
    """A computed funnel (see the module's documentation for what it counts).

    :ivar steps: the steps' event names, in order.
    :ivar time_group: days, weeks, months or years.
    :ivar within: the periods after entry in which the steps may be done.
    :ivar dates: the start (UTC) of each entry period, oldest first; the last
        holds ``now``.
    :ivar rows: ``rows[i][k]``, the users who entered in ``dates[i]`` and
        completed step ``k`` (0 for the first step); zeros where nobody
        entered.
    """

    steps: list[str]
    time_group: str
    within: int
    dates: list[datetime]
    rows: list[list[int]]

    @cached_property
    def counts(self) -> list[int]:
        """The users who completed each step, each user once, whatever their
        entry period."""
        return [sum(column) for column in zip(*self.rows, strict=True)]

    @cached_property
    def conversion_from_previous(self) -> list[float | None]:
        """Each step's users as a percent of the previous step's (the first
        step's: 100), ``None`` where the previous step has none."""
        counts = self.counts
        previous = [counts[0], *counts[:-1]]
        return [_percent(count, of) for count, of in zip(counts, previous, strict=True)]

    @cached_property
    def conversion_from_first(self) -> list[float | None]:
        """Each step's users as a percent of the first step's, ``None`` when
        nobody entered."""
        return [_percent(count, self.counts[0]) for count in self.counts]

    @cached_property
    def drop_off(self) -> list[int]:
        """The users each step lost from the previous one (0 for the first)."""
        counts = self.counts
        return [0, *(before - after for before, after in itertools.pairwise(counts))]

    def to_json(self) -> dict[str, Any]:
        """The funnel as JSON, dates in ISO 8601."""
        return {
            "steps": self.steps,
            "time_group": self.time_group,
            "num_periods": len(self.dates),
            "within": self.within,
            "dates": [date.isoformat() for date in self.dates],
            "rows": self.rows,
            "counts": self.counts,
            "conversion_from_previous": self.conversion_from_previous,
            "conversion_from_first": self.conversion_from_first,
        }

    def to_csv(self) -> str:
        """The rows as CSV: a header of the steps, one line per entry period
        (its start as an ISO 8601 date), then the totals."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["period", *self.steps])
        for date, row in zip(self.dates, self.rows, strict=True):
            writer.writerow([date.date().isoformat(), *row])
        writer.writerow(["total", *self.counts])
        return buffer.getvalue()


def _percent(count: int, of: int) -> float | None:
    return 100.0 * count / of if of else None


def get_funnel(
    steps: Sequence[str],
    time_group: str = "days",
    num_periods: int = 30,
    within: int = 7,
    now: datetime | None = None,
    system: str | Store | None = None,
) -> Funnel:
    """How many users entered the funnel of ``steps`` in each of the last
    ``num_periods`` periods, and completed each step within ``within``
    periods of their entry (see the module's documentation).

    Costs one round trip per node (plus one to learn the shards of a sharded
    layout), and ``2 * (len(steps) - 1) * (within + 1)`` BITOPs per entry
    period and shard at most.

    :param steps: 2 to 10 event names, in order; one may repeat.
    :param time_group: days, weeks, months or years (or the singular).
    :param num_periods: entry periods, from 1 to 1000, the last holding ``now``.
    :param within: periods after the entry period in which later steps
        count, from 0 (the entry period only) to 1000.
    :param now: a time in the last entry period; naive datetimes are UTC.
    :param system: a system name or a store; default the current app's.
    :raises ValueError: for an invalid argument (a :exc:`FieldError` naming
        it).
    """
    names = validate_steps(steps)
    group = validate_time_group(time_group)
    periods = validate_period_count("num_periods", num_periods)
    window = validate_within(within)
    when = to_utc(now)
    store = resolve_store(system)
    first_entry = 1 - periods

    programs: list[_FunnelProgram] = []
    for entry in range(first_entry, 1):
        last = min(entry + window, 0)
        cost = 4 + len(names) + 2 * (len(names) - 1) * (last - entry + 1)
        if not programs or programs[-1].operations + cost > _OPERATIONS_PER_PROGRAM:
            programs.append(_FunnelProgram(names, group, when, first_entry, entry))
        programs[-1].add_entry(entry, last)
        programs[-1].operations += cost
    counts = iter(sum_shard_counts(store, [program.program for program in programs]))
    rows = [[next(counts) for _ in names] for _ in range(periods)]
    dates = [period_of(group, when, offset).start for offset in range(first_entry, 1)]
    return Funnel(names, group, window, dates, rows)


class _FunnelProgram:
    """The script of a run of consecutive entry periods: their entry sets
    and each step's completions, in scratch keys reused from one entry
    period to the next."""

    def __init__(
        self,
        steps: list[str],
        time_group: str,
        when: datetime,
        first_entry: int,
        entry: int,
    ) -> None:
        self.program = Program()
        self.operations = 0
        self._steps = steps
        self._time_group = time_group
        self._when = when
        self._refs: dict[tuple[str, int], Ref] = {}
        self._entered = self.program.scratch()
        self._common = self.program.scratch()
        # The users who did step 1 in an earlier entry period: entered then.
        self._seen = self.program.scratch()
        earlier = [self._step(steps[0], offset) for offset in range(first_entry, entry)]
        if earlier:
            self.program.bitop_into("OR", self._seen, earlier)
        self._banks: tuple[list[Scratch], list[Scratch]] = ([], [])

    def _step(self, event_name: str, offset: int) -> Ref:
        """The users who did ``event_name`` in the period ``offset`` periods
        from now's (a year's twelve months ORed once)."""
        ref = self._refs.get((event_name, offset))
        if ref is None:
            period = period_of(self._time_group, self._when, offset)
            ref = emit_period(self.program, event_name, period)
            self._refs[event_name, offset] = ref
        return ref

    def _bank(self, number: int, size: int) -> list[Scratch]:
        bank = self._banks[number]
        while len(bank) < size:
            bank.append(self.program.scratch())
        return bank

    def add_entry(self, entry: int, last: int) -> None:
        """Count the users who entered in period ``entry`` and each step
        they completed by period ``last``."""
        program = self.program
        first_step = self._step(self._steps[0], entry)
        program.bitop_into("AND", self._common, [first_step, self._seen])
        program.bitop_into("XOR", self._entered, [first_step, self._common])
        program.bitop_into("OR", self._seen, [self._seen, first_step])
        program.count(self._entered)
        size = last - entry + 1
        reached: Sequence[Ref] = [self._entered] * size
        for number, event_name in enumerate(self._steps[1:]):
            done = self._bank(number % 2, size)
            for index in range(size):
                did = self._step(event_name, entry + index)
                if index == 0:
                    program.bitop_into("AND", done[0], [reached[0], did])
                else:
                    program.bitop_into("AND", self._common, [reached[index], did])
                    program.bitop_into(
                        "OR", done[index], [done[index - 1], self._common]
                    )
            program.count(done[size - 1])
            reached = done


@dataclass(frozen=True)
class FunnelRequest:
    """The parameters of a funnel as the dashboard's ``/funnel`` query string
    names them: :func:`get_funnel`'s arguments, ``steps`` repeated.

    Entry periods are limited to 1..366, ``within`` to 0..366, and
    ``num_periods * (within + 1) * (len(steps) - 1)`` to
    :data:`MAX_FUNNEL_CELLS`, so one request asks Redis for at most about
    40,000 BITOPs.
    """

    steps: tuple[str, ...]
    time_group: str = "days"
    num_periods: int = 30
    within: int = 7

    @classmethod
    def from_query(cls, args: Any) -> FunnelRequest:
        """Validate the fields of a query string (a werkzeug ``MultiDict``);
        empty ``steps`` are left out, as a form's unused step inputs.

        :raises FieldError: naming the first field that is missing, of the
            wrong type or out of bounds.
        """
        steps = validate_steps([step for step in args.getlist("steps") if step])
        time_group = validate_time_group(args.get("time_group", "days"))
        num_periods = validate_period_count(
            "num_periods",
            int_field("num_periods", args.get("num_periods", "30")),
            MAX_PERIODS,
        )
        within = validate_within(
            int_field("within", args.get("within", "7"), minimum=0), MAX_PERIODS
        )
        cells = num_periods * (within + 1) * (len(steps) - 1)
        if cells > MAX_FUNNEL_CELLS:
            raise FieldError(
                "within",
                f"num_periods x (within + 1) x (steps - 1) must be at most "
                f"{MAX_FUNNEL_CELLS}, got {num_periods} x {within + 1} x "
                f"{len(steps) - 1} = {cells}.",
            )
        return cls(tuple(steps), time_group, num_periods, within)

    def to_query(self) -> list[tuple[str, str]]:
        """The request as query-string pairs that :meth:`from_query` reads back."""
        return [
            *(("steps", step) for step in self.steps),
            ("time_group", self.time_group),
            ("num_periods", str(self.num_periods)),
            ("within", str(self.within)),
        ]

    def run(
        self, now: datetime | None = None, system: str | Store | None = None
    ) -> Funnel:
        """Compute the funnel with :func:`get_funnel`."""
        return get_funnel(
            list(self.steps),
            self.time_group,
            self.num_periods,
            self.within,
            now=now,
            system=system,
        )

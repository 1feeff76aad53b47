"""Stickiness: :func:`get_stickiness`, how many users did an event on
exactly 1, 2, ... of the days of a week or a month.

The days are added up bit by bit in Redis, as a bit-sliced counter: counter
bitmap ``c[i]`` holds bit ``i`` of each user's number of days, and adding a
day's bitmap ``D`` is a ripple-carry addition, ``c[i], carry = c[i] ^ carry,
c[i] & carry`` from ``carry = D``. Users with exactly ``k`` days are then the
AND of the counters of ``k``'s set bits, less the OR of the others. A month
costs about 300 BITOPs on the day keys, in one script per shard, not a
command per user.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from ..state import resolve_store
from ..store.backend import Store
from ..store.layout import LAST_MARK_TIME, Period, to_utc, unit_of_time_group
from ..store.program import EventKey, Program, Ref
from .events import FieldError, sum_shard_counts, validate_event_field

#: The periods that :func:`get_stickiness` counts the days of.
STICKINESS_GROUPS = ("weeks", "months")


def validate_stickiness_group(time_group: Any) -> str:
    """Return the plural of ``time_group`` if it is weeks or months.

    :raises FieldError: otherwise.
    """
    if isinstance(time_group, str):
        plural = time_group if time_group.endswith("s") else f"{time_group}s"
        if plural in STICKINESS_GROUPS:
            return plural
    raise FieldError(
        "time_group",
        f"must be weeks or months (or the singular), got {time_group!r}.",
    )


def get_stickiness(
    event_name: str,
    time_group: str = "weeks",
    now: datetime | None = None,
    system: str | Store | None = None,
) -> list[int]:
    """How many users did ``event_name`` on exactly ``k`` days of the ISO
    week or the month that holds ``now``, for ``k`` from 1 to the period's
    number of days: item ``k - 1``. Every day of the period counts, also
    those after ``now`` (which hold no marks yet when ``now`` is the current
    time).

    One round trip per node (plus one to learn the shards of a sharded
    layout), and about ``10 * days`` BITOPs per shard.

    :param event_name: the event.
    :param time_group: weeks or months (or the singular).
    :param now: a time in the period; naive datetimes are UTC.
    :param system: a system name or a store; default the current app's.
    :raises ValueError: for an invalid argument (a :exc:`FieldError` naming
        it).
    """
    validate_event_field("event_name", event_name)
    unit = unit_of_time_group(validate_stickiness_group(time_group))
    period = Period.of(unit, to_utc(now))
    start = period.start
    days = 7 if unit == "week" else calendar.monthrange(start.year, start.month)[1]
    # No mark is as late as LAST_MARK_TIME: the days from there on (up to
    # the end of what a datetime holds) are left empty, not read.
    marked_days = min(days, (LAST_MARK_TIME - start).days)
    program = Program()
    bits = days.bit_length()
    counters = [program.scratch() for _ in range(bits)]
    carries = (program.scratch(), program.scratch())
    for day in range(marked_days):
        when = start + timedelta(days=day)
        carry: Ref = EventKey(event_name, Period("day", when))
        for bit, counter in enumerate(counters):
            # No user has 2**bits days, so the last bit's carry is not kept.
            if bit < bits - 1:
                program.bitop_into("AND", carries[bit % 2], [counter, carry])
            program.bitop_into("XOR", counter, [counter, carry])
            carry = carries[bit % 2]
    # Per k: the users whose counters hold k's bits, and of those, the users
    # whose counters also hold another bit (none read when k has every bit).
    reads = []
    for count in range(1, days + 1):
        ones = [counter for bit, counter in enumerate(counters) if count >> bit & 1]
        zeros = [
            counter for bit, counter in enumerate(counters) if not count >> bit & 1
        ]
        exact: Ref = ones[0] if len(ones) == 1 else program.bitop("AND", ones)
        program.count(exact)
        if zeros:
            program.count(program.bitop("AND", [exact, program.union(zeros)]))
        reads.append(bool(zeros))
    counts = iter(sum_shard_counts(resolve_store(system), [program]))
    totals = []
    for has_zeros in reads:
        total = next(counts)
        totals.append(total - next(counts) if has_zeros else total)
    return totals

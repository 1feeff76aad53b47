"""An event's history before a period: what "first time", "new" and
"resurrecting" are measured against.

Every mark sets its day's and its month's bit, and every mark's time is from
:data:`~flask_bitmapist.store.layout.FIRST_MARK_TIME` (1970-01-01, UTC) to
the end of 2099 (others are refused), so the users who did an event at any
time before a period that starts at midnight are the union of the event's
months from January 1970 to the one before the period's month (and at most
to December 2099), and of the days of that month before the period
(:func:`history_periods`).

A script ORs those of them that exist
(:meth:`~flask_bitmapist.store.program.Program.union_existing`: an ``EXISTS``
per month, about 700 of them in 2026, and a BITOP per 16 keys that exist),
and the next period's history is that one's with the period ORed in. So a
report starts from any period's history in one instruction, whatever the
order in which the marks arrived (an import of last year's marks included),
without walking the keys. A report of several scripts first asks which of
those keys exist (:func:`existing_periods`, one round trip), so that each
script checks only those.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta

from ..store.backend import Store
from ..store.layout import FIRST_MARK_TIME, LAST_MARK_TIME, Period
from ..store.program import EventKey, Program
from .events import EventSet, current_temp_key_ttl

_FIRST_MONTH = Period.of("month", FIRST_MARK_TIME)
_LAST_MONTH = Period.of("month", LAST_MARK_TIME)


@functools.cache
def _every_month() -> tuple[Period, ...]:
    """Each month from January 1970 to December 2099, once per process:
    shifting 700 months one by one was a quarter of a lifecycle's time on
    the client (scripts/bench_reports.py)."""
    months = [_FIRST_MONTH]
    while months[-1] < _LAST_MONTH:
        months.append(months[-1].shift(1))
    return tuple(months)


def _months_before(period: Period) -> int:
    """How many months from January 1970 end before ``period``'s month."""
    month = period.start
    return max((month.year - 1970) * 12 + month.month - 1, 0)


def _days_before(period: Period) -> list[Period]:
    """The days of ``period``'s month before its start (none from 2100 on)."""
    day = Period("day", Period.of("month", period.start).start)
    days = []
    while day.start < period.start and day.start < LAST_MARK_TIME:
        days.append(day)
        day = Period("day", day.start + timedelta(days=1))
    return days


def history_periods(period: Period) -> list[Period]:
    """The stored periods whose union is every mark before ``period`` (a day,
    week, month or year): each month from January 1970 to the one before
    ``period``'s month (at most December 2099), then the days of that month
    before its start."""
    return [*_every_month()[: _months_before(period)], *_days_before(period)]


@functools.lru_cache(maxsize=32)
def _month_keys(event_name: str, count: int) -> tuple[EventKey, ...]:
    """The keys of ``event_name``'s first ``count`` months from January
    1970: building them was a sixth of a 30-day lifecycle's time on the
    client (scripts/bench_reports.py). About 100 KB an event in 2026, so
    the last 32 histories asked are kept (a dashboard's few events)."""
    return tuple(EventKey(event_name, month) for month in _every_month()[:count])


def history_keys(
    event_name: str, period: Period, existing: Collection[Period] | None = None
) -> list[EventKey]:
    """:func:`history_periods` as the keys of a program; only those of
    ``existing`` when given (see :func:`existing_periods`)."""
    keys = [
        *_month_keys(event_name, _months_before(period)),
        *(EventKey(event_name, day) for day in _days_before(period)),
    ]
    if existing is None:
        return keys
    return [key for key in keys if key.period in existing]


def existing_periods(
    store: Store, shards: Sequence[int], event_name: str, periods: Iterable[Period]
) -> set[Period]:
    """Those of ``periods`` in which ``event_name`` has a key in some shard:
    one round trip per node, an ``EXISTS`` per period and shard."""
    candidates = sorted(set(periods))
    # A script of no keys has no node to go to on a cluster.
    if not candidates:
        return set()
    program = Program()
    program.existing([EventKey(event_name, period) for period in candidates])
    results = store.run([(program, shard) for shard in shards], current_temp_key_ttl())
    return {
        candidates[int(position) - 1] for result in results for position in result[0]
    }


def history_set(store: Store, event_name: str, period: Period) -> EventSet:
    """The users who did ``event_name`` before ``period``, as an
    :class:`EventSet`."""
    return EventSet.of_periods(event_name, history_periods(period), store)

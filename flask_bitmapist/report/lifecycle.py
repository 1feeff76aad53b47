"""Lifecycle: :func:`get_lifecycle`, an event's active users of each period
split into new, returning and resurrecting, with the dormant ones who left.

With ``A[t]`` the users who did the event in period ``t`` and ``H[t]`` those
who did it in any period before ``t`` (see :mod:`.history`):

- ``new = |A[t] - H[t]|``: their first period with the event;
- ``returning = |A[t] & A[t-1]|``;
- ``resurrecting = |(A[t] - A[t-1]) & H[t]|``: back after at least one period
  away;
- ``dormant = |A[t-1] - A[t]|``, a positive count of those who did not come
  back.

So ``new + returning + resurrecting = |A[t]|``. Each period costs three
BITOPs and four counts, in scripts of :data:`_PERIODS_PER_PROGRAM` periods,
each starting from one OR of the months and days before its first period
(see :mod:`.history`): one round trip per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..state import resolve_store
from ..store.backend import Store
from ..store.layout import to_utc
from ..store.program import Program
from .events import (
    emit_period,
    period_of,
    sum_shard_counts,
    validate_event_field,
    validate_period_count,
    validate_time_group,
)
from .history import existing_periods, history_keys, history_periods

# Periods per script: about 1,400 BITOPs and counts, about as long as one
# of a cohort's scripts of 500 cells.
_PERIODS_PER_PROGRAM = 200


@dataclass(frozen=True)
class LifecycleRow:
    """One period of :func:`get_lifecycle`.

    :ivar date: the period's start, in UTC.
    :ivar new: users who did the event in the period and in no earlier one.
    :ivar returning: users who did it in the period and in the previous one.
    :ivar resurrecting: users who did it in the period, not in the previous
        one, but in some earlier one.
    :ivar dormant: users who did it in the previous period but not in this
        one (a positive count; charts draw it below the axis).
    """

    date: datetime
    new: int
    returning: int
    resurrecting: int
    dormant: int

    @property
    def active(self) -> int:
        """The users who did the event in the period."""
        return self.new + self.returning + self.resurrecting

    def to_json(self) -> dict[str, Any]:
        """The row as JSON, the date in ISO 8601."""
        return {
            "date": self.date.isoformat(),
            "new": self.new,
            "returning": self.returning,
            "resurrecting": self.resurrecting,
            "dormant": self.dormant,
        }


def get_lifecycle(
    event_name: str,
    time_group: str = "days",
    num_periods: int = 30,
    now: datetime | None = None,
    system: str | Store | None = None,
) -> list[LifecycleRow]:
    """``event_name``'s users of each of the last ``num_periods`` periods,
    oldest first and ending with now's, as new, returning, resurrecting and
    dormant (see the module's documentation).

    "New" is measured against every mark of the event in the store, however
    old and in whatever order the marks arrived.

    :param event_name: the event.
    :param time_group: days, weeks, months or years (or the singular).
    :param num_periods: from 1 to 1000.
    :param now: a time in the last period; naive datetimes are UTC.
    :param system: a system name or a store; default the current app's.
    :raises ValueError: for an invalid argument (a :exc:`FieldError` naming
        it).
    """
    validate_event_field("event_name", event_name)
    group = validate_time_group(time_group)
    periods = validate_period_count("num_periods", num_periods)
    when = to_utc(now)
    store = resolve_store(system)
    offsets = range(1 - periods, 1)
    chunks = [
        offsets[start : start + _PERIODS_PER_PROGRAM]
        for start in range(0, periods, _PERIODS_PER_PROGRAM)
    ]
    firsts = [period_of(group, when, chunk[0]) for chunk in chunks]
    shards = store.shards()
    # Several scripts each start from a history: learn once which of its
    # keys exist, so that each script checks only those.
    existing = None
    if len(chunks) > 1:
        existing = existing_periods(
            store,
            shards,
            event_name,
            (stored for first in firsts for stored in history_periods(first)),
        )
    programs = []
    for chunk, first in zip(chunks, firsts, strict=True):
        program = Program()
        history = program.union_existing(history_keys(event_name, first, existing))
        common = program.scratch()
        previous = emit_period(
            program, event_name, period_of(group, when, chunk[0] - 1)
        )
        for offset in chunk:
            active = emit_period(program, event_name, period_of(group, when, offset))
            program.count(active)
            program.bitop_into("AND", common, [active, previous])
            program.count(common)
            program.bitop_into("AND", common, [active, history])
            program.count(common)
            program.count(previous)
            program.bitop_into("OR", history, [history, active])
            previous = active
        programs.append(program)
    counts = sum_shard_counts(store, programs, shards)
    rows = []
    for index, offset in enumerate(offsets):
        in_period, in_both, seen_before, in_previous = counts[index * 4 : index * 4 + 4]
        rows.append(
            LifecycleRow(
                date=period_of(group, when, offset).start,
                new=in_period - seen_before,
                returning=in_both,
                resurrecting=seen_before - in_both,
                dormant=in_previous - in_both,
            )
        )
    return rows

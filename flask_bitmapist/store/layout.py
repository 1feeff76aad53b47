"""The key format and the periods it is cut by: the one place that knows what a
key is called and which bit is which user.

**Periods.** A :class:`Period` is an hour, a day, an ISO week, a month or a
year, in UTC, or :data:`EVER` (bitmapist's "unique" key, every mark of an event
whatever its time). Weeks are ISO weeks of ISO week-years: 2021-01-01 is in
week 53 of 2020. ``Period.of(unit, when)`` finds the period that holds a time,
``shift(n)`` the n-th period after (or before), ``end`` its exclusive end, and
:func:`period_range` the periods from one time to another.

**Layouts.** A :class:`KeyLayout` maps (event, period, user id) to (key, bit
offset) (:func:`locate`), and (event, period) to the keys that hold it.
:data:`BITMAPIST` is bitmapist's layout, every app's default on one node: one
key per event and period, the user id as the bit offset, names exactly as
``bitmapist.mark_event`` writes them, with no zero padding::

    trackist_<event>_<year>-<month>               month
    trackist_<event>_W<iso year>-<iso week>       ISO week
    trackist_<event>_<year>-<month>-<day>         day
    trackist_<event>_<year>-<month>-<day>-<hour>  hour (BITMAPIST_TRACK_HOURLY)
    trackist_<event>_u                            unique (BITMAPIST_TRACK_UNIQUE)

bitmapist stores no year: a year is the union of its twelve months.

:class:`ShardedLayout` (``BITMAPIST_KEY_LAYOUT = "sharded"``, and always on
a Redis Cluster) cuts user ids into ranges of ``2**shard_bits`` (default 20:
1,048,576 ids, 128 KiB per full key), as Pilosa shards its bitmaps. The shard
of id ``u`` is ``u >> shard_bits``, its bit is ``u - (shard << shard_bits)``
in the shard's key, and every key of a shard carries the shard as its hash
tag, so that a shard's keys, whatever their event or period, share one
cluster slot, and a BITOP or script of one shard runs on one node. The shard
size (``<bits>``, 20 by default) is part of every name::

    trackist<bits>{<shard>}_<event>_<period suffix as above>
    trackist<bits>{<shard>}_bitop_<query>_<n>   a query's temporary key
    trackist<bits>:shards                       the registry: bit s for shard s

bitmapist's ``trackist_*`` names never start that way, nor do those of
another shard size, so layouts can share one Redis (as ``flask bitmapist
migrate`` may leave them, on the way from one to another) without reading
each other's keys, and bitmapist's tools do not read the sharded one.

**Names.** What an event may be called is part of the format too
(:func:`validate_event_name`), and :func:`to_utc` is the clock every period
is read from.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from ..config import DEFAULT_SHARD_BITS, Settings, shard_bits_problem

__all__ = [
    "BITMAPIST",
    "EVER",
    "FIRST_MARK_TIME",
    "KEY_PREFIX",
    "LAST_MARK_TIME",
    "MAX_EVENT_NAME_LENGTH",
    "TEMPORARY_PREFIX",
    "TIME_GROUPS",
    "BitmapistLayout",
    "KeyLayout",
    "Period",
    "ShardedLayout",
    "Unit",
    "layout_of",
    "locate",
    "period_range",
    "stored_periods",
    "to_mark_time",
    "to_utc",
    "unit_of_time_group",
    "validate_event_name",
]

Unit = Literal["hour", "day", "week", "month", "year", "ever"]

#: The periods a query reads, as the query functions' ``time_group`` names them.
TIME_GROUPS = ("days", "weeks", "months", "years")
_UNIT_OF_GROUP: dict[str, Unit] = {
    "days": "day",
    "weeks": "week",
    "months": "month",
    "years": "year",
}

KEY_PREFIX = "trackist_"
#: bitmapist's temporary keys, and ours: never an event.
TEMPORARY_PREFIX = "trackist_bitop_"
#: What no event name starts with: the temporary keys' mark, in both layouts.
_RESERVED_PREFIX = "bitop_"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


def unit_of_time_group(time_group: str) -> Unit:
    """The unit of a validated ``time_group``: ``"days"`` is ``"day"``."""
    return _UNIT_OF_GROUP[time_group]


@dataclass(frozen=True, order=True)
class Period:
    """A period of time in UTC: its unit and its start.

    :ivar unit: ``hour``, ``day``, ``week`` (ISO, starting on Monday),
        ``month``, ``year``, or ``ever`` (:data:`EVER`).
    :ivar start: the first instant of the period, aware, in UTC.
    """

    unit: Unit
    start: datetime

    @classmethod
    def of(cls, unit: Unit, when: datetime) -> Period:
        """The period of ``unit`` that holds ``when`` (aware; see :func:`to_utc`)."""
        when = when.astimezone(timezone.utc)
        if unit == "hour":
            return cls(unit, when.replace(minute=0, second=0, microsecond=0))
        if unit == "day":
            return cls(unit, _midnight(when.date()))
        if unit == "week":
            return cls(unit, _midnight(when.date() - timedelta(days=when.weekday())))
        if unit == "month":
            return cls(unit, datetime(when.year, when.month, 1, tzinfo=timezone.utc))
        if unit == "year":
            return cls(unit, datetime(when.year, 1, 1, tzinfo=timezone.utc))
        if unit == "ever":
            return EVER
        raise ValueError(f"Unknown period unit {unit!r}.")

    @classmethod
    def from_label(cls, label: str) -> Period:
        """The day, ISO week, month or year that :attr:`label` spells
        ``label``: ``2026-11-22``, ``2026-W47``, ``2026-11`` or ``2026``.

        :raises ValueError: for any other text, or a date that does not
            exist (``2026-02-30``, ``2025-W53``).
        """
        found = _LABEL.fullmatch(label)
        try:
            if found is not None:
                year, week, month, day = found.groups()
                if week is not None:
                    first = date.fromisocalendar(int(year), int(week), 1)
                    return cls("week", _midnight(first))
                if day is not None:
                    return cls("day", _midnight(date(int(year), int(month), int(day))))
                if month is not None:
                    return cls("month", _midnight(date(int(year), int(month), 1)))
                return cls("year", _midnight(date(int(year), 1, 1)))
        except ValueError:
            pass
        raise ValueError(f"No period is labelled {label!r}.")

    def shift(self, count: int) -> Period:
        """The period ``count`` periods after this one (before it, if negative).

        :raises ValueError: for :data:`EVER`, which has no neighbours.
        """
        start = self.start
        if self.unit == "hour":
            return Period("hour", start + count * _HOUR)
        if self.unit == "day":
            return Period("day", start + count * _DAY)
        if self.unit == "week":
            return Period("week", start + count * 7 * _DAY)
        if self.unit == "month":
            year, month = divmod(start.year * 12 + start.month - 1 + count, 12)
            return Period("month", datetime(year, month + 1, 1, tzinfo=timezone.utc))
        if self.unit == "year":
            return Period(
                "year", datetime(start.year + count, 1, 1, tzinfo=timezone.utc)
            )
        raise ValueError("The unique period (ever) has no periods before or after it.")

    @property
    def end(self) -> datetime | None:
        """The first instant after the period; ``None`` for :data:`EVER`."""
        if self.unit == "ever":
            return None
        return self.shift(1).start

    @property
    def label(self) -> str:
        """The period for people: ``2026-11-22 13:00``, ``2026-11-22``,
        ``2026-W47`` (ISO year and week), ``2026-11``, ``2026``, ``ever``."""
        start = self.start
        if self.unit == "week":
            iso_year, iso_week, _ = start.isocalendar()
            return f"{iso_year}-W{iso_week:02d}"
        if self.unit == "ever":
            return "ever"
        return start.strftime(_LABEL_FORMATS[self.unit])

    def months(self) -> list[Period]:
        """The months of a year, January first.

        :raises ValueError: for a period that is not a year.
        """
        if self.unit != "year":
            raise ValueError(f"Only a year has months, not a {self.unit}.")
        first = Period("month", self.start)
        return [first.shift(index) for index in range(12)]


# The labels of days, ISO weeks, months and years.
_LABEL = re.compile(r"([0-9]{4})(?:-W([0-9]{2})|-([0-9]{2})(?:-([0-9]{2}))?)?")
_LABEL_FORMATS = {
    "hour": "%Y-%m-%d %H:00",
    "day": "%Y-%m-%d",
    "month": "%Y-%m",
    "year": "%Y",
}

#: Every mark of an event, whatever its time: bitmapist's unique key.
EVER = Period("ever", _EPOCH)
#: The earliest time a mark may have, and the first time after the latest:
#: the reports read an event's history from its month on, up to at most the
#: month before (see :mod:`flask_bitmapist.report.history`).
FIRST_MARK_TIME = _EPOCH
LAST_MARK_TIME = datetime(2100, 1, 1, tzinfo=timezone.utc)


def period_range(unit: Unit, first: datetime, last: datetime) -> list[Period]:
    """The periods of ``unit`` from the one that holds ``first`` to the one
    that holds ``last``, both included, oldest first (empty when ``last`` is
    before ``first``'s period)."""
    period, final = Period.of(unit, first), Period.of(unit, last)
    periods = []
    while period <= final:
        periods.append(period)
        period = period.shift(1)
    return periods


def stored_periods(period: Period) -> tuple[Period, ...]:
    """The periods whose keys hold ``period``: a year's twelve months (no
    layout stores a year), else the period itself."""
    return tuple(period.months()) if period.unit == "year" else (period,)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


class KeyLayout(Protocol):
    """Where the bits of an event live: the seam between the store and a key
    format.

    A user id is split into a shard and a bit offset (:meth:`split`); a key
    holds one event's period for one shard (:meth:`key`). bitmapist's layout
    has one shard, 0, and the id is the offset; a sharded layout cuts ids into
    ranges. Reading a period means combining (OR) the keys :meth:`keys` gives.
    """

    @property
    def registry_key(self) -> str | None:
        """The key whose bit ``s`` says that shard ``s`` holds data (see
        :mod:`flask_bitmapist.store.backend`), or ``None`` for a layout of
        one shard, 0."""
        ...

    def split(self, user_id: int) -> tuple[int, int]:
        """``(shard, bit offset)`` of ``user_id``."""
        ...

    def first_id(self, shard: int) -> int:
        """The user id of bit 0 in ``shard``'s keys."""
        ...

    def temporary_key(self, name: str, shard: int = 0) -> str:
        """A query's temporary key called ``name`` in ``shard`` (in the
        shard's cluster slot)."""
        ...

    def key(self, event_name: str, period: Period, shard: int = 0) -> str:
        """The key of ``event_name``'s ``period`` in ``shard``: a stored unit
        (hour, day, week, month or ever)."""
        ...

    def keys(
        self, event_name: str, period: Period, shards: Sequence[int] = (0,)
    ) -> tuple[str, ...]:
        """The keys whose union is ``event_name`` in ``period`` (any unit,
        years included) in ``shards``."""
        ...

    def parse(self, key: str) -> tuple[str, Period] | None:
        """``(event name, period)`` of an event key, or ``None`` for any other
        key (a query's temporary key, another program's key)."""
        ...

    def scan_pattern(self, event_prefix: str = "") -> str:
        """A SCAN ``MATCH`` pattern for the keys of events whose name starts
        with ``event_prefix`` (it may match more; :meth:`parse` decides)."""
        ...


def locate(
    layout: KeyLayout, event_name: str, period: Period, user_id: int
) -> tuple[str, int]:
    """The key and bit offset of ``user_id`` in ``event_name``'s ``period``."""
    shard, offset = layout.split(user_id)
    return layout.key(event_name, period, shard), offset


_SUFFIX = re.compile(
    r"(?:(?P<year>\d{4})-(?P<month>\d{1,2})"
    r"(?:-(?P<day>\d{1,2})(?:-(?P<hour>\d{1,2}))?)?"
    r"|W(?P<week_year>\d{4})-(?P<week>\d{1,2})|(?P<ever>u))"
)


class BitmapistLayout:
    """bitmapist's key layout: one key per event and period, the user id as
    the bit offset. Keys are exactly those ``bitmapist.mark_event`` writes."""

    registry_key = None

    def split(self, user_id: int) -> tuple[int, int]:
        """See :meth:`KeyLayout.split`: one shard, the id is the offset."""
        return 0, user_id

    def first_id(self, shard: int) -> int:
        """See :meth:`KeyLayout.first_id`: 0, the one shard's first id."""
        return 0

    def temporary_key(self, name: str, shard: int = 0) -> str:
        """See :meth:`KeyLayout.temporary_key`."""
        return f"{TEMPORARY_PREFIX}{name}"

    def key(self, event_name: str, period: Period, shard: int = 0) -> str:
        """See :meth:`KeyLayout.key`.

        :raises ValueError: for a year, which bitmapist does not store.
        """
        return f"{KEY_PREFIX}{event_name}_{_suffix(period)}"

    def keys(
        self, event_name: str, period: Period, shards: Sequence[int] = (0,)
    ) -> tuple[str, ...]:
        """See :meth:`KeyLayout.keys`; a year is its twelve months."""
        if period.unit == "year":
            return tuple(self.key(event_name, month) for month in period.months())
        return (self.key(event_name, period),)

    def parse(self, key: str) -> tuple[str, Period] | None:
        """See :meth:`KeyLayout.parse`."""
        if not key.startswith(KEY_PREFIX) or key.startswith(TEMPORARY_PREFIX):
            return None
        name, separator, suffix = key[len(KEY_PREFIX) :].rpartition("_")
        if not separator or not name:
            return None
        period = _parse_suffix(suffix)
        return None if period is None else (name, period)

    def scan_pattern(self, event_prefix: str = "") -> str:
        """See :meth:`KeyLayout.scan_pattern`."""
        return f"{KEY_PREFIX}{_escape_glob(event_prefix)}*"


class ShardedLayout:
    """User ids cut into shards of ``2**shard_bits``, each shard's keys in
    one cluster slot (its hash tag). See the module's documentation for the
    key format.

    :param shard_bits: the bits of a shard's offsets, from 3 to 32.
    :raises ValueError: for any other value.
    """

    def __init__(self, shard_bits: int = DEFAULT_SHARD_BITS) -> None:
        problem = shard_bits_problem(shard_bits)
        if problem is not None:
            raise ValueError(f"shard_bits {problem}")
        self.shard_bits = shard_bits
        self._mask = (1 << shard_bits) - 1
        # The shard size is in every name, so that layouts of two sizes in
        # one Redis (a migration between them) never read each other's keys.
        self._prefix = f"trackist{shard_bits}{{"
        self._pattern = re.compile(
            rf"trackist{shard_bits}\{{(?P<shard>0|[1-9]\d*)\}}_(?P<rest>.+)"
        )
        self.registry_key: str = f"trackist{shard_bits}:shards"

    def __repr__(self) -> str:
        return f"ShardedLayout(shard_bits={self.shard_bits})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShardedLayout) and other.shard_bits == self.shard_bits

    def __hash__(self) -> int:
        return hash((ShardedLayout, self.shard_bits))

    def split(self, user_id: int) -> tuple[int, int]:
        """See :meth:`KeyLayout.split`."""
        return user_id >> self.shard_bits, user_id & self._mask

    def first_id(self, shard: int) -> int:
        """See :meth:`KeyLayout.first_id`."""
        return shard << self.shard_bits

    def temporary_key(self, name: str, shard: int = 0) -> str:
        """See :meth:`KeyLayout.temporary_key`."""
        return f"{self._prefix}{shard}}}_bitop_{name}"

    def key(self, event_name: str, period: Period, shard: int = 0) -> str:
        """See :meth:`KeyLayout.key`.

        :raises ValueError: for a year, which is stored as its months.
        """
        return f"{self._prefix}{shard}}}_{event_name}_{_suffix(period)}"

    def keys(
        self, event_name: str, period: Period, shards: Sequence[int] = (0,)
    ) -> tuple[str, ...]:
        """See :meth:`KeyLayout.keys`; a year is its twelve months."""
        periods = period.months() if period.unit == "year" else [period]
        return tuple(
            self.key(event_name, stored, shard)
            for shard in shards
            for stored in periods
        )

    def parse(self, key: str) -> tuple[str, Period] | None:
        """See :meth:`KeyLayout.parse`; the shard is left out."""
        match = self._pattern.fullmatch(key)
        if match is None or match["rest"].startswith(_RESERVED_PREFIX):
            return None
        name, separator, suffix = match["rest"].rpartition("_")
        if not separator or not name:
            return None
        period = _parse_suffix(suffix)
        return None if period is None else (name, period)

    def scan_pattern(self, event_prefix: str = "") -> str:
        """See :meth:`KeyLayout.scan_pattern`."""
        return f"{self._prefix}*}}_{_escape_glob(event_prefix)}*"


@functools.lru_cache(maxsize=4096)
def _suffix(period: Period) -> str:
    start = period.start
    unit = period.unit
    if unit == "month":
        return f"{start.year}-{start.month}"
    if unit == "week":
        iso_year, iso_week, _ = start.isocalendar()
        return f"W{iso_year}-{iso_week}"
    if unit == "day":
        return f"{start.year}-{start.month}-{start.day}"
    if unit == "hour":
        return f"{start.year}-{start.month}-{start.day}-{start.hour}"
    if unit == "ever":
        return "u"
    raise ValueError("bitmapist stores no year: read its twelve months.")


def _parse_suffix(suffix: str) -> Period | None:
    match = _SUFFIX.fullmatch(suffix)
    if match is None:
        return None
    try:
        if match["ever"] is not None:
            return EVER
        if match["week"] is not None:
            monday = date.fromisocalendar(
                int(match["week_year"]), int(match["week"]), 1
            )
            return Period("week", _midnight(monday))
        year, month = int(match["year"]), int(match["month"])
        if match["day"] is None:
            return Period("month", datetime(year, month, 1, tzinfo=timezone.utc))
        day = _midnight(date(year, month, int(match["day"])))
        if match["hour"] is None:
            return Period("day", day)
        hour = int(match["hour"])
        if hour > 23:
            return None
        return Period("hour", day + hour * _HOUR)
    except ValueError:
        return None


def _escape_glob(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


#: bitmapist's layout, the default of every app on one node.
BITMAPIST = BitmapistLayout()


def layout_of(settings: Settings) -> KeyLayout:
    """The layout ``BITMAPIST_KEY_LAYOUT`` and ``BITMAPIST_SHARD_BITS`` ask for."""
    if settings.key_layout == "sharded":
        return ShardedLayout(settings.shard_bits)
    return BITMAPIST


MAX_EVENT_NAME_LENGTH = 200


def validate_event_name(event_name: Any) -> str:
    """Return ``event_name`` if it can name a bitmapist event.

    :raises ValueError: unless it is a non-empty str of at most 200 printable
        characters without whitespace, neither ``bitop`` nor starting with
        ``bitop_`` (the prefix of bitmapist's temporary keys).
    """
    if not isinstance(event_name, str):
        raise ValueError(f"Event name must be a str, got {event_name!r}.")
    return _validate_str_event_name(event_name)


# Apps mark a handful of names over and over; checking each name once keeps
# the per-mark cost off the request path. Only valid names are cached.
@functools.lru_cache(maxsize=4096)
def _validate_str_event_name(event_name: str) -> str:
    if not event_name:
        raise ValueError("Event name must not be empty.")
    if len(event_name) > MAX_EVENT_NAME_LENGTH:
        raise ValueError(
            f"Event name must be at most {MAX_EVENT_NAME_LENGTH} characters, "
            f"got {len(event_name)}: {event_name[:40]!r}..."
        )
    if not event_name.isprintable() or any(char.isspace() for char in event_name):
        raise ValueError(
            f"Event name must not contain whitespace or control characters, "
            f"got {event_name!r}."
        )
    # "bitop" alone too: its keys, trackist_bitop_<period>, start as the
    # temporary keys' do, so no listing would ever find them.
    if f"{event_name}_".startswith(_RESERVED_PREFIX):
        raise ValueError(
            f"Event name must not start with {_RESERVED_PREFIX!r} nor be 'bitop', "
            f"which bitmapist reserves for temporary keys, got {event_name!r}."
        )
    return event_name


def to_utc(now: datetime | None) -> datetime:
    """``now`` in UTC: naive datetimes are taken as UTC; ``None`` is the current time.

    :raises ValueError: when ``now`` is not a datetime.
    """
    if now is None:
        return datetime.now(timezone.utc)
    if not isinstance(now, datetime):
        raise ValueError(f"now must be a datetime, got {now!r}.")
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def to_mark_time(now: datetime | None) -> datetime:
    """:func:`to_utc` of a mark's time, which must be from
    :data:`FIRST_MARK_TIME` (1970) up to :data:`LAST_MARK_TIME` (2100).

    :raises ValueError: for a time that is not a datetime or is outside them.
    """
    try:
        when = to_utc(now)
    except OverflowError:
        # An aware time whose UTC lies outside what a datetime holds.
        assert now is not None
        raise _mark_time_error(now) from None
    if not FIRST_MARK_TIME <= when < LAST_MARK_TIME:
        raise _mark_time_error(when)
    return when


def _mark_time_error(when: datetime) -> ValueError:
    return ValueError(
        f"A mark's time must be from {FIRST_MARK_TIME.date().isoformat()} "
        f"to {LAST_MARK_TIME.year - 1}-12-31 (UTC), got {when.isoformat()}."
    )

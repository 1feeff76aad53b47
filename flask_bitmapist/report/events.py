"""Reading: event data and chained events, as pipelined BITOP/BITCOUNT.

A query builds its BITOP commands on the client and sends them, with the
BITCOUNTs that read the results, in one pipeline: one round trip however many
rows and columns a cohort has (a cohort's rows run as short scripts inside
that pipeline). Intermediate results go to temporary keys that carry a name
unique to the query (so concurrent queries never touch each other's keys), a
TTL as a safety net, and a DEL at the end of the same pipeline; a row script's
scratch keys are deleted inside its own atomic run.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis
from bitmapist import (
    DayEvents,
    GenericPeriodEvents,
    MonthEvents,
    WeekEvents,
    YearEvents,
)
from bitmapist import MixinBitOperations as _MixinBitOperations
from bitmapist import MixinContains as _MixinContains
from bitmapist import MixinCounts as _MixinCounts
from bitmapist import MixinEventsMisc as _MixinEventsMisc
from bitmapist import MixinIter as _MixinIter

from ..config import Settings
from ..state import current_state, resolve_client
from ..store.layout import to_utc, validate_event_name
from ..store.maintenance import event_keys

TIME_GROUPS = ("days", "weeks", "months", "years")
PeriodClass = type[DayEvents] | type[WeekEvents] | type[MonthEvents]
_PERIOD_CLASSES: dict[str, PeriodClass] = {
    "days": DayEvents,
    "weeks": WeekEvents,
    "months": MonthEvents,
}
MAX_ROWS_OR_COLS = 1000
_OPERATORS = ("and", "or")
_TEMP_PREFIX = "trackist_bitop_fb"


class FieldError(ValueError):
    """An argument of a query, or a field of a cohort request, has a value
    that cannot be used. The message is ``"FIELD: REASON"``.

    :ivar field: the argument's name, with the index of a list item:
        ``num_rows``, ``additional_events[0].op``.
    :ivar reason: what is wrong with it, in one sentence.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def validate_time_group(time_group: Any, name: str = "time_group") -> str:
    """Return the plural form of ``time_group``.

    :raises FieldError: unless it is days, weeks, months or years, plural or
        singular.
    """
    if isinstance(time_group, str):
        plural = time_group if time_group.endswith("s") else f"{time_group}s"
        if plural in TIME_GROUPS:
            return plural
    raise FieldError(
        name,
        f"must be one of {', '.join(TIME_GROUPS)} (or the singular), "
        f"got {time_group!r}.",
    )


def validate_event_field(name: str, value: Any) -> str:
    """:func:`~flask_bitmapist.validate_event_name`, naming the argument.

    :raises FieldError: for an invalid event name.
    """
    try:
        return validate_event_name(value)
    except ValueError as error:
        raise FieldError(name, str(error).removeprefix("Event name ")) from None


def validate_chained_events(events: Any, name: str) -> list[tuple[str, str]]:
    """Return ``events`` as ``(event name, op)`` pairs, validating each item.

    :raises FieldError: unless ``events`` is a list of ``{"name": str, "op":
        "and" | "or"}`` dicts with valid event names.
    """
    if events is None:
        return []
    if not isinstance(events, Sequence) or isinstance(events, str):
        raise FieldError(name, f"must be a list of {{name, op}} dicts, got {events!r}.")
    pairs = []
    for index, item in enumerate(events):
        item_name = f"{name}[{index}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "op"}:
            raise FieldError(
                item_name,
                f"must be a dict with exactly the keys name and op, got {item!r}.",
            )
        if item["op"] not in _OPERATORS:
            raise FieldError(
                f"{item_name}.op", f"must be 'and' or 'or', got {item['op']!r}."
            )
        pairs.append(
            (validate_event_field(f"{item_name}.name", item["name"]), item["op"])
        )
    return pairs


def validate_period_count(
    name: str, value: Any, maximum: int = MAX_ROWS_OR_COLS
) -> int:
    """Return ``value`` if it is an int from 1 to ``maximum``.

    :raises FieldError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(name, f"must be an int from 1 to {maximum}, got {value!r}.")
    if not 1 <= value <= maximum:
        raise FieldError(name, f"must be from 1 to {maximum}, got {value}.")
    return value


def temp_key_ttl() -> int:
    state = current_state()
    return (state.settings if state else Settings()).temp_key_ttl


class TemporaryBitmap(
    _MixinIter, _MixinContains, _MixinCounts, _MixinEventsMisc, _MixinBitOperations
):
    """A query result in a temporary key: counts (``len``), membership (``in``),
    iteration over user ids and bit operations, like bitmapist's ``BitOpAnd``.

    The key expires after ``BITMAPIST_TEMP_KEY_TTL`` seconds (300); call
    :meth:`delete` when done with it to free the memory at once.
    """

    def __init__(self, redis_key: str, system: redis.Redis) -> None:
        self.redis_key = redis_key
        self.system = system


class QueryPlan:
    """The commands of one query, queued in one pipeline."""

    def __init__(self, client: redis.Redis, ttl: int) -> None:
        self.client = client
        self.pipeline = client.pipeline(transaction=False)
        self.ttl = ttl
        # Underscores, so that bitmapist's get_event_names, which skips names
        # starting "bitop_", does not list a query's keys as an event.
        self.prefix = f"{_TEMP_PREFIX}_{uuid.uuid4().hex}"
        self.temp_keys: list[str] = []

    def new_key(self) -> str:
        key = f"{self.prefix}_{len(self.temp_keys)}"
        self.temp_keys.append(key)
        return key

    def bitop(self, operation: str, destination: str, *sources: str) -> None:
        # BITOP replaces the destination, TTL included, so the TTL follows each one.
        self.pipeline.bitop(operation, destination, *sources)
        self.pipeline.expire(destination, self.ttl)

    def bitcounts(self, keys: list[str]) -> list[int]:
        """Queue a BITCOUNT of each key; return where their results will be."""
        for key in keys:
            self.pipeline.bitcount(key)
        end = len(self.pipeline)
        return list(range(end - len(keys), end))

    def union(self, keys: list[str]) -> str:
        if len(keys) == 1:
            return keys[0]
        destination = self.new_key()
        self.bitop("OR", destination, *keys)
        return destination

    def execute(self, keep: str | None = None) -> list[Any]:
        """Run the pipeline, deleting every temporary key but ``keep``.

        On failure the keys are deleted on a best-effort basis; their TTL
        removes what that misses.
        """
        doomed = [key for key in self.temp_keys if key != keep]
        if doomed:
            self.pipeline.delete(*doomed)
        try:
            results: list[Any] = self.pipeline.execute()
        except BaseException:
            try:
                if self.temp_keys:
                    self.client.delete(*self.temp_keys)
            except redis.RedisError:
                pass
            raise
        return results


def period_keys(
    time_group: str, event_name: str, when: datetime, offset: int
) -> list[str]:
    """The keys that hold ``event_name`` in the period ``offset`` periods from ``when``.

    A year is the union of its twelve months, as in bitmapist's ``YearEvents``.
    """
    if time_group == "years":
        year = when.year + offset
        return [
            MonthEvents(event_name, year, month).redis_key for month in range(1, 13)
        ]
    period = _PERIOD_CLASSES[time_group].from_date(event_name, when).delta(offset)
    return [period.redis_key]


def period_start(time_group: str, when: datetime, offset: int) -> datetime:
    if time_group == "years":
        return datetime(when.year + offset, 1, 1, tzinfo=timezone.utc)
    period = _PERIOD_CLASSES[time_group].from_date("", when).delta(offset)
    start: datetime = period.period_start()
    return start


def chain_key(
    plan: QueryPlan,
    base_event_name: str,
    chained: list[tuple[str, str]],
    time_group: str,
    when: datetime,
    offset: int,
) -> str:
    # Each OR binds to its direct predecessor, then the groups are ANDed:
    # A and B or C and D = A & (B | C) & D.
    groups: list[list[str]] = [[base_event_name]]
    for event_name, operator in chained:
        if operator == "or":
            groups[-1].append(event_name)
        else:
            groups.append([event_name])
    group_keys = [
        plan.union(
            [
                key
                for name in group
                for key in period_keys(time_group, name, when, offset)
            ]
        )
        for group in groups
    ]
    if len(group_keys) == 1:
        return group_keys[0]
    destination = plan.new_key()
    plan.bitop("AND", destination, *group_keys)
    return destination


def get_event_data(
    event_name: str,
    time_group: str = "days",
    now: datetime | None = None,
    system: str | None = None,
) -> GenericPeriodEvents:
    """The bitmapist events object of ``event_name`` for the period that holds ``now``.

    :param event_name: the event.
    :param time_group: days, weeks, months or years (or the singular).
    :param now: a time in the period; naive datetimes are UTC. Default: now.
    :param system: a bitmapist system name; default the current app's, or
        ``"default"`` outside an app.
    :returns: a ``DayEvents``, ``WeekEvents``, ``MonthEvents`` or ``YearEvents``.
        A ``YearEvents`` is bitmapist's OR of the twelve months in a temporary
        key, which here expires after ``BITMAPIST_TEMP_KEY_TTL`` seconds.
    :raises ValueError: for an invalid event name, time group or time.
    """
    validate_event_name(event_name)
    group = validate_time_group(time_group)
    when = to_utc(now)
    # bitmapist's get_redis takes a client where its annotations say str; the
    # client, not its system name, keeps two apps with one name apart.
    client = resolve_client(system)
    if group == "years":
        year = YearEvents(event_name, when.year, system=client)
        client.expire(year.redis_key, temp_key_ttl())
        return year
    period: GenericPeriodEvents = _PERIOD_CLASSES[group].from_date(
        event_name,
        when,
        system=client,  # type: ignore[arg-type]
    )
    return period


def chain_events(
    base_event_name: str,
    events_to_chain: Sequence[Mapping[str, str]] | None,
    now: datetime | None,
    time_group: str,
    system: str | None = None,
) -> TemporaryBitmap:
    """The users who did ``base_event_name`` combined with ``events_to_chain``,
    in the period of ``now``.

    Each OR binds only to its direct predecessor, and the rest is ANDed:
    ``A and B and C or D`` is ``A & B & (C | D)``, and ``A and B or C and D`` is
    ``A & (B | C) & D``. ``events_to_chain`` is not modified.

    :param base_event_name: the first event of the chain.
    :param events_to_chain: ``[{"name": ..., "op": "and" | "or"}, ...]``.
    :param now: a time in the period; naive datetimes are UTC.
    :param time_group: days, weeks, months or years (or the singular).
    :param system: a bitmapist system name; default the current app's.
    :returns: the result in a temporary key (see :class:`TemporaryBitmap`).
    :raises ValueError: for invalid names, operators, time group or time.
    """
    validate_event_field("base_event_name", base_event_name)
    chained = validate_chained_events(events_to_chain, "events_to_chain")
    group = validate_time_group(time_group)
    when = to_utc(now)
    client = resolve_client(system)
    plan = QueryPlan(client, temp_key_ttl())
    key = chain_key(plan, base_event_name, chained, group, when, 0)
    if key not in plan.temp_keys:
        copy = plan.new_key()
        plan.bitop("OR", copy, key)
        key = copy
    plan.execute(keep=key)
    return TemporaryBitmap(key, client)


def list_event_names(prefix: str = "", system: str | None = None) -> list[str]:
    """The names of every event in Redis that starts with ``prefix``, sorted.

    Like bitmapist's ``get_event_names``, it walks the keys with SCAN (never
    KEYS, which would block Redis), so it costs one round trip per 10,000 keys;
    unlike it, it never lists the temporary keys of a query as an event.

    :param prefix: keep only the names that start with it.
    :param system: a bitmapist system name; default the current app's.
    """
    return sorted({name for _, name, _ in event_keys(resolve_client(system), prefix)})


def close_event_names(name: str, names: Iterable[str]) -> list[str]:
    """Up to three of ``names`` that look like ``name``, closest first: what
    an unknown event name was probably meant to be."""
    return difflib.get_close_matches(name, sorted(names), n=3)


def unknown_event_message(name: str, close: Sequence[str]) -> str:
    """``Unknown event 'plya'; did you mean play?``, or without the question
    when ``close`` is empty."""
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    return f"Unknown event {name!r}{hint}"


@dataclass(frozen=True)
class PeriodCounts:
    """How many users did an event today, this ISO week, this month and this
    year (UTC)."""

    day: int
    week: int
    month: int
    year: int


def count_events(
    event_names: Iterable[str], now: datetime | None = None, system: str | None = None
) -> dict[str, PeriodCounts]:
    """Each event's user count for the day, ISO week, month and year of ``now``.

    One round trip however many events there are: a pipeline of BITCOUNTs,
    with each year's OR of its twelve months built once in a temporary key.

    :param event_names: the events to count.
    :param now: a time in the periods; naive datetimes are UTC. Default: now.
    :param system: a bitmapist system name; default the current app's.
    :raises ValueError: for an invalid time.
    """
    names = list(event_names)
    when = to_utc(now)
    plan = QueryPlan(resolve_client(system), temp_key_ttl())
    count_indexes: list[list[int]] = []
    for name in names:
        keys = [
            *(period_keys(group, name, when, 0)[0] for group in _PERIOD_CLASSES),
            plan.union(period_keys("years", name, when, 0)),
        ]
        count_indexes.append(plan.bitcounts(keys))
    results = plan.execute()
    return {
        name: PeriodCounts(*(int(results[index]) for index in indexes))
        for name, indexes in zip(names, count_indexes, strict=True)
    }


@dataclass(frozen=True)
class EventHistory:
    """An event's user counts over recent periods, oldest first, each as
    ``(period start in UTC, count)``."""

    days: list[tuple[datetime, int]]
    weeks: list[tuple[datetime, int]]
    months: list[tuple[datetime, int]]


def event_history(
    event_name: str,
    now: datetime | None = None,
    days: int = 30,
    weeks: int = 12,
    months: int = 12,
    system: str | None = None,
) -> EventHistory:
    """``event_name``'s counts for the last ``days`` days, ``weeks`` ISO weeks
    and ``months`` months up to the ones that hold ``now``, in one round trip.

    :raises ValueError: for an invalid event name, time or period count (each
        from 1 to 1000).
    """
    validate_event_name(event_name)
    lengths = {
        "days": validate_period_count("days", days),
        "weeks": validate_period_count("weeks", weeks),
        "months": validate_period_count("months", months),
    }
    when = to_utc(now)
    pipeline = resolve_client(system).pipeline(transaction=False)
    offsets = {group: range(1 - length, 1) for group, length in lengths.items()}
    for group, group_offsets in offsets.items():
        for offset in group_offsets:
            pipeline.bitcount(period_keys(group, event_name, when, offset)[0])
    counts = iter(pipeline.execute())
    series = {
        group: [
            (period_start(group, when, offset), int(next(counts)))
            for offset in group_offsets
        ]
        for group, group_offsets in offsets.items()
    }
    return EventHistory(**series)

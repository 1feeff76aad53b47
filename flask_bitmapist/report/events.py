"""Reading: event sets, their operators and counts over periods.

An :class:`EventSet` is the users who did an event in a period, or a
combination of such sets. Combining sets costs nothing; reading one sends
every BITOP it needs, with the read, in one pipeline (see
:class:`~flask_bitmapist.store.plan.QueryPlan`): one round trip however
complex the combination.
"""

from __future__ import annotations

import difflib
import functools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import redis

from ..config import Settings
from ..state import current_state, resolve_client
from ..store.layout import (
    BITMAPIST,
    TIME_GROUPS,
    KeyLayout,
    Period,
    to_utc,
    unit_of_time_group,
    validate_event_name,
)
from ..store.maintenance import event_keys
from ..store.plan import QueryPlan

MAX_ROWS_OR_COLS = 1000
_OPERATORS = ("and", "or")


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


def current_temp_key_ttl() -> int:
    """The current app's ``BITMAPIST_TEMP_KEY_TTL``, or its default outside
    an app."""
    state = current_state()
    return (state.settings if state else Settings()).temp_key_ttl


@dataclass(frozen=True)
class _PeriodLeaf:
    event_name: str
    period: Period


@dataclass(frozen=True)
class _KeyLeaf:
    key: str


@dataclass(frozen=True)
class _Combination:
    operation: Literal["AND", "OR", "XOR", "NOT", "DIFF"]
    operands: tuple[_Node, ...]


_Node = _PeriodLeaf | _KeyLeaf | _Combination

# The ids of the set bits of every byte value, most significant bit first:
# Redis numbers bit 0 as the high bit of the first byte.
_BYTE_BITS = tuple(
    tuple(bit for bit in range(8) if value & (0x80 >> bit)) for value in range(256)
)


class EventSet:
    """A set of user ids stored in Redis: the users who did an event in a
    period, or a combination of such sets.

    ``len()``, ``in``, iteration (user ids in ascending order) and ``bool``
    each cost one round trip (``list(s)`` costs two: Python asks ``len()``
    first, to size the list). The operators ``&`` (and), ``|`` (or), ``^``
    (either, not both), ``-`` (and not) and ``~`` (not) build a new set
    without touching Redis; reading it runs the whole combination in one
    round trip, in temporary keys deleted in the same round trip (with a TTL
    of ``BITMAPIST_TEMP_KEY_TTL`` seconds as a safety net).

    ``~s``, as bitmapist's ``BitOpNot``, holds the ids from 0 to the end of
    the last byte of ``s``'s key that are not in ``s``; ``a - b`` is
    exact whatever the sizes of ``a`` and ``b``.

    For bitmapist's classes the set offers ``redis_key`` and ``system`` (its
    Redis client): ``BitOpAnd(s.system, s, other)`` works as with 0.1.x's
    results. Reading ``redis_key`` of a combination stores it in a temporary
    key once; :meth:`delete` frees it at once. ``get_count()``,
    ``has_events_marked()`` and ``get_uuids()`` are bitmapist's names for
    ``len``, ``bool`` and ``iter``.
    """

    def __init__(
        self,
        node: _Node,
        client: redis.Redis,
        *,
        layout: KeyLayout = BITMAPIST,
        temp_key_ttl: int | None = None,
    ) -> None:
        self._node = node
        self._client = client
        self._layout = layout
        self._ttl = current_temp_key_ttl() if temp_key_ttl is None else temp_key_ttl
        self._stored_key: str | None = None

    @classmethod
    def of_period(
        cls,
        event_name: str,
        period: Period,
        client: redis.Redis,
        *,
        layout: KeyLayout = BITMAPIST,
    ) -> EventSet:
        """The users who did ``event_name`` in ``period``."""
        return cls(_PeriodLeaf(event_name, period), client, layout=layout)

    @property
    def system(self) -> redis.Redis:
        """The Redis client the set lives on."""
        return self._client

    @property
    def event_name(self) -> str | None:
        """The event of a set of one event and period, else ``None``."""
        node = self._node
        return node.event_name if isinstance(node, _PeriodLeaf) else None

    @property
    def period(self) -> Period | None:
        """The period of a set of one event and period, else ``None``."""
        node = self._node
        return node.period if isinstance(node, _PeriodLeaf) else None

    @property
    def redis_key(self) -> str:
        """The key that holds the set: the event's own key for one stored
        period, otherwise a temporary key computed on first use."""
        key = self._single_key()
        if key is not None:
            return key
        if self._stored_key is None:
            plan = QueryPlan(self._client, self._ttl)
            key = self.queue(plan)
            plan.execute(keep=key)
            self._stored_key = key
        return self._stored_key

    def delete(self) -> None:
        """Delete the temporary key that :attr:`redis_key` made, if any (the
        event's own keys are never deleted)."""
        if self._stored_key is not None:
            self._client.delete(self._stored_key)
            self._stored_key = None

    def __len__(self) -> int:
        return int(self._read(lambda pipeline, key: pipeline.bitcount(key)))

    def __bool__(self) -> bool:
        return int(self._read(lambda pipeline, key: pipeline.bitpos(key, 1))) >= 0

    def __contains__(self, user_id: object) -> bool:
        if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 0:
            return False
        _, offset = self._layout.split(user_id)
        return bool(self._read(lambda pipeline, key: pipeline.getbit(key, offset)))

    def __iter__(self) -> Iterator[int]:
        value = self._read(lambda pipeline, key: pipeline.get(key))
        for index, byte in enumerate(value or b""):
            if byte:
                base = index * 8
                for bit in _BYTE_BITS[byte]:
                    yield base + bit

    def get_count(self) -> int:
        """``len(self)``, by bitmapist's name."""
        return len(self)

    def has_events_marked(self) -> bool:
        """``bool(self)``, by bitmapist's name."""
        return bool(self)

    def get_uuids(self) -> Iterator[int]:
        """``iter(self)``, by bitmapist's name."""
        return iter(self)

    def __and__(self, other: object) -> EventSet:
        return self._combine("AND", other)

    def __or__(self, other: object) -> EventSet:
        return self._combine("OR", other)

    def __xor__(self, other: object) -> EventSet:
        return self._combine("XOR", other)

    def __sub__(self, other: object) -> EventSet:
        return self._combine("DIFF", other)

    def __invert__(self) -> EventSet:
        return self._derive(_Combination("NOT", (self._node,)))

    def __repr__(self) -> str:
        return f"<EventSet {_describe(self._node)}>"

    def _combine(self, operation: _Operation, other: object) -> EventSet:
        if isinstance(other, EventSet):
            if other._client is not self._client:
                raise ValueError(
                    "Sets of two Redis clients cannot be combined; "
                    f"got {self!r} and {other!r}."
                )
            other_node = other._node
        elif isinstance(key := getattr(other, "redis_key", None), str):
            # One of bitmapist's objects, on the same Redis by the caller's word.
            other_node = _KeyLeaf(key)
        else:
            raise TypeError(
                "An EventSet combines with another EventSet or an object with a "
                f"redis_key (bitmapist's), got {other!r}."
            )
        operands: tuple[_Node, ...] = (self._node, other_node)
        node = self._node
        # a & b & c is one BITOP AND of three keys, not two BITOPs.
        if isinstance(node, _Combination) and node.operation == operation != "DIFF":
            operands = (*node.operands, other_node)
        return self._derive(_Combination(operation, operands))

    def _derive(self, node: _Node) -> EventSet:
        return EventSet(node, self._client, layout=self._layout, temp_key_ttl=self._ttl)

    def _single_key(self) -> str | None:
        node = self._node
        if isinstance(node, _KeyLeaf):
            return node.key
        if isinstance(node, _PeriodLeaf):
            keys = self._layout.keys(node.event_name, node.period)
            if len(keys) == 1:
                return keys[0]
        return self._stored_key

    def _read(self, queue: Callable[[Any, str], object]) -> Any:
        """Queue the combination, then ``queue(pipeline, key)``'s read of its
        result, and run both in one round trip."""
        key = self._single_key()
        if key is not None:
            pipeline = self._client.pipeline(transaction=False)
            queue(pipeline, key)
            return pipeline.execute()[0]
        plan = QueryPlan(self._client, self._ttl)
        key = self.queue(plan)
        queue(plan.pipeline, key)
        index = len(plan.pipeline) - 1
        return plan.execute()[index]

    def queue(self, plan: QueryPlan) -> str:
        """Queue in ``plan`` the commands that compute the set; return the key
        that will hold it (an event's own key when no command is needed)."""
        return self._emit(plan, self._node)

    def _emit(self, plan: QueryPlan, node: _Node) -> str:
        if isinstance(node, _KeyLeaf):
            return node.key
        if isinstance(node, _PeriodLeaf):
            return plan.union(list(self._layout.keys(node.event_name, node.period)))
        sources = [self._emit(plan, operand) for operand in node.operands]
        destination = plan.new_key()
        if node.operation == "DIFF":
            # a AND NOT b would cut a to b's length; a XOR (a AND b) does not.
            common = plan.new_key()
            plan.bitop("AND", common, *sources)
            plan.bitop("XOR", destination, sources[0], common)
        else:
            plan.bitop(node.operation, destination, *sources)
        return destination


_Operation = Literal["AND", "OR", "XOR", "NOT", "DIFF"]
_SYMBOLS = {"AND": " & ", "OR": " | ", "XOR": " ^ ", "DIFF": " - "}


def _describe(node: _Node) -> str:
    if isinstance(node, _KeyLeaf):
        return node.key
    if isinstance(node, _PeriodLeaf):
        return f"{node.event_name} {node.period.label}"
    if node.operation == "NOT":
        return f"~({_describe(node.operands[0])})"
    inner = _SYMBOLS[node.operation].join(_describe(item) for item in node.operands)
    return f"({inner})"


def period_of(time_group: str, when: datetime, offset: int = 0) -> Period:
    """The period of ``time_group`` (validated) ``offset`` periods from the one
    that holds ``when``."""
    return Period.of(unit_of_time_group(time_group), when).shift(offset)


def chained_set(
    client: redis.Redis,
    base_event_name: str,
    chained: Sequence[tuple[str, str]],
    period: Period,
    layout: KeyLayout = BITMAPIST,
) -> EventSet:
    """``base_event_name`` chained with ``(event name, op)`` pairs in
    ``period``: each OR binds to its direct predecessor, then the groups are
    ANDed: ``A and B or C and D`` is ``A & (B | C) & D``."""
    groups: list[list[str]] = [[base_event_name]]
    for event_name, op in chained:
        if op == "or":
            groups[-1].append(event_name)
        else:
            groups.append([event_name])
    unions = [
        functools.reduce(
            operator.or_,
            (EventSet.of_period(name, period, client, layout=layout) for name in group),
        )
        for group in groups
    ]
    return functools.reduce(operator.and_, unions)


def get_event_data(
    event_name: str,
    time_group: str = "days",
    now: datetime | None = None,
    system: str | None = None,
) -> EventSet:
    """The users who did ``event_name`` in the period that holds ``now``.

    :param event_name: the event.
    :param time_group: days, weeks, months or years (or the singular).
    :param now: a time in the period; naive datetimes are UTC. Default: now.
    :param system: a system name; default the current app's, or
        ``"default"`` outside an app.
    :returns: an :class:`EventSet`; a year is the union of its twelve months,
        computed when it is read.
    :raises ValueError: for an invalid event name, time group or time.
    """
    validate_event_name(event_name)
    period = period_of(validate_time_group(time_group), to_utc(now))
    return EventSet.of_period(event_name, period, resolve_client(system))


def chain_events(
    base_event_name: str,
    events_to_chain: Sequence[Mapping[str, str]] | None,
    now: datetime | None,
    time_group: str,
    system: str | None = None,
) -> EventSet:
    """The users who did ``base_event_name`` combined with ``events_to_chain``,
    in the period of ``now``.

    Each OR binds only to its direct predecessor, and the rest is ANDed:
    ``A and B and C or D`` is ``A & B & (C | D)``, and ``A and B or C and D`` is
    ``A & (B | C) & D``. ``events_to_chain`` is not modified.

    :param base_event_name: the first event of the chain.
    :param events_to_chain: ``[{"name": ..., "op": "and" | "or"}, ...]``.
    :param now: a time in the period; naive datetimes are UTC.
    :param time_group: days, weeks, months or years (or the singular).
    :param system: a system name; default the current app's.
    :returns: an :class:`EventSet`, computed in one round trip when read.
    :raises ValueError: for invalid names, operators, time group or time.
    """
    validate_event_field("base_event_name", base_event_name)
    chained = validate_chained_events(events_to_chain, "events_to_chain")
    period = period_of(validate_time_group(time_group), to_utc(now))
    return chained_set(resolve_client(system), base_event_name, chained, period)


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
    plan = QueryPlan(resolve_client(system), current_temp_key_ttl())
    count_indexes: list[list[int]] = []
    for name in names:
        keys = [
            plan.union(list(BITMAPIST.keys(name, period_of(group, when))))
            for group in TIME_GROUPS
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
    periods = {
        group: [period_of(group, when, offset) for offset in group_offsets]
        for group, group_offsets in offsets.items()
    }
    for group_periods in periods.values():
        for period in group_periods:
            (key,) = BITMAPIST.keys(event_name, period)
            pipeline.bitcount(key)
    counts = iter(pipeline.execute())
    series = {
        group: [(period.start, int(next(counts))) for period in group_periods]
        for group, group_periods in periods.items()
    }
    return EventHistory(**series)

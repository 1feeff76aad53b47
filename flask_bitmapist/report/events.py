"""Reading: event sets, their operators and counts over periods.

An :class:`EventSet` is the users who did an event in a period, or a
combination of such sets. Combining sets costs nothing; reading one sends
every BITOP it needs, with the read, as one script per shard (see
:mod:`flask_bitmapist.store.program`): one round trip per node however
complex the combination.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..config import MAX_USER_ID, Settings
from ..state import current_state, resolve_store
from ..store.backend import Client, Store, as_store, set_bits
from ..store.idmap import RESOLVE_BATCH, canonical_id, shown
from ..store.layout import (
    TIME_GROUPS,
    KeyLayout,
    Period,
    stored_periods,
    to_utc,
    unit_of_time_group,
    validate_event_name,
)
from ..store.maintenance import event_keys
from ..store.program import PROGRAM_SCRIPT, EventKey, NamedKey, Program, Ref, Scratch

MAX_ROWS_OR_COLS = 1000
#: The most users on one page of :meth:`EventSet.page`.
MAX_PAGE_SIZE = 1000
_OPERATORS = ("and", "or")
# How many shards one round trip of EventSet.page reads.
_PAGE_SHARDS = 16


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


def validate_page_size(limit: Any, name: str = "limit") -> int:
    """Return ``limit`` if it is an int from 1 to :data:`MAX_PAGE_SIZE`.

    :raises FieldError: otherwise.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise FieldError(name, f"must be an int, got {limit!r}.")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise FieldError(name, f"must be from 1 to {MAX_PAGE_SIZE}, got {limit}.")
    return limit


@dataclass(frozen=True)
class UsersPage:
    """A page of the users of an :class:`EventSet`, in ascending order of
    their ids (with the id map: of their dense ids, the order in which the
    map first met them in bitmapist's layout; in a sharded one the 64
    buckets' ids interleave, see :mod:`~flask_bitmapist.store.idmap`).

    :ivar users: the users' ids: ints, or with the id map canonical ids
        (str).
    :ivar next_after: what to pass as ``after`` for the next page: the last
        user of this one; ``None`` on the last page.
    """

    users: list[int | str]
    next_after: int | str | None


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
class _PeriodsLeaf:
    """The users who did an event in any of many periods, most of which may
    have no key (see :meth:`EventSet.of_periods`)."""

    event_name: str
    periods: tuple[Period, ...]


@dataclass(frozen=True)
class _KeyLeaf:
    key: str


@dataclass(frozen=True)
class _Combination:
    operation: Literal["AND", "OR", "XOR", "NOT", "DIFF"]
    operands: tuple[_Node, ...]


_Node = _PeriodLeaf | _PeriodsLeaf | _KeyLeaf | _Combination


class EventSet:
    """A set of user ids stored in Redis: the users who did an event in a
    period, or a combination of such sets.

    ``len()``, ``in``, iteration (user ids in ascending order) and ``bool``
    each cost one round trip per node of the store, plus, in a sharded
    layout, one to learn its shards (``list(s)`` costs twice that: Python
    asks ``len()`` first, to size the list). :meth:`page` reads the users a
    page at a time.

    With the id map (``BITMAPIST_ID_MAP``), iteration yields each user's
    canonical id (see :func:`~flask_bitmapist.store.idmap.canonical_id`) in
    the order of their dense ids (see :class:`UsersPage`), resolved in one
    round trip per node for each 1,000 users, and ``in`` takes any spelling
    of an id (one more round trip for an id this process has not met). An id
    never marked is in no set. ``len`` counts bits, so ``len(~s)`` also
    counts dense ids the map has not handed out yet, which iteration leaves
    out.

    The operators ``&`` (and), ``|`` (or), ``^`` (either, not both), ``-``
    (and not) and ``~`` (not) build a new set without touching Redis;
    reading it runs the whole combination,
    shard by shard, in one script per shard (see
    :mod:`flask_bitmapist.store.program`) whose temporary keys are deleted
    before it ends.

    ``~s``, as bitmapist's ``BitOpNot``, holds the ids from 0 to the end of
    the last byte of ``s``'s key that are not in ``s``; in a sharded layout,
    that is within each shard that holds data, to the end of the last byte
    of that shard's key. ``a - b`` is exact whatever the sizes of ``a`` and
    ``b``.

    For bitmapist's classes, a set in bitmapist's layout offers ``redis_key``
    and ``system`` (its Redis client): ``BitOpAnd(s.system, s, other)`` works
    as with 0.1.x's results. Reading ``redis_key`` of a combination stores it
    in a temporary key once, with a TTL of ``BITMAPIST_TEMP_KEY_TTL``
    seconds; :meth:`delete` frees it at once. ``get_count()``,
    ``has_events_marked()`` and ``get_uuids()`` are bitmapist's names for
    ``len``, ``bool`` and ``iter``.
    """

    def __init__(
        self,
        node: _Node,
        store: Store | Client,
        *,
        layout: KeyLayout | None = None,
        temp_key_ttl: int | None = None,
    ) -> None:
        self._node = node
        self._store = as_store(store, layout)
        self._ttl = current_temp_key_ttl() if temp_key_ttl is None else temp_key_ttl
        self._stored_key: str | None = None

    @classmethod
    def of_period(
        cls,
        event_name: str,
        period: Period,
        store: Store | Client,
        *,
        layout: KeyLayout | None = None,
    ) -> EventSet:
        """The users who did ``event_name`` in ``period``, in ``store`` (or a
        client, with ``layout`` as :func:`as_store` picks it)."""
        return cls(_PeriodLeaf(event_name, period), store, layout=layout)

    @classmethod
    def of_periods(
        cls, event_name: str, periods: Sequence[Period], store: Store
    ) -> EventSet:
        """The users who did ``event_name`` in any of ``periods``, read as
        the OR of the keys that exist among theirs
        (:meth:`~flask_bitmapist.store.program.Program.union_existing`): for
        long runs of periods of which most hold nothing, such as an event's
        history since 1970."""
        return cls(_PeriodsLeaf(event_name, tuple(periods)), store)

    @property
    def system(self) -> Client:
        """The Redis client the set lives on."""
        return self._store.client

    @property
    def store(self) -> Store:
        """The store the set lives in."""
        return self._store

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
        period, otherwise a temporary key computed on first use.

        :raises ValueError: in a sharded layout, where a set spans a key per
            shard.
        """
        self._require_one_shard("redis_key")
        key = self._single_key()
        if key is not None:
            return key
        if self._stored_key is None:
            program = Program()
            result = self.emit(program)
            if not isinstance(result, Scratch):
                result = program.bitop("OR", [result])
            program.keep(result)
            name = f"fb_{uuid.uuid4().hex}"
            keys, argv = program.arguments(self._store.layout, 0, name, self._ttl)
            self._store.client.eval(PROGRAM_SCRIPT, len(keys), *keys, *argv)  # type: ignore[arg-type,unused-ignore]
            self._stored_key = self._store.layout.temporary_key(
                f"{name}_{result.index}"
            )
        return self._stored_key

    def delete(self) -> None:
        """Delete the temporary key that :attr:`redis_key` made, if any (the
        event's own keys are never deleted)."""
        if self._stored_key is not None:
            self._store.client.delete(self._stored_key)
            self._stored_key = None

    def __len__(self) -> int:
        return sum(int(count) for count in self._read(Program.count))

    def __bool__(self) -> bool:
        return any(int(first) >= 0 for first in self._read(Program.first_bit))

    def __contains__(self, user_id: object) -> bool:
        if self._store.id_map is not None:
            dense = self._dense_id(user_id)
            if dense is None:
                return False
            user_id = dense
        elif isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 0:
            return False
        shard, offset = self._store.layout.split(user_id)
        (found,) = self._read(
            lambda program, ref: program.getbit(ref, offset), shards=[shard]
        )
        return bool(found)

    def __iter__(self) -> Iterator[int | str]:
        store = self._store
        shards = store.shards()
        values = self._read(Program.get, shards=shards)
        layout = store.layout
        dense_ids = itertools.chain.from_iterable(
            set_bits(value, layout.first_id(shard))
            for shard, value in zip(shards, values, strict=True)
        )
        id_map = store.id_map
        if id_map is None:
            yield from dense_ids
            return
        while chunk := list(itertools.islice(dense_ids, RESOLVE_BATCH)):
            for user in id_map.resolve(store, chunk):
                if user is not None:
                    yield user

    def page(self, limit: int = 100, after: int | str | None = None) -> UsersPage:
        """Up to ``limit`` users of the set, ascending, after the user
        ``after`` (from the first when ``None``).

        Costs one round trip per node (per 16 shards, in a sharded layout,
        until the page is full), plus, with the id map, one to turn the dense
        ids into ids and, for an ``after`` this process has not met, one to
        find it. With the map, dense ids that no user owns (in ``~s``, or
        bits written before the map) are passed over, at the cost of reading
        on. A chunk of 512 bytes of the bitmap per 4,096 ids crosses the
        network, however sparse the set.

        :param limit: from 1 to :data:`MAX_PAGE_SIZE`.
        :param after: the ``next_after`` of the previous page: a user id
            (without the map an int, or a str of decimal digits).
        :raises FieldError: for a bad ``limit``, or an ``after`` that is no
            user id (with the map: that the map does not know).
        """
        validate_page_size(limit)
        start = 0 if after is None else self._position_after(after) + 1
        store = self._store
        id_map = store.id_map
        users: list[int | str] = []
        # With the map, dense ids that no user owns (in ~s, or bits written
        # before the map) are passed over: read on until the page is full,
        # and one user more, or the set ends.
        while True:
            dense_ids = self._dense_page(start, limit + 1)
            found: Sequence[int | str | None] = (
                dense_ids if id_map is None else id_map.resolve(store, dense_ids)
            )
            for user in found:
                if user is None:
                    continue
                if len(users) == limit:
                    return UsersPage(users, users[-1])
                users.append(user)
            if len(dense_ids) <= limit:
                return UsersPage(users, None)
            start = dense_ids[-1] + 1

    def _dense_id(self, user_id: object) -> int | None:
        """The dense id of ``user_id`` in the store's map, or ``None``."""
        id_map = self._store.id_map
        assert id_map is not None
        try:
            canonical = canonical_id(user_id)
        except ValueError:
            return None
        (dense,) = id_map.lookup(self._store, [canonical])
        return dense

    def _position_after(self, after: int | str) -> int:
        """The dense id of a page's ``after``."""
        id_map = self._store.id_map
        if id_map is not None:
            try:
                canonical = canonical_id(after)
            except ValueError as problem:
                raise FieldError("after", f"the user id {problem}.") from None
            (dense,) = id_map.lookup(self._store, [canonical])
            if dense is None:
                raise FieldError(
                    "after", f"{shown(after)} is not a user of the id map."
                )
            return dense
        if isinstance(after, str) and after.isascii() and after.isdecimal():
            # Past every id there is: the page is empty, whatever the length.
            return int(after) if len(after) <= 10 else MAX_USER_ID
        if isinstance(after, int) and not isinstance(after, bool) and after >= 0:
            return min(after, MAX_USER_ID)
        raise FieldError(
            "after", f"must be a user id of 0 or more, got {shown(after)}."
        )

    def _dense_page(self, start: int, count: int) -> list[int]:
        """The first ``count`` dense ids of the set from ``start`` on."""
        store = self._store
        layout = store.layout
        first_shard, first_offset = layout.split(start)
        shards = [shard for shard in store.shards() if shard >= first_shard]
        found: list[int] = []
        for at in range(0, len(shards), _PAGE_SHARDS):
            group = shards[at : at + _PAGE_SHARDS]
            wanted = count - len(found)
            programs: dict[int, Program] = {}
            jobs = []
            for shard in group:
                offset = first_offset if shard == first_shard else 0
                program = programs.get(offset)
                if program is None:
                    program = programs[offset] = Program()
                    program.page(self.emit(program), offset, wanted)
                jobs.append((program, shard))
            results = store.run(jobs, self._ttl)
            for shard, result in zip(group, results, strict=True):
                first = layout.first_id(shard)
                lowest = first + (first_offset if shard == first_shard else 0)
                chunks = result[0]
                for byte, chunk in zip(chunks[::2], chunks[1::2], strict=True):
                    found += [
                        user
                        for user in set_bits(chunk, first + int(byte) * 8)
                        if user >= lowest
                    ]
                if len(found) >= count:
                    return found[:count]
        return found

    def get_count(self) -> int:
        """``len(self)``, by bitmapist's name."""
        return len(self)

    def has_events_marked(self) -> bool:
        """``bool(self)``, by bitmapist's name."""
        return bool(self)

    def get_uuids(self) -> Iterator[int | str]:
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
            if (
                other._store.client is not self._store.client
                or other._store.layout != self._store.layout
            ):
                raise ValueError(
                    "Sets of two Redis clients or key layouts cannot be combined; "
                    f"got {self!r} and {other!r}."
                )
            other_node = other._node
        elif isinstance(key := getattr(other, "redis_key", None), str):
            # One of bitmapist's objects, on the same Redis by the caller's word.
            self._require_one_shard("combining with bitmapist's objects")
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
        return EventSet(node, self._store, temp_key_ttl=self._ttl)

    def _require_one_shard(self, what: str) -> None:
        layout = self._store.layout
        if layout.registry_key is not None:
            raise ValueError(
                f"EventSet {what} needs bitmapist's key layout; this set is in "
                f"{layout!r}, with a key per shard."
            )

    def _single_key(self) -> str | None:
        node = self._node
        if isinstance(node, _KeyLeaf):
            return node.key
        if isinstance(node, _PeriodLeaf):
            keys = self._store.layout.keys(node.event_name, node.period)
            if len(keys) == 1:
                return keys[0]
        return self._stored_key

    def _read(
        self,
        read: Callable[[Program, Ref], int],
        shards: Sequence[int] | None = None,
    ) -> list[Any]:
        """Run the combination and ``read(program, result)`` on each of
        ``shards`` (default: every shard that holds data); return each
        shard's result."""
        program = Program()
        read(program, self.emit(program))
        store = self._store
        chosen = store.shards() if shards is None else shards
        results = store.run([(program, shard) for shard in chosen], self._ttl)
        return [result[0] for result in results]

    def emit(self, program: Program) -> Ref:
        """Write into ``program`` the BITOPs that compute the set; return
        where it will be (an event's own key when no BITOP is needed)."""
        if self._stored_key is not None:
            return NamedKey(self._stored_key)
        return _emit(program, self._node)


def _emit(program: Program, node: _Node) -> Ref:
    if isinstance(node, _KeyLeaf):
        return NamedKey(node.key)
    if isinstance(node, _PeriodLeaf):
        return emit_period(program, node.event_name, node.period)
    if isinstance(node, _PeriodsLeaf):
        return program.union_existing(
            [
                EventKey(node.event_name, stored)
                for period in node.periods
                for stored in stored_periods(period)
            ]
        )
    sources = [_emit(program, operand) for operand in node.operands]
    if node.operation == "DIFF":
        return program.difference(*sources)
    if node.operation == "OR":
        return program.union(sources)
    return program.bitop(node.operation, sources)


def emit_period(program: Program, event_name: str, period: Period) -> Ref:
    """Write into ``program`` the users who did ``event_name`` in ``period``:
    its key, or a year's OR of its twelve months."""
    return program.union(
        [EventKey(event_name, stored) for stored in stored_periods(period)]
    )


_Operation = Literal["AND", "OR", "XOR", "NOT", "DIFF"]
_SYMBOLS = {"AND": " & ", "OR": " | ", "XOR": " ^ ", "DIFF": " - "}


def _describe(node: _Node) -> str:
    if isinstance(node, _KeyLeaf):
        return node.key
    if isinstance(node, _PeriodLeaf):
        return f"{node.event_name} {node.period.label}"
    if isinstance(node, _PeriodsLeaf):
        return f"{node.event_name} in {len(node.periods)} periods"
    if node.operation == "NOT":
        return f"~({_describe(node.operands[0])})"
    inner = _SYMBOLS[node.operation].join(_describe(item) for item in node.operands)
    return f"({inner})"


def period_of(time_group: str, when: datetime, offset: int = 0) -> Period:
    """The period of ``time_group`` (validated) ``offset`` periods from the one
    that holds ``when``.

    :raises FieldError: naming ``now`` when that period lies outside the
        years a datetime holds (1 to 9999).
    """
    try:
        return Period.of(unit_of_time_group(time_group), when).shift(offset)
    except (OverflowError, ValueError):
        raise FieldError(
            "now",
            f"is too close to the first or last day a date can hold for a "
            f"period {offset} {time_group} from it, got {when.isoformat()}.",
        ) from None


def chained_set(
    store: Store,
    base_event_name: str,
    chained: Sequence[tuple[str, str]],
    period: Period,
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
            (EventSet.of_period(name, period, store) for name in group),
        )
        for group in groups
    ]
    return functools.reduce(operator.and_, unions)


def get_event_data(
    event_name: str,
    time_group: str = "days",
    now: datetime | None = None,
    system: str | Store | None = None,
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
    return EventSet.of_period(event_name, period, resolve_store(system))


def get_users(
    event_name: str,
    time_group: str = "days",
    now: datetime | None = None,
    *,
    limit: int = 100,
    after: int | str | None = None,
    system: str | Store | None = None,
) -> UsersPage:
    """The users who did ``event_name`` in the period that holds ``now``, a
    page at a time: :meth:`EventSet.page` of :func:`get_event_data`.

    :param limit: users per page, from 1 to :data:`MAX_PAGE_SIZE`.
    :param after: the previous page's ``next_after``; ``None`` for the first.
    :raises ValueError: for an invalid event name, time group or time; a
        :exc:`FieldError` for a bad ``limit`` or ``after``.
    """
    return get_event_data(event_name, time_group, now, system).page(limit, after)


def chain_events(
    base_event_name: str,
    events_to_chain: Sequence[Mapping[str, str]] | None,
    now: datetime | None,
    time_group: str,
    system: str | Store | None = None,
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
    return chained_set(resolve_store(system), base_event_name, chained, period)


def list_event_names(prefix: str = "", system: str | Store | None = None) -> list[str]:
    """The names of every event in Redis that starts with ``prefix``, sorted.

    Like bitmapist's ``get_event_names``, it walks the keys with SCAN (never
    KEYS, which would block Redis), so it costs one round trip per 10,000 keys;
    unlike it, it never lists the temporary keys of a query as an event.

    :param prefix: keep only the names that start with it.
    :param system: a bitmapist system name; default the current app's.
    """
    return sorted({name for _, name, _ in event_keys(resolve_store(system), prefix)})


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
    event_names: Iterable[str],
    now: datetime | None = None,
    system: str | Store | None = None,
) -> dict[str, PeriodCounts]:
    """Each event's user count for the day, ISO week, month and year of ``now``.

    One round trip per node however many events there are: a program per
    shard and :data:`EVENTS_PER_PROGRAM` events, each counting its events'
    periods, with each year's OR of its twelve months built in a scratch key.
    The ``"redis"`` engine first reads the size of the first event's keys,
    and puts in a script only as many events as read
    :data:`_SCRIPT_BYTES`, each script in a round trip of its own when that
    is fewer than :data:`EVENTS_PER_PROGRAM`.

    :param event_names: the events to count.
    :param now: a time in the periods; naive datetimes are UTC. Default: now.
    :param system: a bitmapist system name, or a store; default the current
        app's.
    :raises ValueError: for an invalid time.
    """
    names = list(event_names)
    when = to_utc(now)
    store = resolve_store(system)
    periods = [period_of(group, when) for group in TIME_GROUPS]
    shards = store.shards()
    per_program = EVENTS_PER_PROGRAM
    if store.engine == "redis" and names:
        per_program = _events_per_script(store, shards, names[0], periods)
    programs = []
    for start in range(0, len(names), per_program):
        program = Program()
        for name in names[start : start + per_program]:
            for period in periods:
                program.count(emit_period(program, name, period))
        programs.append(program)
    totals = sum_shard_counts(
        store, programs, shards, apart=per_program < EVENTS_PER_PROGRAM
    )
    return {
        name: PeriodCounts(*totals[index * 4 : index * 4 + 4])
        for index, name in enumerate(names)
    }


#: Events per program of :func:`count_events`, so that a script of an
#: overview of thousands of events holds its node for milliseconds, not
#: seconds (nor past a client's socket timeout).
EVENTS_PER_PROGRAM = 100
#: The most bytes of bitmaps one script of :func:`count_events` counts or
#: ORs (the ``"redis"`` engine): about 2 ms on the development machine. On
#: 3,000,000 ids (375 KB keys) an event's 15 keys are 5.6 MB: one event a
#: script, sent a round trip each, where 100 took 400 ms, past the default
#: socket timeout (scripts/bench_curve.py).
_SCRIPT_BYTES = 8 << 20


def _events_per_script(
    store: Store, shards: list[int], name: str, periods: Sequence[Period]
) -> int:
    """How many events a script may count to read at most
    :data:`_SCRIPT_BYTES`, from the sizes of the first event's keys (one
    round trip)."""
    probe = Program()
    for period in periods:
        probe.count(emit_period(probe, name, period))
    per_event = sum(store.stored_sizes(probe, shards))
    return max(1, min(EVENTS_PER_PROGRAM, _SCRIPT_BYTES // max(per_event, 1)))


def sum_shard_counts(
    store: Store,
    programs: Sequence[Program],
    shards: Sequence[int] | None = None,
    *,
    apart: bool = False,
) -> list[int]:
    """Run ``programs``, whose reads are all counts, on every shard of
    ``store`` (``shards``, when the caller has read them); return their
    counts, in order, each summed over the shards.

    :param apart: as :meth:`~flask_bitmapist.store.backend.Store.run`'s.
    """
    if shards is None:
        shards = store.shards()
    results = store.run(
        [(program, shard) for program in programs for shard in shards],
        current_temp_key_ttl(),
        apart=apart,
    )
    totals: list[int] = []
    for number, program in enumerate(programs):
        sums = [0] * program.reads
        for result in results[number * len(shards) : (number + 1) * len(shards)]:
            for index, count in enumerate(result):
                sums[index] += int(count)
        totals += sums
    return totals


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
    system: str | Store | None = None,
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
    offsets = {group: range(1 - length, 1) for group, length in lengths.items()}
    periods = {
        group: [period_of(group, when, offset) for offset in group_offsets]
        for group, group_offsets in offsets.items()
    }
    program = Program()
    for group_periods in periods.values():
        for period in group_periods:
            program.count(EventKey(event_name, period))
    counts = iter(sum_shard_counts(resolve_store(system), [program]))
    series = {
        group: [(period.start, next(counts)) for period in group_periods]
        for group, group_periods in periods.items()
    }
    return EventHistory(**series)

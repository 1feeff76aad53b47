"""The one place that writes marks to Redis: a sync and a background writer.

Both send a batch of marks in one round trip, scripts that run the SETBITs
``bitmapist.mark_event`` would send (:data:`SCRIPT_SETBITS` at most each).
The sync writer does it before the call returns. The background writer
queues marks (with the time they were made), and a daemon thread writes them
in batches, retrying failed batches with capped exponential backoff: SETBIT
is idempotent, so a retry cannot double count.

:func:`is_outage` tells a Redis that takes no write for now (down, a read-only
replica, out of memory...), whose writes the background writer retries, from
one that refused a write for good (a key of another type), whose marks are
dropped. Failures are logged by episode rather than one line each (see
:mod:`flask_bitmapist.store.episodes`): an outage, and a full queue dropping marks,
each log their first failure, a reminder at most once a minute while they
last, and one line when they end.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol, cast

import redis

from ..config import Settings, numpy_installed
from .backend import Client, Script, Store, as_store, is_cluster
from .episodes import Episode, Line
from .idmap import MAP_AND_SETBITS_SCRIPT, IdMap, IdMapFull
from .layout import EVER, BitmapistLayout, KeyLayout, Period, to_mark_time

logger = logging.getLogger("flask_bitmapist")

#: The most marks the background writer takes in one batch.
MAX_BATCH = 10_000
#: The most SETBITs one script of :func:`write_marks` sends (a bitmap counts
#: as :data:`DENSE_MARKS` of them), so that a script holds Redis about a
#: millisecond: 1,500 is the month, week and day of 500 marks. A batch with
#: more goes as several scripts in one round trip, between which Redis
#: answers its other clients. Part (h) of scripts/bench.py measures both
#: beside back-to-back batches of 2,000 marks of ids spread over 16 million:
#: the time a script runs in Redis, and a second client's PING p99 (README,
#: performance).
SCRIPT_SETBITS = 1_500
_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 2.0


class Mark(NamedTuple):
    """One user event to set (``value=1``) or clear (``value=0``) in Redis.

    ``user_id`` is an int, the user's bit offset, or with the id map
    (``BITMAPIST_ID_MAP``) a canonical id (a str, see
    :func:`~flask_bitmapist.store.idmap.canonical_id`) that the store's map
    turns into one when the mark is written.
    """

    event_name: str
    user_id: int | str
    when: datetime
    track_hourly: bool
    track_unique: bool
    value: int = 1


#: ``Mark`` from a tuple of all six fields, without the Python call of a
#: NamedTuple's ``__new__``: the request thread builds each mark, where a
#: Python call costs about 0.5 us with Flask's work leaving the caches cold.
new_mark = cast(
    Callable[[tuple[str, int | str, datetime, bool, bool, int]], Mark],
    functools.partial(tuple.__new__, Mark),
)
#: The time now in UTC, as marks take it.
utc_now = functools.partial(datetime.now, timezone.utc)


@dataclass(frozen=True)
class WriterStats:
    """Counters of one writer since it started (or since the process forked).

    In sync mode ``queued == written + dropped``. In background mode
    ``queued == written + pending + dropped`` once the marks a full queue
    dropped (never queued) are taken out of ``dropped``.

    :ivar mode: ``"sync"`` or ``"background"``.
    :ivar queued: marks the writer took: in sync mode every mark it tried to
        write; in background mode every mark that found room in the queue.
    :ivar written: marks Redis confirmed written (their batch's script ran).
    :ivar retried: marks whose first write failed with an outage (Redis
        down, unreachable, timing out, or taking no write for now: see
        :func:`~flask_bitmapist.store.writer.is_outage`), and that were sent again;
        each counts once, however many attempts it took. They end up in
        ``written``, or in ``dropped`` when the process exits first. Always 0
        in sync mode, which does not retry.
    :ivar dropped: marks given up, never written. In background mode: those
        that found the queue full (never queued), those of a batch Redis
        refused (a key of another type), those of a batch that failed for a
        reason other than Redis (logged with a traceback), and those still
        failing after the exit flush. In sync mode: those of a failed write.
    :ivar pending: queued marks neither written nor dropped yet: waiting in
        the queue or in the batch being written. Always 0 in sync mode.
    :ivar last_error: the message of the last error a write raised (from Redis
        or not), or ``None``.
    :ivar last_error_at: when that error happened, an aware UTC datetime.
    """

    mode: str
    queued: int = 0
    written: int = 0
    retried: int = 0
    dropped: int = 0
    pending: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None


class Writer(Protocol):
    """What every writer offers the rest of the extension.

    ``submit_many`` returns the marks that went through: written in sync
    mode, queued in background mode. ``flush``
    returns whether everything got through: all it waited for is written, and
    no mark was dropped since the previous ``flush`` call.
    """

    def submit(self, mark: Mark) -> None: ...

    def submit_many(self, marks: Sequence[Mark]) -> Sequence[Mark]: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def stats(self) -> WriterStats: ...


def mark_periods(mark: Mark) -> list[Period]:
    """The periods ``bitmapist.mark_event`` writes for ``mark``: its month, ISO
    week and day, then its hour and :data:`~flask_bitmapist.store.layout.EVER`
    (the unique key) when the mark tracks them."""
    when = mark.when
    periods = [
        Period.of("month", when),
        Period.of("week", when),
        Period.of("day", when),
    ]
    if mark.track_hourly:
        periods.append(Period.of("hour", when))
    if mark.track_unique:
        periods.append(EVER)
    return periods


# One EVAL per batch: every SETBIT of the batch runs in Redis with a single
# reply. Through a pipeline, packing the commands and parsing one reply per bit
# cost the writer thread about 9 us of CPU per mark (with redis-py's pure-Python
# parser), CPU that a host app's request threads pay for through the GIL; this
# way it is about 1 us (scripts/bench.py). The offsets of each key travel as one
# space-separated string, one for the bits to set and one for those to clear.
SETBITS_SCRIPT = """
for index, key in ipairs(KEYS) do
    for offset in string.gmatch(ARGV[2 * index - 1], "%d+") do
        redis.call("SETBIT", key, offset, 1)
    end
    for offset in string.gmatch(ARGV[2 * index], "%d+") do
        redis.call("SETBIT", key, offset, 0)
    end
end
return #KEYS
"""


#: The longest key a bitmap is ORed into whole, in bytes. Redis lays the
#: bitmap in a scratch key from byte 0 and ORs it into the key, a pass each
#: over the longer of the two: measured on Redis 7.0, 0.07 ns a byte up to 4
#: MiB (0.3 ms), 0.9 ns a byte from 16 MiB, where the scratch key's memory is
#: no longer at hand (15 ms for a 16 MiB key, 62 ms for 64 MiB). A bitmap
#: that ends past it goes as SETBITs (0.8 us each in a script); one for a
#: key that is longer is ORed into the bytes it covers only.
PIECE_KEY_BYTES = 1 << 22

# A batch of which some keys have many marks close together (an import's
# months, weeks and days) sends those as bitmaps built here, the others as
# SETBITs, in one script (a batch stays atomic, and stops at the first key
# Redis refuses, as SETBITS_SCRIPT does): KEYS[1] and KEYS[2] scratch keys
# of their slot, KEYS[3..] the keys; ARGV, three words a key: "p", the byte
# its piece starts at and the piece, or "s", the offsets to set and to
# clear. A piece is laid at its byte in the first scratch key and ORed into
# the key; BITOP writes the key anew, so its TTL is put back, less the time
# the BITOP took (PEXPIRE counts from when it runs). Into a key longer than
# PIECE_KEY_BYTES (some other id made it so after the writer chose a
# bitmap), the piece is ORed with the bytes it covers, copied to the second
# scratch key, and written back over them (SETRANGE keeps the TTL): a cost
# of the piece's length, whatever the key's. Under pcall, so that the
# scratch keys are deleted whatever fails (a key of another type).
BITS_AND_PIECES_SCRIPT = """
local scratch, covered = KEYS[1], KEYS[2]
local function now()
    local time = redis.call("TIME")
    return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function or_covered(key, first, piece)
    redis.call("SET", scratch, piece)
    redis.call("SET", covered, redis.call("GETRANGE", key, first, first + #piece - 1))
    redis.call("BITOP", "OR", scratch, scratch, covered)
    redis.call("SETRANGE", key, first, redis.call("GET", scratch))
    redis.call("DEL", scratch, covered)
end
local ok, problem = pcall(function()
    for index = 3, #KEYS do
        local key, base = KEYS[index], 3 * (index - 3)
        if ARGV[base + 1] == "p" then
            local first, piece = tonumber(ARGV[base + 2]), ARGV[base + 3]
            local longest = math.max(redis.call("STRLEN", key), first + #piece)
            if longest > PIECE_KEY_BYTES then
                or_covered(key, first, piece)
            else
                local ttl, started = redis.call("PTTL", key), now()
                redis.call("SETRANGE", scratch, first, piece)
                redis.call("BITOP", "OR", key, key, scratch)
                redis.call("DEL", scratch)
                if ttl > 0 then
                    redis.call("PEXPIRE", key, math.max(1, ttl - (now() - started)))
                end
            end
        else
            for offset in string.gmatch(ARGV[base + 2], "%d+") do
                redis.call("SETBIT", key, offset, 1)
            end
            for offset in string.gmatch(ARGV[base + 3], "%d+") do
                redis.call("SETBIT", key, offset, 0)
            end
        end
    end
end)
redis.call("DEL", scratch, covered)
if not ok then
    if type(problem) == "table" and problem.err then problem = problem.err end
    return redis.error_reply(tostring(problem))
end
return #KEYS - 2
""".replace("PIECE_KEY_BYTES", str(PIECE_KEY_BYTES))

#: The fewest marks of a key in a batch that may go as a bitmap: below, a
#: BITOP over a long key could cost more than the SETBITs.
DENSE_MARKS = 256
#: The most bytes of bitmap a key's marks may span, per mark, to go as a
#: bitmap: sending 512 bytes costs less than one SETBIT in a script.
DENSE_BYTES_PER_MARK = 512


def dense_pieces(
    bits_by_key: dict[str, dict[int, int]],
) -> dict[str, tuple[int, bytes]]:
    """The keys of ``bits_by_key`` to write as bitmaps: those that only set
    bits, at least :data:`DENSE_MARKS` of them, spanning at most
    :data:`DENSE_BYTES_PER_MARK` bytes a mark; for each, the byte its piece
    starts at and the piece (Redis's bit order: bit 0 is the high bit of
    byte 0)."""
    pieces: dict[str, tuple[int, bytes]] = {}
    previous: tuple[dict[int, int], tuple[int, bytes]] | None = None
    for key, bits in bits_by_key.items():
        if len(bits) < DENSE_MARKS:
            continue
        if previous is not None and bits == previous[0]:
            # The month, week and day keys of a batch often take the same bits.
            pieces[key] = previous[1]
            continue
        if not is_dense(bits) or 0 in bits.values():
            continue
        pieces[key] = bitmap_piece(bits)
        previous = (bits, pieces[key])
    return pieces


def is_dense(offsets: Collection[int]) -> bool:
    """Whether bits at ``offsets`` (distinct) go to Redis as a bitmap rather
    than a SETBIT each: at least :data:`DENSE_MARKS` of them, spanning at
    most :data:`DENSE_BYTES_PER_MARK` bytes each, and ending within
    :data:`PIECE_KEY_BYTES`."""
    if len(offsets) < DENSE_MARKS:
        return False
    last = max(offsets) >> 3
    size = last - (min(offsets) >> 3) + 1
    return size <= DENSE_BYTES_PER_MARK * len(offsets) and last < PIECE_KEY_BYTES


def bitmap_piece(offsets: Collection[int]) -> tuple[int, bytes]:
    """The byte where the bitmap of ``offsets`` (repeats allowed, at least
    one) starts, and its bytes from there to its last set bit, in Redis's bit
    order (bit 0 is the high bit of byte 0). With numpy (the ``fast`` extra)
    the bits are laid in C: about 15 ns an offset against 80 in Python."""
    if numpy_installed():
        import numpy

        array = numpy.fromiter(offsets, dtype=numpy.int64, count=len(offsets))
        first = int(numpy.min(array)) >> 3
        bitmap = numpy.zeros(
            (int(numpy.max(array)) >> 3) - first + 1, dtype=numpy.uint8
        )
        masks = (0x80 >> (array & 7)).astype(numpy.uint8)
        numpy.bitwise_or.at(bitmap, (array >> 3) - first, masks)
        return first, bitmap.tobytes()
    first = min(offsets) >> 3
    piece = bytearray((max(offsets) >> 3) - first + 1)
    for offset in offsets:
        piece[(offset >> 3) - first] |= 0x80 >> (offset & 7)
    return first, bytes(piece)


def bits_set(piece: bytes) -> int:
    """The number of bits set in ``piece`` (numpy's popcount when installed)."""
    if numpy_installed():
        import numpy

        return int(numpy.bitwise_count(numpy.frombuffer(piece, numpy.uint8)).sum())
    return int.from_bytes(piece, "big").bit_count()


class PartialWrite(Exception):
    """Some marks of a batch were written and others not: on a cluster, those
    of the nodes that failed; with the id map, on any store, those of new ids
    the full map refused; on any store, those of times outside 1970 to 2099.
    Not a :exc:`redis.RedisError`, so that no caller
    takes it for a whole batch's failure.

    :ivar error: the first outage (see :func:`is_outage`) of the shards that
        failed, or, when there is none, the first refusal.
    :ivar unwritten: the marks of the shards whose node had an outage: to
        send again.
    :ivar refused: the marks of the shards whose node refused them for good
        (a key of another type), those of new ids the id map had no dense id
        left for (:exc:`~flask_bitmapist.store.idmap.IdMapFull`), and those
        whose time is outside 1970 to 2099 (:exc:`MarkOutsideYears`): sending
        them again cannot help.
    """

    def __init__(
        self,
        error: redis.RedisError,
        unwritten: list[Mark],
        refused: list[Mark] | None = None,
    ) -> None:
        self.refused = refused or []
        super().__init__(
            f"{len(unwritten) + len(self.refused)} marks were not written: {error}"
        )
        self.error = error
        self.unwritten = unwritten


def write_marks(
    store: Store | Client,
    marks: Iterable[Mark],
    known_shards: set[int] | None = None,
) -> None:
    """Write ``marks`` to their keys in ``store``'s layout (a client's, as
    :func:`~flask_bitmapist.store.backend.as_store` picks it).

    On one node, in one round trip: one script, or several of at most
    :data:`SCRIPT_SETBITS` SETBITs each. On a cluster, in the scripts of
    each shard, the shards of one node in one round trip, all nodes at
    once. Within a batch the last mark of a (key, user) pair wins, and
    repeats of the same bit are sent once.

    In a sharded layout, a shard not in ``known_shards`` is recorded in the
    layout's registry (see :mod:`~flask_bitmapist.store.backend`) in the same
    round trip, and added to ``known_shards`` once written: pass the same set
    to every call to write each shard's bit once per process.

    With the store's id map, marks of canonical ids are written at their
    dense ids: those the map's cache knows at once; new ones in the same
    script as the bits on one node in bitmapist's layout, else in one round
    trip (per node) before.

    :raises redis.ResponseError: when Redis rejects a write (a key holding
        another type, or a server that takes no write for now: see
        :func:`is_outage`); the bits before it in its script are written,
        and the other scripts of the batch run.
    :raises redis.RedisError: when Redis cannot be reached.
    :raises PartialWrite: on a cluster, when only some nodes took their part;
        with the id map, when it had no dense id left for some new ids; for
        marks whose time is not from 1970 to 2099 (:exc:`MarkOutsideYears`),
        which are left out, the others written.
    """
    store = as_store(store)
    layout = store.layout
    cluster = is_cluster(store.client)
    # Each canonical id's dense id, or "#j" for the j-th new id when the map
    # and the bits go in one script; -1 for a refused one.
    dense_of: dict[str, int | str] | None = None
    new_ids: list[str] = []
    id_map = store.id_map
    marks = marks if isinstance(marks, Sequence) else list(marks)
    if id_map is not None:
        # New ids are mapped in the script that sets the bits when it stays
        # within SCRIPT_SETBITS (a month, week and day a mark, and its hour
        # and unique key when it tracks them): a larger batch maps them
        # first, in a round trip of their own, and its bits go as any
        # batch's.
        # Counted mark by mark only for a batch of 300 to 500 marks.
        together = not cluster and (
            len(marks) * 5 <= SCRIPT_SETBITS
            or (
                len(marks) * 3 <= SCRIPT_SETBITS
                and sum(3 + mark.track_hourly + mark.track_unique for mark in marks)
                <= SCRIPT_SETBITS
            )
        )
        dense_of, new_ids = _dense_ids(id_map, store, marks, together=together)
    refused: list[Mark] = []
    out_of_years: list[Mark] = []
    bits_by_key: dict[str, dict[int, int]] = {}
    # Marks of one batch share a handful of groups (event, day, hour, flags,
    # shard): per mark the loop builds a tuple, finds its group and keeps the
    # offset; each group's keys are named once, and its offsets reach them
    # all at once. A batch that clears bits is written mark by mark into its
    # keys, so that the last mark of a (key, user) pair wins.
    groups: dict[tuple[str, int, int, int, bool, bool, int], _Group] = {}
    clearing = any(not mark.value for mark in marks)
    # bitmapist's layout has one shard and the id as the offset: no call per
    # mark for it (5% of the writer's instructions per mark, callgrind).
    split = None if isinstance(layout, BitmapistLayout) else layout.split
    marks_by_shard: dict[int, list[Mark]] = {}
    shard_of_key: dict[str, int] = {}
    for mark in marks:
        user_id = mark.user_id
        if dense_of is not None and user_id.__class__ is str:
            user_id = dense_of[user_id]
            if user_id == _REFUSED:
                refused.append(mark)
                continue
            if user_id == _UNKNOWN:
                continue
        if split is None:
            shard = 0
            offset = user_id
        else:
            shard, offset = split(user_id)  # type: ignore[arg-type]
        when = mark.when
        hourly = mark.track_hourly
        key = (
            mark.event_name,
            when.year,
            when.month * 100 + when.day,
            when.hour if hourly else -1,
            hourly,
            mark.track_unique,
            shard,
        )
        group = groups.get(key)
        if group is None:
            group = groups[key] = _group(layout, mark, shard)
            for name in group.keys:
                shard_of_key[name] = shard
                bits_by_key.setdefault(name, {})
        if not group.keys:
            out_of_years.append(mark)
            continue
        if cluster:
            marks_by_shard.setdefault(shard, []).append(mark)
        if clearing:
            for name in group.keys:
                bits_by_key[name][offset] = mark.value  # type: ignore[index]
        else:
            group.offsets.append(offset)  # type: ignore[arg-type]
    if not clearing:
        for group in groups.values():
            if group.offsets:
                ones = dict.fromkeys(group.offsets, 1)
                for name in group.keys:
                    bits_by_key[name].update(ones)
    if bits_by_key:
        try:
            dense = _write_bits(
                store,
                bits_by_key,
                known_shards,
                shard_of_key,
                marks_by_shard,
                new_ids,
            )
        except PartialWrite as partial:
            # Some nodes failed: the marks the full map refused go with
            # those the nodes refused.
            partial.refused += refused + out_of_years
            raise
        if -1 in dense:
            full = {
                canonical
                for canonical, value in zip(new_ids, dense, strict=True)
                if value == -1
            }
            refused += [mark for mark in marks if mark.user_id in full]
    if refused:
        assert id_map is not None
        ids = len({mark.user_id for mark in refused})
        raise PartialWrite(
            IdMapFull(
                f"The id map is full: {ids} new ids "
                "would get dense ids above BITMAPIST_MAX_USER_ID "
                f"({id_map.limit})."
            ),
            [],
            refused + out_of_years,
        )
    if out_of_years:
        raise PartialWrite(
            MarkOutsideYears(
                f"{len(out_of_years)} marks have times outside 1970 to 2099 "
                f"(UTC), the first {out_of_years[0].when.isoformat()}."
            ),
            [],
            out_of_years,
        )


class _Group(NamedTuple):
    """The keys of one group of a batch's marks (none for a time outside
    1970 to 2099), and the offsets of its marks."""

    keys: list[str]
    offsets: list[int]


def _group(layout: KeyLayout, mark: Mark, shard: int) -> _Group:
    """The group of ``mark``'s event, day, hour, flags and shard. The time is
    checked once per group: the reports read an event's history within the
    years a mark may have, so a mark outside them has no keys, and is
    refused."""
    try:
        to_mark_time(mark.when)
    except ValueError:
        return _Group([], [])
    return _Group(
        [layout.key(mark.event_name, period, shard) for period in mark_periods(mark)],
        [],
    )


class MarkOutsideYears(redis.ResponseError):
    """A mark's time is not from 1970 to 2099
    (:func:`~flask_bitmapist.store.layout.to_mark_time`), where the reports
    read an event's history. A :exc:`redis.ResponseError` that is no outage,
    so the writers count and log such marks as refused (dropped), write the
    others of the batch, and do not retry them."""


# In _dense_ids' answer: a new id the full map refused, and an id only
# cleared that the map does not know.
_REFUSED = -1
_UNKNOWN = -2


def _dense_ids(
    id_map: IdMap, store: Store, marks: Sequence[Mark], *, together: bool
) -> tuple[dict[str, int | str], list[str]]:
    """Each canonical id of ``marks`` and its dense id: from the map's cache,
    else allocated now (one round trip per node), or, when ``together`` and
    the map and the layout each have one bucket and one shard, ``"#j"`` for
    the j-th of the new ids returned, which the write's own script
    allocates."""
    setting: set[str] = set()
    ids: dict[str, None] = {}
    for mark in marks:
        user_id = mark.user_id
        if user_id.__class__ is str:
            ids[user_id] = None
            if mark.value:
                setting.add(user_id)
    dense_of: dict[str, int | str] = {}
    new_ids: list[str] = []
    for canonical, dense in zip(ids, id_map.cached_many(list(ids)), strict=True):
        if dense is None:
            new_ids.append(canonical)
            dense_of[canonical] = _REFUSED
        else:
            dense_of[canonical] = dense
    # An id only cleared is looked up, not allocated: an id never marked
    # has no bit to clear, and needs no dense id.
    clearing = [canonical for canonical in new_ids if canonical not in setting]
    if clearing:
        for canonical, found in zip(
            clearing, id_map.lookup(store, clearing), strict=True
        ):
            dense_of[canonical] = _UNKNOWN if found is None else found
        new_ids = [canonical for canonical in new_ids if canonical in setting]
    if not new_ids:
        return dense_of, []
    if together and id_map.buckets == 1 and isinstance(store.layout, BitmapistLayout):
        for number, canonical in enumerate(new_ids, 1):
            dense_of[canonical] = f"#{number}"
        return dense_of, new_ids
    for canonical, dense in zip(new_ids, id_map.allocate(store, new_ids), strict=True):
        dense_of[canonical] = dense
    return dense_of, []


def _write_bits(
    store: Store,
    bits_by_key: dict[str, dict[int, int]],
    known_shards: set[int] | None,
    shard_of_key: dict[str, int],
    marks_by_shard: dict[int, list[Mark]],
    new_ids: list[str],
) -> list[int]:
    """Send the bits; with ``new_ids``, allocate them in the same script and
    return their dense ids (-1: refused)."""
    layout = store.layout
    cluster = is_cluster(store.client)
    registry = layout.registry_key
    new_shards: list[int] = []
    if registry is not None:
        shards = set(shard_of_key.values())
        new_shards = sorted(shards - (known_shards or set()))
    if new_ids:
        id_map = store.id_map
        assert id_map is not None
        entries = _entries(bits_by_key, {})
        keys = [*id_map.keys(0), *(key for key, _, _ in entries)]
        reply: list[int] = store.client.eval(  # type: ignore[assignment,unused-ignore]
            MAP_AND_SETBITS_SCRIPT,
            len(keys),
            *keys,
            str(id_map.limit),
            str(len(new_ids)),
            *new_ids,
            # No pieces here: each entry is "s" and two strings.
            *(str(word) for _, entry, _ in entries for word in entry[1:]),
        )
        dense = [int(value) for value in reply]
        id_map.remember(
            (canonical, value)
            for canonical, value in zip(new_ids, dense, strict=True)
            if value >= 0
        )
        return dense
    if not cluster:
        if new_shards:
            bits_by_key = {registry: dict.fromkeys(new_shards, 1), **bits_by_key}  # type: ignore[dict-item]
        _run_scripts(store, _scripts(layout, bits_by_key, dense_pieces(bits_by_key)))
    else:
        _write_shards(store, bits_by_key, shard_of_key, marks_by_shard, new_shards)
    if known_shards is not None:
        known_shards.update(new_shards)
    return []


def registry_script(registry: str, shards: Iterable[int]) -> Script:
    """The script that records ``shards`` in the layout's ``registry`` key."""
    return (SETBITS_SCRIPT, [registry], [" ".join(map(str, shards)), ""])


def _entries(
    bits_by_key: dict[str, dict[int, int]],
    pieces: dict[str, tuple[int, bytes]],
) -> list[tuple[str, tuple[str, str | int, str | bytes], int]]:
    """Each key of ``bits_by_key`` with the words of
    :data:`BITS_AND_PIECES_SCRIPT` that write its bits, and what they cost
    Redis in SETBITs: its piece (``"p"``, counted as :data:`DENSE_MARKS`
    SETBITs, the fewest marks a piece stands for), or its offsets to set and
    to clear (``"s"``), a third of :data:`SCRIPT_SETBITS` at most an entry,
    so that a script takes the same offsets of a month, a week and a day."""
    chunk = max(1, SCRIPT_SETBITS // 3)
    entries: list[tuple[str, tuple[str, str | int, str | bytes], int]] = []
    previous: dict[int, int] | None = None
    words: list[tuple[tuple[str, str | int, str | bytes], int]] = []
    for key, bits in bits_by_key.items():
        if key in pieces:
            entries.append((key, ("p", *pieces[key]), DENSE_MARKS))
            continue
        # The month, week and day keys of a batch's marks usually take the
        # same bits: their offsets are written out once.
        if bits != previous:
            clearing = 0 in bits.values()
            offsets = list(bits)
            words = []
            for start in range(0, len(offsets), chunk):
                part = offsets[start : start + chunk]
                if clearing:
                    to_set = " ".join([str(user) for user in part if bits[user]])
                    to_clear = " ".join([str(user) for user in part if not bits[user]])
                else:
                    to_set, to_clear = " ".join(map(str, part)), ""
                words.append((("s", to_set, to_clear), len(part)))
            previous = bits
        entries += [(key, entry, cost) for entry, cost in words]
    return entries


def _scripts(
    layout: KeyLayout,
    bits_by_key: dict[str, dict[int, int]],
    pieces: dict[str, tuple[int, bytes]],
) -> list[Script]:
    """The scripts that write ``bits_by_key`` (``pieces``: the keys that go as
    bitmaps, see :func:`dense_pieces`), in order, each sending at most
    :data:`SCRIPT_SETBITS` SETBITs (or one key's entry, whatever it costs):
    :data:`SETBITS_SCRIPT` when it has no piece, else
    :data:`BITS_AND_PIECES_SCRIPT` with two scratch keys (of shard 0, on
    one node), the same for each script."""
    groups: list[list[tuple[str, tuple[str, str | int, str | bytes]]]] = []
    cost = 0
    for key, entry, entry_cost in _entries(bits_by_key, pieces):
        if not groups or cost + entry_cost > SCRIPT_SETBITS:
            groups.append([])
            cost = 0
        groups[-1].append((key, entry))
        cost += entry_cost
    scripts: list[Script] = []
    scratch: list[str] | None = None
    for group in groups:
        keys = [key for key, _ in group]
        if not any(entry[0] == "p" for _, entry in group):
            scripts.append(
                (
                    SETBITS_SCRIPT,
                    keys,
                    [word for _, entry in group for word in entry[1:]],
                )
            )
            continue
        if scratch is None:
            # One pair for the batch: each script deletes them as it ends.
            name = f"write_{uuid.uuid4().hex}"
            scratch = [
                layout.temporary_key(name, 0),
                layout.temporary_key(f"{name}_covered", 0),
            ]
        scripts.append(
            (
                BITS_AND_PIECES_SCRIPT,
                [*scratch, *keys],
                [word for _, entry in group for word in entry],
            )
        )
    return scripts


def _run_scripts(store: Store, scripts: list[Script]) -> None:
    """Run ``scripts`` on one node: one EVAL, or several in one round trip,
    between which Redis answers its other clients. Each runs whatever the
    others do (SETBITs may be sent again); the first outage among their
    errors is raised (see :func:`is_outage`), else the first error."""
    if len(scripts) == 1:
        text, keys, args = scripts[0]
        store.client.eval(text, len(keys), *keys, *args)  # type: ignore[arg-type,unused-ignore]
        return
    errors = [reply for reply in store.execute(scripts) if isinstance(reply, Exception)]
    if errors:
        raise ([error for error in errors if _outage(error)] or errors)[0]


def _write_shards(
    store: Store,
    bits_by_key: dict[str, dict[int, int]],
    shard_of_key: dict[str, int],
    marks_by_shard: dict[int, list[Mark]],
    new_shards: list[int],
) -> None:
    """The scripts of each shard (:data:`SCRIPT_SETBITS` SETBITs at most
    each), and one for the registry's new shards, each node's in one round
    trip (see :meth:`~flask_bitmapist.store.backend.Store.execute`);
    :exc:`PartialWrite` names the marks of what failed."""
    keys_by_shard: dict[int, dict[str, dict[int, int]]] = {}
    for key, bits in bits_by_key.items():
        keys_by_shard.setdefault(shard_of_key[key], {})[key] = bits
    # Each shard's scripts, SCRIPT_SETBITS SETBITs at most each, and the
    # shard each script is of.
    shard_of_script: list[int] = []
    scripts: list[Script] = []
    for shard in sorted(keys_by_shard):
        shard_scripts = _scripts(store.layout, keys_by_shard[shard], {})
        scripts += shard_scripts
        shard_of_script += [shard] * len(shard_scripts)
    registry = store.layout.registry_key
    if new_shards and registry is not None:
        scripts.append(registry_script(registry, new_shards))
    replies = store.execute(scripts)
    failed: dict[int, Any] = {}
    for shard, reply in zip(shard_of_script, replies, strict=False):
        # A shard whose scripts met an outage is sent again, whatever else
        # its other scripts met.
        if isinstance(reply, Exception) and not _outage(failed.get(shard)):
            failed[shard] = reply
    if new_shards and isinstance(replies[-1], Exception):
        # Written again, with the registry, until a query can find them.
        failed.update(dict.fromkeys(new_shards, replies[-1]))
    if failed:
        errors_of: dict[int, redis.RedisError] = {}
        for shard, error in failed.items():
            if not isinstance(error, redis.RedisError):
                raise error
            errors_of[shard] = error
        outages = {shard for shard, error in errors_of.items() if is_outage(error)}
        errors = [errors_of[shard] for shard in sorted(outages)] or list(
            errors_of.values()
        )
        raise PartialWrite(
            errors[0],
            [mark for shard in sorted(outages) for mark in marks_by_shard[shard]],
            [
                mark
                for shard in sorted(set(failed) - outages)
                for mark in marks_by_shard[shard]
            ],
        )


# The replies of a Redis that takes no write for now, whatever the keys; see
# is_outage.
_OUTAGE_CODES = frozenset(
    {
        "BUSY",
        "CLUSTERDOWN",
        "MASTERDOWN",
        "MISCONF",
        "NOREPLICAS",
        "OOM",
        "READONLY",
        "TRYAGAIN",
    }
)
# The classes redis-py raises for some of them, with the code cut from the
# message. All exist from redis-py 5.0 (the oldest this package takes) to 8.x;
# ClusterDownError covers its subclass MasterDownError.
_OUTAGE_CLASSES = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    # A slot moved (a failover, a resharding): the next attempt, with the
    # slot map read again, reaches the node that serves it now.
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
)
# A reply's code: its first word, after the wrapper that Redis before 7 puts
# around the error of a command a script ran ("Error running script (call to
# f_<sha1>): @user_script:4: @user_script: 4: -OOM command not allowed...").
# A whole word, so that BUSYGROUP (a stream's group exists) is not BUSY.
_REPLY_CODE = re.compile(
    r"(?:Error running script \(call to f_[0-9a-f]+\): (?:@user_script: ?\d+: )*-?)?"
    r"([A-Z]+)\b"
)


def _outage(reply: object) -> bool:
    """Whether ``reply`` is an error that :func:`is_outage` calls an outage."""
    return isinstance(reply, redis.RedisError) and is_outage(reply)


def is_outage(error: redis.RedisError) -> bool:
    """Whether ``error`` says Redis takes no write for now, so that the same
    write works later: the background writer retries it, and the sync writer
    logs it as one outage, not once per request. Otherwise Redis refused this
    write for good (``WRONGTYPE``: a key of another type), and retrying cannot
    help: only the app's owner can.

    An outage is every error that is not a reply (``redis.ResponseError``):
    Redis down, unreachable, timing out, or loading its data. And these
    replies, which refuse every write of the moment, not this one:

    - ``READONLY``: the server is a replica, as the old primary is during a
      failover, until the client reaches the new primary.
    - ``MASTERDOWN``: a replica that lost its primary, with
      ``replica-serve-stale-data no``, until the link is back.
    - ``NOREPLICAS``: fewer replicas in sync than ``min-replicas-to-write``,
      until they catch up.
    - ``OOM``: memory full with ``maxmemory-policy noeviction``, until keys
      expire or are deleted, or ``maxmemory`` is raised.
    - ``MISCONF``: the last RDB save failed with
      ``stop-writes-on-bgsave-error yes``, until a save works.
    - ``BUSY``: a script or function running past ``busy-reply-threshold``,
      until it ends or is killed.
    - ``TRYAGAIN`` and ``CLUSTERDOWN``: a cluster resharding a slot, or with
      slots no node serves, until it settles.
    - ``MOVED`` and ``ASK``: a slot now served by another node, after a
      failover or while it migrates; the next attempt goes there.
    """
    if not isinstance(error, redis.ResponseError):
        return True
    if isinstance(error, _OUTAGE_CLASSES):
        return True
    code = _REPLY_CODE.match(str(error))
    return code is not None and code[1] in _OUTAGE_CODES


def _forget_after(
    store: Store, known_shards: set[int], error: redis.RedisError
) -> None:
    """What a writer forgets after a failed write. The shards it recorded:
    a registry bit may be what failed, or be lost with a master, so every
    shard is recorded again from the next write on. After an outage, the
    dense ids it cached: a failover can lose a master's last allocations
    (replication is asynchronous), and a dense id the new master hands to
    another user must not stay this process's for the old one."""
    known_shards.clear()
    if store.id_map is not None and is_outage(error):
        store.id_map.clear_cache()


def _event_names(marks: Sequence[Mark]) -> str:
    return ", ".join(sorted({repr(mark.event_name) for mark in marks}))


class SyncWriter:
    """Writes each mark before :meth:`submit` returns.

    A failed write is counted as dropped and logged: a write Redis refuses (a
    key of another type) each time; an outage (see :func:`is_outage`) as one
    episode, its first failure, a reminder at most once a minute with the
    marks dropped since, and ``Redis recovered`` at the next write that works.
    With ``raise_errors`` the error is raised to the caller too.

    :param clock: the clock of the episodes' log lines; tests pass one they
        control.
    """

    def __init__(
        self,
        store: Store | Client,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = as_store(store)
        self._known_shards: set[int] = set()
        self._raise_errors = settings.raise_errors
        self._lock = threading.Lock()
        self._stats = WriterStats(mode="sync")
        self._outage = Episode(clock=clock)
        self._dropped_at_flush = 0

    def submit(self, mark: Mark) -> None:
        self.submit_many([mark])

    def submit_many(self, marks: Sequence[Mark]) -> Sequence[Mark]:
        """Write ``marks`` in one round trip (per node, on a cluster).

        :returns: the marks written: all of them, or none when the write
            failed (counted as dropped, and logged). When only part of them
            failed (the nodes of a cluster that did not take theirs, the new
            ids a full id map refused), the others (counted as written; the
            rest as dropped).
        :raises redis.RedisError: when the write failed and ``raise_errors``
            is set.
        """
        written: Sequence[Mark] = ()
        try:
            try:
                write_marks(self._store, marks, self._known_shards)
            except PartialWrite as partial:
                failed = {id(mark) for mark in (*partial.unwritten, *partial.refused)}
                written = [mark for mark in marks if id(mark) not in failed]
                raise partial.error from None
        except redis.RedisError as error:
            self._forget_after(error)
            line = self._failed(marks, len(written), error)
            if line is not None:
                line.log()
            if self._raise_errors:
                raise
            return written
        with self._lock:
            self._count(queued=len(marks), written=len(marks))
            recovered = self._outage.end()
        if recovered is not None:
            logger.warning(
                "Redis recovered after %.1f s: %d marks were dropped while it failed.",
                recovered.seconds,
                recovered.total,
            )
        return marks

    def flush(self, timeout: float | None = None) -> bool:
        """Nothing waits in a sync writer.

        :returns: whether no mark was dropped since the previous call.
        """
        with self._lock:
            dropped = self._stats.dropped
            clean = dropped == self._dropped_at_flush
            self._dropped_at_flush = dropped
            return clean

    def stats(self) -> WriterStats:
        with self._lock:
            return self._stats

    def _forget_after(self, error: redis.RedisError) -> None:
        _forget_after(self._store, self._known_shards, error)

    def _failed(
        self, marks: Sequence[Mark], written: int, error: redis.RedisError
    ) -> Line | None:
        # Only a cluster's partial write has written marks here.
        dropped = len(marks) - written
        with self._lock:
            self._count(
                queued=len(marks), written=written, dropped=dropped, error=error
            )
            refused = not is_outage(error)
            starts = not refused and self._outage.add(dropped)
            tally = None if refused or starts else self._outage.reminder()
        if refused:
            # Retrying cannot help (a key of another type): only the app's
            # owner can fix it, so each refusal is logged with its events.
            return Line(
                logging.ERROR,
                "Redis refused mark %s, dropped %d: %s",
                (_event_names(marks), dropped, error),
            )
        if starts:
            return Line(
                logging.ERROR,
                "Could not write mark %s, dropped %d (while Redis fails, marks "
                "are dropped and a reminder is logged at most once a minute): %s",
                (_event_names(marks), dropped, error),
            )
        if tally is None:
            return None
        return Line(
            logging.ERROR,
            "Redis still failing after %.1f s: %d marks dropped since the last "
            "line, %d in all: %s",
            (tally.seconds, tally.recent, tally.total, error),
        )

    def _count(
        self,
        *,
        queued: int = 0,
        written: int = 0,
        dropped: int = 0,
        error: Exception | None = None,
    ) -> None:
        stats = self._stats
        self._stats = replace(
            stats,
            queued=stats.queued + queued,
            written=stats.written + written,
            dropped=stats.dropped + dropped,
            last_error=str(error) if error else stats.last_error,
            last_error_at=datetime.now(timezone.utc) if error else stats.last_error_at,
        )


class BackgroundWriter:
    """Queues marks and writes them from a daemon thread in batches.

    The request thread only appends to a bounded deque, without a lock
    (``deque.extend`` is atomic): about 0.3 us, against 1.9 us when every
    mark took the writer's lock. The thread
    writes a batch every ``flush_interval`` seconds, or as soon as
    ``flush_at`` marks are waiting: the request that fills the queue to
    ``flush_at`` wakes it, once per batch. When the queue is full, new marks
    are dropped and counted; the caller never blocks. The bound is checked
    before appending, so requests of several threads appending at the same
    instant may pass it by the marks they carry. The thread starts on the
    first mark, so a process forked after ``init_app`` (a gunicorn worker)
    starts its own.

    A batch that fails with an outage (see :func:`is_outage`) is retried
    until it is written; one that Redis refused for good (a key of another
    type) is dropped and logged each time.

    Two episodes are logged (see :class:`~flask_bitmapist.store.episodes.Episode`).
    An outage: the first failed attempt, a reminder at most once a minute (the
    attempts since, the marks waiting), and ``Redis recovered after N s`` when
    a write works again. The queue dropping marks: one line from the request
    that starts it, reminders from the writer thread, and one line when the
    writer, taking a batch, finds room and no drop since it took the previous
    one.

    :param clock: the clock of the episodes' log lines; tests pass one they
        control.
    """

    def __init__(
        self,
        store: Store | Client,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = as_store(store)
        self._known_shards: set[int] = set()
        self._flush_interval = settings.flush_interval
        self._flush_at = settings.flush_at
        self._queue_size = settings.queue_size
        self._exit_timeout = settings.exit_timeout
        self._clock = clock
        self._reset()
        self_ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call_alive(self_ref, "_reset"))
        atexit.register(_call_alive, self_ref, "_flush_at_exit")
        _live_writers.add(self)

    def _reset(self) -> None:
        # Runs at construction and in a forked child: the parent's thread did
        # not survive the fork, and the parent writes the marks it had queued.
        self._cond = threading.Condition(threading.Lock())
        # Request threads append without the lock; only the writer thread
        # takes marks out, under the lock, counting them in _taken. So
        # _taken + len(_queue), read under the lock, is every mark queued so
        # far.
        self._queue: deque[Mark] = deque()
        self._thread: threading.Thread | None = None
        self._taken = 0
        self._wake_requested = False
        self._done = 0
        self._written = 0
        self._flush_requested = False
        self._closing = False
        self._retried = 0
        self._dropped = 0
        self._dropped_at_flush = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        # Both episodes are changed only under self._cond, and the lines they
        # decide are logged once it is released. Under it, because request
        # threads and the writer thread share the full queue's episode, and
        # one rule for both keeps the outage's safe the day a second thread
        # touches it too. Outside it, because a slow log handler would hold up
        # every request thread waiting in submit_many.
        self._outage = Episode(clock=self._clock)
        self._queue_full = Episode(clock=self._clock)

    def submit(self, mark: Mark) -> None:
        self.submit_many((mark,))

    def submit_many(self, marks: Sequence[Mark]) -> Sequence[Mark]:
        """Queue ``marks``; those that find the queue full are dropped.

        :returns: the marks queued: the first ones, up to the room left.
        """
        queue = self._queue
        if self._thread is None or len(queue) + len(marks) > self._queue_size:
            return self._submit_locked(marks)
        queue.extend(marks)
        if len(queue) >= self._flush_at and not self._wake_requested:
            self._wake()
        return marks

    def _wake(self) -> None:
        with self._cond:
            self._wake_if_full()

    def _wake_if_full(self) -> None:
        # Under the lock. The thread may have taken the batch since the
        # caller looked: a request left set over a short queue would let the
        # next batch wait for the interval.
        if len(self._queue) >= self._flush_at:
            self._wake_requested = True
            self._cond.notify_all()

    def _submit_locked(self, marks: Sequence[Mark]) -> Sequence[Mark]:
        """:meth:`submit_many` when the thread is to start or the queue may be
        full: under the lock, which the drops' episode needs."""
        with self._cond:
            queue = self._queue
            accepted = max(0, min(self._queue_size - len(queue), len(marks)))
            dropped = len(marks) - accepted
            starts_dropping = False
            if dropped:
                self._dropped += dropped
                starts_dropping = self._queue_full.add(dropped)
            if accepted:
                queue.extend(marks[:accepted])
                if self._thread is None:
                    self._start_thread()
                else:
                    self._wake_if_full()
        if starts_dropping:
            # The one line the request path logs; the writer thread logs the
            # reminders and the end.
            logger.warning(
                "Dropped %d marks: the write queue is full (BITMAPIST_QUEUE_SIZE "
                "%d). New marks are dropped until it has room; a reminder is "
                "logged at most once a minute.",
                dropped,
                self._queue_size,
            )
        return marks[:accepted]

    def _queued(self) -> int:
        # Under the lock: every mark queued so far.
        return self._taken + len(self._queue)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every mark queued so far is written or dropped.

        :param timeout: the most seconds to wait; ``None`` waits for as long
            as it takes.
        :returns: whether everything got through: all it waited for was
            written before the timeout, and no mark was dropped since the
            previous call (by a full queue, or in a batch that could not be
            written). Each drop makes one call return ``False``, the first to
            return after it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued()
            if self._done < target:
                self._flush_requested = True
                self._cond.notify_all()
            while self._done < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            dropped = self._dropped
            clean = self._done >= target and dropped == self._dropped_at_flush
            self._dropped_at_flush = dropped
            return clean

    def stats(self) -> WriterStats:
        with self._cond:
            queued = self._queued()
            return WriterStats(
                mode="background",
                queued=queued,
                written=self._written,
                retried=self._retried,
                dropped=self._dropped,
                pending=queued - self._done,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
            )

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="flask-bitmapist-writer", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._write_until_done(batch)

    def _next_batch(self) -> list[Mark] | None:
        with self._cond:
            deadline = time.monotonic() + self._flush_interval
            while (
                len(self._queue) < self._flush_at
                and not self._flush_requested
                and not self._closing
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._closing and not self._queue:
                return None
            line = self._queue_full_line(taking_batch=True)
            size = min(len(self._queue), MAX_BATCH)
            batch = [self._queue.popleft() for _ in range(size)]
            self._taken += size
            self._wake_requested = False
            if not self._queue:
                self._flush_requested = False
        if line is not None:
            line.log()
        return batch

    def _write_until_done(self, batch: list[Mark]) -> None:
        backoff = _BACKOFF_FIRST
        retrying = False
        while True:
            try:
                try:
                    write_marks(self._store, batch, self._known_shards)
                except PartialWrite as partial:
                    # The nodes that took their part are done, those that
                    # refused theirs for good too; only the marks of nodes
                    # that failed for now are sent again.
                    refused = partial.refused
                    with self._cond:
                        self._finish(
                            len(batch) - len(partial.unwritten) - len(refused),
                            written=True,
                        )
                        if refused:
                            self._record_error(partial.error)
                            self._finish(len(refused), written=False)
                    if refused:
                        logger.error(
                            "Redis refused %d marks of a batch: %s",
                            len(refused),
                            partial.error,
                        )
                    batch = partial.unwritten
                    if not batch:
                        return
                    raise partial.error from None
            except redis.RedisError as error:
                self._forget_after(error)
                if not is_outage(error):
                    # Redis refused a write for good (a key of another type):
                    # retrying cannot help, and would hold back every mark
                    # behind it.
                    logger.error(
                        "Redis refused a batch of %d marks: %s", len(batch), error
                    )
                    with self._cond:
                        self._record_error(error)
                        self._finish(len(batch), written=False)
                    return
                with self._cond:
                    self._record_error(error)
                    if self._closing:
                        # The exit flush gave up and logged what was left.
                        self._finish(len(batch), written=False)
                        return
                    if not retrying:
                        self._retried += len(batch)
                        retrying = True
                    lines = (
                        self._outage_line(len(batch), error),
                        # Stuck on this batch, the thread takes no other: the
                        # full queue's reminders come from here meanwhile.
                        self._queue_full_line(taking_batch=False),
                    )
                for line in lines:
                    if line is not None:
                        line.log()
                time.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_CAP)
            except Exception as error:
                # Not a Redis failure: the same batch would fail on every retry,
                # and the thread must live on for the marks behind it.
                logger.exception(
                    "Dropped %d marks that could not be written", len(batch)
                )
                with self._cond:
                    self._record_error(error)
                    self._finish(len(batch), written=False)
                return
            else:
                with self._cond:
                    line = self._recovered_line()
                # Logged before the batch counts as done, so that a flush that
                # sees it done also finds the line in the log.
                if line is not None:
                    line.log()
                with self._cond:
                    self._finish(len(batch), written=True)
                return

    def _forget_after(self, error: redis.RedisError) -> None:
        _forget_after(self._store, self._known_shards, error)

    def _outage_line(self, batch_size: int, error: redis.RedisError) -> Line | None:
        # Under the lock, after a failed attempt.
        if self._outage.add():
            return Line(
                logging.WARNING,
                "Could not write %d marks, retrying until Redis takes them (a "
                "reminder is logged at most once a minute): %s",
                (batch_size, error),
            )
        tally = self._outage.reminder()
        if tally is None:
            return None
        return Line(
            logging.WARNING,
            "Redis still failing after %.1f s: %d attempts since the last line, "
            "%d marks waiting: %s",
            (tally.seconds, tally.recent, self._queued() - self._done, error),
        )

    def _recovered_line(self) -> Line | None:
        # Under the lock, after a write that worked.
        ended = self._outage.end()
        if ended is None:
            return None
        return Line(
            logging.WARNING,
            "Redis recovered after %.1f s (%d failed attempts).",
            (ended.seconds, ended.total),
        )

    def _queue_full_line(self, *, taking_batch: bool) -> Line | None:
        # Under the lock. The episode ends when the thread, about to take a
        # batch, finds room: only taking a batch shrinks the queue, so room
        # now means no mark found it full (none was dropped) since the previous
        # batch. Under sustained overload it is full again by then, so the room
        # each batch frees does not end the episode.
        if taking_batch and len(self._queue) < self._queue_size:
            ended = self._queue_full.end()
            if ended is None:
                return None
            return Line(
                logging.WARNING,
                "The write queue has room again: %d marks were dropped in %.1f s.",
                (ended.total, ended.seconds),
            )
        tally = self._queue_full.reminder()
        if tally is None:
            return None
        return Line(
            logging.WARNING,
            "Still dropping marks, the write queue is full: %d dropped since the "
            "last line, %d in %.1f s.",
            (tally.recent, tally.total, tally.seconds),
        )

    def _record_error(self, error: Exception) -> None:
        self._last_error = str(error)
        self._last_error_at = datetime.now(timezone.utc)

    def _finish(self, count: int, *, written: bool) -> None:
        self._done += count
        if written:
            self._written += count
        else:
            self._dropped += count
        self._cond.notify_all()

    def _flush_at_exit(self) -> None:
        self.flush(self._exit_timeout)
        with self._cond:
            pending = self._queued() - self._done
            self._closing = True
            self._cond.notify_all()
        if pending:
            logger.error(
                "%d marks were not written in the %g s of BITMAPIST_EXIT_TIMEOUT "
                "before exit.",
                pending,
                self._exit_timeout,
            )


def _call_alive(ref: weakref.ref[BackgroundWriter], method: str) -> None:
    writer = ref()
    if writer is not None:
        getattr(writer, method)()


#: Every background writer of this process, for :func:`flush_all`. Weak, so an
#: app that is gone takes its writer with it.
_live_writers: weakref.WeakSet[BackgroundWriter] = weakref.WeakSet()


def flush_all(timeout: float | None = None) -> bool:
    """Flush every background writer in the process.

    Sync writers are left out: they have nothing to wait for, and their own
    ``flush`` (``flask_bitmapist.flush`` in their app's context) reports their
    drops.

    :param timeout: the most seconds to wait in all; ``None`` waits as long as
        it takes.
    :returns: whether every writer got through: each wrote all it waited for
        before the timeout, and dropped no mark since its previous flush.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    all_done = True
    for writer in list(_live_writers):
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        all_done = writer.flush(remaining) and all_done
    return all_done


def create_writer(store: Store, settings: Settings) -> Writer:
    """The writer that ``settings.write_mode`` asks for."""
    if settings.write_mode == "sync":
        return SyncWriter(store, settings)
    return BackgroundWriter(store, settings)

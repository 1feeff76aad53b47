"""Copying every event of one store into another store and layout: from one
node to a cluster and back, from bitmapist's layout to the sharded one and
back, or between shard sizes.

Each event period is read whole, as the bytes of one bitmap of user ids (the
shards of a sharded layout laid end to end), and cut again as the target's
layout cuts it; each target key gets its part by ``BITOP OR``, so a copy run
twice, or stopped and run again, converges on the same bits, and marks the
app writes to the target meanwhile are kept. A source key's TTL goes with it.
Then the count of every event period is compared between the two stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .backend import Script, Store
from .layout import Period
from .maintenance import event_keys
from .program import EventKey, Program
from .writer import SETBITS_SCRIPT

__all__ = [
    "MigrationResult",
    "Mismatch",
    "copy_period",
    "count_periods",
    "event_periods",
    "migrate",
]

# KEYS[1] the target key, KEYS[2] a scratch key of its slot; ARGV[1] the part
# of the bitmap, ARGV[2] a TTL in milliseconds (0: none).
_OR_INTO_SCRIPT = """
redis.call("SET", KEYS[2], ARGV[1])
redis.call("BITOP", "OR", KEYS[1], KEYS[1], KEYS[2])
redis.call("DEL", KEYS[2])
if ARGV[2] ~= "0" then redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 1
"""
# Count checks per script, so that one check holds a node only briefly.
_CHECK_CHUNK = 500


@dataclass(frozen=True)
class Mismatch:
    """An event period whose user count differs between the two stores."""

    event_name: str
    period: Period
    source: int
    target: int


@dataclass
class MigrationResult:
    """What :func:`migrate` did.

    :ivar periods: event periods copied (or, in a dry run, to copy).
    :ivar source_keys: keys read.
    :ivar target_keys: keys written (0 in a dry run).
    :ivar mismatches: event periods whose counts differ after the copy.
    """

    periods: int = 0
    source_keys: int = 0
    target_keys: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


def event_periods(store: Store) -> dict[tuple[str, Period], int]:
    """Every (event, period) that has a key in ``store``, with how many keys
    hold it (one per shard), sorted by event then period."""
    found: dict[tuple[str, Period], int] = {}
    for _, name, period in event_keys(store):
        found[name, period] = found.get((name, period), 0) + 1
    return dict(sorted(found.items(), key=lambda item: (item[0][0], item[0][1])))


def copy_period(source: Store, target: Store, event_name: str, period: Period) -> int:
    """OR ``event_name``'s ``period`` of ``source`` into ``target``; return
    how many target keys got bits."""
    bitmap, ttl = _read_period(source, event_name, period)
    layout = target.layout
    parts: dict[int, bytes] = {}
    if layout.registry_key is None:
        parts[0] = bytes(bitmap)
    else:
        shard_bytes = (layout.first_id(1)) // 8
        for start in range(0, len(bitmap), shard_bytes):
            part = bytes(bitmap[start : start + shard_bytes])
            if part.strip(b"\0"):
                parts[start // shard_bytes] = part
    scripts: list[Script] = [
        (
            _OR_INTO_SCRIPT,
            [
                layout.key(event_name, period, shard),
                layout.temporary_key(f"migrate_{event_name}", shard),
            ],
            [part, ttl],
        )
        for shard, part in parts.items()
    ]
    registry = layout.registry_key
    if registry is not None and parts:
        offsets = " ".join(str(shard) for shard in parts)
        scripts.append((SETBITS_SCRIPT, [registry], [offsets, ""]))
    for reply in target.execute(scripts):
        if isinstance(reply, Exception):
            raise reply
    return len(parts)


def _read_period(
    store: Store, event_name: str, period: Period
) -> tuple[bytearray, int]:
    """The bitmap of ``event_name``'s ``period`` (its shards laid end to end)
    and the longest TTL of its keys in milliseconds (0: none)."""
    program = Program()
    key = EventKey(event_name, period)
    program.get(key)
    program.ttl(key)
    shards = store.shards()
    bitmap = bytearray()
    ttl = 0
    for shard, (value, milliseconds) in zip(
        shards, store.run([(program, shard) for shard in shards], 0), strict=True
    ):
        if not value:
            continue
        start = store.layout.first_id(shard) // 8
        if len(bitmap) < start + len(value):
            bitmap.extend(bytes(start + len(value) - len(bitmap)))
        bitmap[start : start + len(value)] = value
        ttl = max(ttl, int(milliseconds))
    return bitmap, ttl


def count_periods(
    store: Store, periods: Iterable[tuple[str, Period]]
) -> dict[tuple[str, Period], int]:
    """Each event period's user count in ``store``, :data:`_CHECK_CHUNK` to a
    script."""
    wanted = list(periods)
    counts: dict[tuple[str, Period], int] = {}
    shards = store.shards()
    for start in range(0, len(wanted), _CHECK_CHUNK):
        chunk = wanted[start : start + _CHECK_CHUNK]
        program = Program()
        for name, period in chunk:
            program.count(EventKey(name, period))
        totals = [0] * len(chunk)
        for result in store.run([(program, shard) for shard in shards], 0):
            for index, value in enumerate(result):
                totals[index] += int(value)
        counts.update(zip(chunk, totals, strict=True))
    return counts


def migrate(
    source: Store,
    target: Store,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> MigrationResult:
    """Copy every event period of ``source`` into ``target`` (see the
    module's documentation), then compare their counts.

    :param dry_run: only count what would be copied.
    :param progress: called with 1 after each event period.
    :raises redis.RedisError: when either store fails; running it again
        goes on where it stopped, as copies converge.
    """
    periods = event_periods(source)
    result = MigrationResult(periods=len(periods), source_keys=sum(periods.values()))
    if dry_run:
        return result
    for name, period in periods:
        result.target_keys += copy_period(source, target, name, period)
        if progress is not None:
            progress(1)
    before = count_periods(source, periods)
    after = count_periods(target, periods)
    result.mismatches = [
        Mismatch(name, period, before[name, period], after[name, period])
        for name, period in periods
        if before[name, period] != after[name, period]
    ]
    return result

"""Copying every event of one store into another store and layout: from one
node to a cluster and back, from bitmapist's layout to the sharded one and
back, or between shard sizes.

Each event period is read whole, as the bytes of one bitmap of user ids (the
shards of a sharded layout laid end to end), and cut again as the target's
layout cuts it; each target key gets its part by ``BITOP OR``, so a copy run
twice, or stopped and run again, converges on the same bits, and marks the
app writes to the target meanwhile are kept. A source key's TTL goes with it
(the longest of a period's shards; none when one of them has none), and is
set on the target's key whether or not it held bits before. Then every event
period is read again from both stores, and every user of the source must be
in the target (the target may hold more: marks the app wrote there).

A period is read whole into memory: for ids spread up to 2**32, that is up to
512 MB per period, and a sparse sharded store is walked shard by shard.

**With the id map** (``BITMAPIST_ID_MAP``) on both sides, a user's dense id
in the target may differ from the source's (the maps of bitmapist's layout
and of a sharded one hand them out differently, and the target may have
met users of its own). So each source dense id is turned into its id by the
source's map and into a dense id by the target's (allocating it there when
new), once per user for the whole copy, and the bits are written at the
target's dense ids. A source bit whose dense id the source's map never
handed out (left by marks written without the map) has no user to copy: it
is counted in :attr:`MigrationResult.unmapped` and left behind. The
translation keeps each user's pair of dense ids in memory for the whole copy:
about 100 bytes a user, 1 GB at ten million.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .backend import Script, Store, set_bits
from .idmap import IdMapFull
from .layout import Period
from .maintenance import event_keys
from .program import EventKey, Program
from .writer import registry_script

__all__ = [
    "MigrationResult",
    "Mismatch",
    "Translation",
    "compare_period",
    "copy_period",
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


@dataclass(frozen=True)
class Mismatch:
    """An event period with users of the source that the target lacks.

    :ivar source: its users in the source.
    :ivar target: its users in the target.
    :ivar missing: the source's users that the target lacks.
    """

    event_name: str
    period: Period
    source: int
    target: int
    missing: int


@dataclass
class MigrationResult:
    """What :func:`migrate` did.

    :ivar periods: event periods copied (or, in a dry run, to copy).
    :ivar source_keys: keys read.
    :ivar target_keys: keys written (0 in a dry run).
    :ivar mismatches: event periods with users the target lacks after the
        copy.
    :ivar unmapped: with the id map, the source's users (dense ids) that its
        map does not know, left behind (see the module's documentation).
    """

    periods: int = 0
    source_keys: int = 0
    target_keys: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    unmapped: int = 0


# How many users one round trip of a translation resolves and allocates.
_TRANSLATE_BATCH = 10_000


class Translation:
    """The source map's dense ids turned into the target map's, each user
    looked up once for a whole copy (see the module's documentation)."""

    def __init__(self, source: Store, target: Store) -> None:
        if source.id_map is None or target.id_map is None:
            raise ValueError("A translation needs an id map in both stores.")
        self._source = source
        self._target = target
        self._dense: dict[int, int] = {}
        self._unmapped: set[int] = set()

    @property
    def unmapped(self) -> int:
        """Source dense ids met that the source's map does not know."""
        return len(self._unmapped)

    def bitmap(self, bitmap: bytearray) -> bytearray:
        """``bitmap`` of source dense ids as a bitmap of target dense ids."""
        dense_ids = list(set_bits(bytes(bitmap)))
        self._learn([user for user in dense_ids if user not in self._dense])
        translated = [
            self._dense[user] for user in dense_ids if user not in self._unmapped
        ]
        result = bytearray((max(translated) // 8 + 1) if translated else 0)
        for user in translated:
            result[user >> 3] |= 0x80 >> (user & 7)
        return result

    def _learn(self, dense_ids: list[int]) -> None:
        source, target = self._source, self._target
        assert source.id_map is not None and target.id_map is not None
        for start in range(0, len(dense_ids), _TRANSLATE_BATCH):
            chunk = [
                user
                for user in dense_ids[start : start + _TRANSLATE_BATCH]
                if user not in self._unmapped
            ]
            names = source.id_map.resolve(source, chunk)
            known = [
                (user, name)
                for user, name in zip(chunk, names, strict=True)
                if name is not None
            ]
            self._unmapped.update(
                user for user, name in zip(chunk, names, strict=True) if name is None
            )
            allocated = target.id_map.allocate(target, [name for _, name in known])
            if -1 in allocated:
                raise IdMapFull(
                    "The target's id map is full: its BITMAPIST_MAX_USER_ID "
                    f"({target.id_map.limit}) is below the users to copy."
                )
            for (user, _), dense in zip(known, allocated, strict=True):
                self._dense[user] = dense


def event_periods(store: Store) -> dict[tuple[str, Period], int]:
    """Every (event, period) that has a key in ``store``, with how many keys
    hold it (one per shard), sorted by event then period."""
    found: dict[tuple[str, Period], int] = {}
    for _, name, period in event_keys(store):
        found[name, period] = found.get((name, period), 0) + 1
    return dict(sorted(found.items(), key=lambda item: (item[0][0], item[0][1])))


def copy_period(
    source: Store,
    target: Store,
    event_name: str,
    period: Period,
    translation: Translation | None = None,
) -> int:
    """OR ``event_name``'s ``period`` of ``source`` into ``target``; return
    how many target keys got bits.

    :param translation: with the id map, the translation of the whole copy.
    """
    bitmap, ttl = _read_period(source, event_name, period)
    if translation is not None:
        bitmap = translation.bitmap(bitmap)
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
        scripts.append(registry_script(registry, parts))
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
    ttls = []
    for shard, (value, milliseconds) in zip(
        shards, store.run([(program, shard) for shard in shards], 0), strict=True
    ):
        if not value:
            continue
        start = store.layout.first_id(shard) // 8
        if len(bitmap) < start + len(value):
            bitmap.extend(bytes(start + len(value) - len(bitmap)))
        bitmap[start : start + len(value)] = value
        ttls.append(int(milliseconds))
    # -1: a key without a TTL, which none of the period's bits may lose.
    ttl = 0 if not ttls or -1 in ttls else max(ttls)
    return bitmap, ttl


def compare_period(
    source: Store,
    target: Store,
    event_name: str,
    period: Period,
    translation: Translation | None = None,
) -> Mismatch | None:
    """A :class:`Mismatch` when ``target`` lacks users of ``source`` in
    ``event_name``'s ``period``, else ``None``.

    :param translation: with the id map, the translation of the copy.
    """
    theirs, _ = _read_period(source, event_name, period)
    if translation is not None:
        theirs = translation.bitmap(theirs)
    ours, _ = _read_period(target, event_name, period)
    size = max(len(theirs), len(ours))
    wanted = int.from_bytes(theirs.ljust(size, b"\0"), "big")
    found = int.from_bytes(ours.ljust(size, b"\0"), "big")
    missing = (wanted & ~found).bit_count()
    if not missing:
        return None
    return Mismatch(event_name, period, wanted.bit_count(), found.bit_count(), missing)


def migrate(
    source: Store,
    target: Store,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> MigrationResult:
    """Copy every event period of ``source`` into ``target`` (see the
    module's documentation), then check that the target holds every user of
    the source in each.

    :param dry_run: only count what would be copied.
    :param progress: called with 1 after each event period.
    :raises ValueError: when one store has an id map and the other not.
    :raises redis.RedisError: when either store fails; running it again
        goes on where it stopped, as copies converge.
    """
    if (source.id_map is None) != (target.id_map is None):
        raise ValueError(
            "Both stores need the id map, or neither: the source has "
            f"{source.id_map!r}, the target {target.id_map!r}."
        )
    periods = event_periods(source)
    result = MigrationResult(periods=len(periods), source_keys=sum(periods.values()))
    if dry_run:
        return result
    translation = None if source.id_map is None else Translation(source, target)
    for name, period in periods:
        result.target_keys += copy_period(source, target, name, period, translation)
        if progress is not None:
            progress(1)
    result.mismatches = [
        mismatch
        for name, period in periods
        if (mismatch := compare_period(source, target, name, period, translation))
        is not None
    ]
    if translation is not None:
        result.unmapped = translation.unmapped
    return result

"""Bulk writes of many users' marks at once: the import's write path.

The writer (:mod:`~flask_bitmapist.store.writer`) takes marks one by one and
finds each one's keys. An import has hundreds of thousands of marks of a few
events and days, so it hands them over grouped: the user ids of each event
and day (or hour). Each group names its keys once, every key's user ids are
laid into one bitmap on the client (:func:`~flask_bitmapist.store.writer.bitmap_piece`),
and Redis ORs the bitmap into the key when that costs it less than a SETBIT
a bit (0.8 us each in a script), which a key whose ids lie far apart gets.

Only on one node, without the id map: the id map gives new ids their dense
ids in the order they are written, and on a cluster a key's bitmap would need
a scratch key in its slot, which bitmapist's key names cannot give. There
the groups go through :func:`~flask_bitmapist.store.writer.write_marks`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .backend import Store, is_cluster
from .layout import BitmapistLayout
from .writer import (
    BITS_AND_PIECES_SCRIPT,
    DENSE_MARKS,
    MAX_BATCH,
    PIECE_KEY_BYTES,
    Mark,
    bitmap_piece,
    bits_set,
    mark_periods,
    write_marks,
)

#: The most bytes of bitmaps Redis goes over in one script: one key of the
#: longest a bitmap is ORed into
#: (:data:`~flask_bitmapist.store.writer.PIECE_KEY_BYTES`), 0.3 ms.
SCRIPT_BYTES = PIECE_KEY_BYTES
#: The most SETBITs one script of the import sends: as many as a script of
#: the writer took before its scripts were bounded by
#: :data:`~flask_bitmapist.store.writer.SCRIPT_SETBITS`. An import is run by
#: an operator, and takes longer scripts for fewer round trips.
SCRIPT_SETBITS = 10_000
#: The most bytes of bitmap a key may have for each bit a bitmap sets in
#: it: the bitmap is built, sent and read from byte 0. Redis alone would
#: take 8 KiB a bit (a SETBIT in a script took 0.8 us, a pass over 8 KiB
#: 0.6 us), but sending costs more: importing 200,000 events over 30,000,000
#: ids, where a day's ids lie 1.7 KB apart, ran at 121,000 events/s with
#: 8 KiB, 126,000 with 2 KiB, 246,000 with 1 KiB (the days as SETBITs), and
#: 250,000 with 512 bytes; over 3,000,000 ids, 460,000 to 478,000 with each.
BYTES_PER_BIT = 1024

Group = tuple[str, datetime]


def write_user_ids(
    store: Store,
    ids_by_group: Mapping[Group, Sequence[int]],
    track_hourly: bool,
    track_unique: bool,
    known_shards: set[int],
) -> None:
    """Mark each user id of ``ids_by_group`` (bit offsets: ints from 0 to the
    app's maximum) for its group's event at its group's time, as
    :func:`~flask_bitmapist.store.writer.write_marks` would mark them, with
    ``track_hourly`` and ``track_unique``.

    :param ids_by_group: the user ids (repeats allowed) of each event name
        and time (UTC, from 1970 to 2099: the caller checks it, as the
        import's :func:`~flask_bitmapist.track.importer.parse_time` does).
    :param known_shards: the shards of a sharded layout already recorded in
        its registry, as for :func:`~flask_bitmapist.store.writer.write_marks`.
    :raises redis.RedisError: when Redis cannot be reached or refuses a key
        (one of another type); the scripts before it are written, and writing
        the same groups again converges (setting a bit is idempotent).
    :raises PartialWrite: on a cluster, or with the store's id map, as
        :func:`~flask_bitmapist.store.writer.write_marks` raises it.
    """
    if store.id_map is not None or is_cluster(store.client):
        marks = [
            Mark(event_name, user_id, when, track_hourly, track_unique)
            for (event_name, when), user_ids in ids_by_group.items()
            for user_id in user_ids
        ]
        for start in range(0, len(marks), MAX_BATCH):
            write_marks(store, marks[start : start + MAX_BATCH], known_shards)
        return
    layout = store.layout
    offsets_by_key: dict[str, list[int]] = {}
    shards: set[int] = set()
    for (event_name, when), user_ids in ids_by_group.items():
        if not user_ids:
            continue
        periods = mark_periods(Mark(event_name, 0, when, track_hourly, track_unique))
        for shard, offsets in _by_shard(store, user_ids).items():
            shards.add(shard)
            for period in periods:
                key = layout.key(event_name, period, shard)
                found = offsets_by_key.get(key)
                if found is None:
                    offsets_by_key[key] = list(offsets)
                else:
                    found.extend(offsets)
    new_shards = sorted(shards - known_shards)
    if layout.registry_key is not None and new_shards:
        # First, as write_marks records them: a query finds a shard's keys
        # through the registry.
        offsets_by_key = {layout.registry_key: new_shards, **offsets_by_key}
    _send(store, offsets_by_key)
    known_shards.update(new_shards)


def _by_shard(store: Store, user_ids: Sequence[int]) -> dict[int, Sequence[int]]:
    """``user_ids``' bit offsets in each shard of the store's layout."""
    layout = store.layout
    if isinstance(layout, BitmapistLayout):
        return {0: user_ids}
    by_shard: dict[int, list[int]] = {}
    for user_id in user_ids:
        shard, offset = layout.split(user_id)
        found = by_shard.get(shard)
        if found is None:
            by_shard[shard] = [offset]
        else:
            found.append(offset)
    return dict(by_shard)


def _send(store: Store, offsets_by_key: dict[str, list[int]]) -> None:
    """Set the bits at each key's offsets, in scripts that go over at most
    :data:`SCRIPT_BYTES` of bitmaps and send at most
    :data:`SCRIPT_SETBITS` SETBITs."""
    candidates = [
        key for key, offsets in offsets_by_key.items() if len(offsets) >= DENSE_MARKS
    ]
    lengths = dict(zip(candidates, _lengths(store, candidates), strict=True))
    name = f"write_{uuid.uuid4().hex}"
    scratch = [
        store.layout.temporary_key(name, 0),
        store.layout.temporary_key(f"{name}_covered", 0),
    ]
    keys: list[str] = []
    words: list[Any] = []
    passed = setbits = 0
    for key, offsets in offsets_by_key.items():
        for entry, entry_passed, entry_setbits in _entries(
            offsets, lengths.get(key, 0)
        ):
            if keys and (
                passed + entry_passed > SCRIPT_BYTES
                or setbits + entry_setbits > SCRIPT_SETBITS
            ):
                _run(store, scratch, keys, words)
                keys, words, passed, setbits = [], [], 0, 0
            keys.append(key)
            words += entry
            passed += entry_passed
            setbits += entry_setbits
    if keys:
        _run(store, scratch, keys, words)


def _lengths(store: Store, keys: list[str]) -> list[int]:
    """Each key's length in bytes (0 for a key that is missing or of another
    type, which the write then refuses), in one round trip."""
    if not keys:
        return []
    pipeline = store.client.pipeline(transaction=False)
    for key in keys:
        pipeline.strlen(key)
    return [
        length if isinstance(length, int) else 0
        for length in pipeline.execute(raise_on_error=False)
    ]


def _entries(
    offsets: list[int], length: int
) -> list[tuple[tuple[str, Any, Any], int, int]]:
    """The words of :data:`~flask_bitmapist.store.writer.BITS_AND_PIECES_SCRIPT`
    that set the bits at ``offsets`` (repeats allowed) in a key ``length``
    bytes long, each with the bytes of bitmap Redis goes over and the
    SETBITs it sends.

    A bitmap (``"p"``, its first byte, its bytes) when Redis goes over at
    most :data:`BYTES_PER_BIT` bytes a bit, and at most :data:`SCRIPT_BYTES`:
    it lays the bitmap in a scratch key from byte 0 and ORs it into the key,
    each a pass over the longer of the two. Else SETBITs (``"s"``, the
    distinct offsets, none to clear), :data:`SCRIPT_SETBITS`
    at most an entry."""
    if len(offsets) >= DENSE_MARKS:
        passes = max(length, (max(offsets) >> 3) + 1)
        if passes <= SCRIPT_BYTES and passes <= BYTES_PER_BIT * len(offsets):
            first, piece = bitmap_piece(offsets)
            bits = bits_set(piece)
            if bits >= DENSE_MARKS and passes <= BYTES_PER_BIT * bits:
                return [(("p", first, piece), passes, 0)]
    distinct = list(dict.fromkeys(offsets))
    return [
        (
            ("s", " ".join(map(str, distinct[start : start + SCRIPT_SETBITS])), ""),
            0,
            len(distinct[start : start + SCRIPT_SETBITS]),
        )
        for start in range(0, len(distinct), SCRIPT_SETBITS)
    ]


def _run(store: Store, scratch: list[str], keys: list[str], words: list[Any]) -> None:
    store.client.eval(BITS_AND_PIECES_SCRIPT, 2 + len(keys), *scratch, *keys, *words)

"""Bulk writes of many users' marks at once: the import's write path.

The writer (:mod:`~flask_bitmapist.store.writer`) takes marks one by one and
finds each one's keys. An import has hundreds of thousands of marks of a few
events and days, so it hands them over grouped: the user ids of each event
and day (or hour). Each group names its keys once, every key's user ids are
laid into one bitmap on the client (:func:`~flask_bitmapist.store.writer.bitmap_piece`),
and Redis ORs the bitmap into the key, where a SETBIT a mark would cost
Redis about 1.8 us and Python about 1.6 us to send.

Only on one node, without the id map: the id map gives new ids their dense
ids in the order they are written, and on a cluster a key's bitmap would need
a scratch key in its slot, which bitmapist's key names cannot give. There
the groups go through :func:`~flask_bitmapist.store.writer.write_marks`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from .backend import Store, is_cluster
from .layout import BitmapistLayout
from .writer import (
    BITS_AND_PIECES_SCRIPT,
    MAX_BATCH,
    Mark,
    bitmap_piece,
    is_dense,
    mark_periods,
    write_marks,
)

#: The most bytes of bitmaps one script carries: Redis copies each bitmap
#: and ORs it into its key, about a millisecond for a megabyte, so no script
#: holds Redis for long.
SCRIPT_BYTES = 1 << 20

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
    """Set the bits at each key's offsets, in scripts of at most
    :data:`SCRIPT_BYTES` of bitmaps and
    :data:`~flask_bitmapist.store.writer.MAX_BATCH` SETBITs."""
    scratch = store.layout.temporary_key(f"write_{uuid.uuid4().hex}", 0)
    keys: list[str] = []
    words: list[str | int | bytes] = []
    size = setbits = 0
    for key, offsets in offsets_by_key.items():
        for entry in _entries(offsets):
            keys.append(key)
            words += entry
            if entry[0] == "p":
                size += len(entry[2])
            else:
                setbits += entry[1].count(" ") + 1
            if size >= SCRIPT_BYTES or setbits >= MAX_BATCH:
                _run(store, scratch, keys, words)
                keys, words, size, setbits = [], [], 0, 0
    if keys:
        _run(store, scratch, keys, words)


def _entries(offsets: list[int]) -> Iterator[tuple[str, Any, Any]]:
    """The words of :data:`~flask_bitmapist.store.writer.BITS_AND_PIECES_SCRIPT`
    that set the bits at ``offsets`` in one key: a bitmap (``"p"``, its first
    byte, its bytes) for offsets dense enough
    (:func:`~flask_bitmapist.store.writer.is_dense`), else SETBITs (``"s"``,
    the offsets, none to clear), in pages of at most :data:`SCRIPT_BYTES`
    bytes of bitmap and :data:`~flask_bitmapist.store.writer.MAX_BATCH`
    offsets."""
    if (max(offsets) >> 3) - (min(offsets) >> 3) >= SCRIPT_BYTES:
        pages: dict[int, list[int]] = {}
        for offset in offsets:
            pages.setdefault(offset // (SCRIPT_BYTES * 8), []).append(offset)
        for page in pages.values():
            yield from _entries(page)
    elif is_dense(offsets):
        yield ("p", *bitmap_piece(offsets))
    else:
        unique = list(dict.fromkeys(offsets))
        for start in range(0, len(unique), MAX_BATCH):
            yield ("s", " ".join(map(str, unique[start : start + MAX_BATCH])), "")


def _run(store: Store, scratch: str, keys: list[str], words: list[Any]) -> None:
    store.client.eval(BITS_AND_PIECES_SCRIPT, 1 + len(keys), scratch, *keys, *words)

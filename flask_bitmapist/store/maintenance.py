"""Keeping the store: which keys there are, what they weigh, and deleting the
periods that have ended. Everything walks the keys
with SCAN, never KEYS, so Redis keeps serving while it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from .backend import Client, Store, unreachable_as_redis_error
from .layout import Period

_CHUNK = 1000


def event_keys(store: Store, prefix: str = "") -> Iterator[tuple[str, str, Period]]:
    """Yield ``(key, event name, period)`` for each event key of ``store``'s
    layout whose event name starts with ``prefix`` (on a cluster, of every
    primary node)."""
    layout = store.layout
    with unreachable_as_redis_error():
        for raw_key in store.client.scan_iter(
            match=layout.scan_pattern(prefix), count=10_000
        ):
            key = raw_key.decode("utf-8", "replace")
            parsed = layout.parse(key)
            if parsed is not None:
                yield key, *parsed


def expired_keys(store: Store, before: datetime) -> list[str]:
    """The keys of periods that end on or before ``before`` (aware); never
    the unique keys, whose period never ends."""
    return [
        key
        for key, _, period in event_keys(store)
        if (end := period.end) is not None and end <= before
    ]


def memory_by_key(client: Client, keys: list[str]) -> dict[str, int]:
    """Each key's ``MEMORY USAGE`` in bytes (0 for a key gone meanwhile), in
    one round trip per 1000 keys."""
    sizes: dict[str, int] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        pipeline = client.pipeline(transaction=False)
        for key in chunk:
            pipeline.memory_usage(key)
        sizes.update(
            (key, int(size or 0))
            for key, size in zip(chunk, pipeline.execute(), strict=True)
        )
    return sizes


def memory_by_event(store: Store) -> dict[str, tuple[int, int]]:
    """``{event name: (number of keys, bytes)}``, sorted by name."""
    keys_of: dict[str, list[str]] = {}
    for key, name, _ in event_keys(store):
        keys_of.setdefault(name, []).append(key)
    sizes = memory_by_key(
        store.client, [key for keys in keys_of.values() for key in keys]
    )
    return {
        name: (len(keys), sum(sizes[key] for key in keys))
        for name, keys in sorted(keys_of.items())
    }


def delete_keys(client: Client, keys: list[str]) -> int:
    """UNLINK ``keys`` (Redis frees their memory in the background), 1000 per
    round trip; return how many existed."""
    deleted = 0
    for start in range(0, len(keys), _CHUNK):
        # redis-py types replies as Awaitable | Any before 8, int after.
        removed = client.unlink(*keys[start : start + _CHUNK])
        deleted += int(removed)  # type: ignore[arg-type,unused-ignore]
    return deleted

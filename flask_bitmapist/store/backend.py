"""A store: a Redis (one node, or a cluster) and the layout of its keys, and
running programs on its shards.

:meth:`Store.run` sends one :data:`~flask_bitmapist.store.program.PROGRAM_SCRIPT`
per (program, shard) in one pipeline. On one node that is one round trip; on
a cluster, redis-py's cluster pipeline sends each node its scripts (a shard's
keys share a slot, so each script runs on one node), all nodes at once, and
follows a slot that moved.

**Which shards exist.** A layout of one shard has shard 0. A sharded layout
has a registry, a bitmap whose bit ``s`` the writer sets before the first
mark it writes to shard ``s`` (see :mod:`flask_bitmapist.store.writer`), so
that a query learns the shards with one GET, never a SCAN.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeAlias

import redis
from redis.cluster import RedisCluster

from .layout import BITMAPIST, KeyLayout, ShardedLayout
from .program import PROGRAM_SCRIPT, Program

__all__ = ["Client", "Store", "as_store", "is_cluster", "shards_of_bitmap"]

#: A client of one Redis node, or of a Redis Cluster.
Client: TypeAlias = "redis.Redis | RedisCluster"

# The shards of every byte value, most significant bit first, as Redis
# numbers bits.
_BYTE_BITS = tuple(
    tuple(bit for bit in range(8) if value & (0x80 >> bit)) for value in range(256)
)


def is_cluster(client: Client) -> bool:
    """Whether ``client`` is a Redis Cluster's."""
    return isinstance(client, RedisCluster)


def shards_of_bitmap(value: bytes | None) -> list[int]:
    """The numbers of the set bits of a bitmap, ascending."""
    found: list[int] = []
    for index, byte in enumerate(value or b""):
        if byte:
            base = index * 8
            found.extend(base + bit for bit in _BYTE_BITS[byte])
    return found


class Store:
    """Where an app's marks live: a Redis client and a key layout.

    :param client: a client of one Redis node or of a cluster.
    :param layout: the key layout; default bitmapist's. A cluster needs a
        layout whose shards share a slot each
        (:class:`~flask_bitmapist.store.layout.ShardedLayout`).
    """

    def __init__(self, client: Client, layout: KeyLayout = BITMAPIST) -> None:
        self.client = client
        self.layout = layout

    def __repr__(self) -> str:
        return f"Store({self.client!r}, {self.layout!r})"

    def shards(self) -> list[int]:
        """The shards that hold data, ascending: ``[0]`` for a layout of one
        shard; else those of the registry (one round trip)."""
        registry = self.layout.registry_key
        if registry is None:
            return [0]
        value: bytes | None = self.client.get(registry)  # type: ignore[assignment]
        return shards_of_bitmap(value)

    def run(self, jobs: Sequence[tuple[Program, int]], ttl: int) -> list[list[Any]]:
        """Run each ``(program, shard)`` of ``jobs`` in one round trip per
        node; return each one's results, in order.

        :param ttl: the seconds a kept scratch key lives.
        :raises redis.RedisError: the first error of any script.
        """
        if not jobs:
            return []
        name = f"fb_{uuid.uuid4().hex}"
        pipeline = self.client.pipeline(transaction=False)
        for number, (program, shard) in enumerate(jobs):
            keys, argv = program.arguments(self.layout, shard, f"{name}_{number}", ttl)
            # EVAL by name: redis-py's cluster pipeline takes the command,
            # routed by its keys' slot, but not its eval() method.
            pipeline.execute_command("EVAL", PROGRAM_SCRIPT, len(keys), *keys, *argv)
        results: list[list[Any]] = pipeline.execute()
        return results


def as_store(store: Store | Client, layout: KeyLayout | None = None) -> Store:
    """``store`` itself, or a store of the client ``store`` with ``layout``
    (default: a :class:`~flask_bitmapist.store.layout.ShardedLayout` on a
    cluster, bitmapist's on one node)."""
    if isinstance(store, Store):
        return store
    if layout is None:
        layout = ShardedLayout() if is_cluster(store) else BITMAPIST
    return Store(store, layout)

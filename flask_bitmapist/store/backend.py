"""A store: a Redis (one node, or a cluster) and the layout of its keys, and
running programs on its shards.

:meth:`Store.run` sends one :data:`~flask_bitmapist.store.program.PROGRAM_SCRIPT`
per (program, shard). On one node that is one pipeline, one round trip. On a
cluster, each node gets its scripts in a pipeline of its own (a shard's keys
share a slot, so each script runs on one node), all nodes at once, so that a
node that fails costs only its own scripts, which are sent again once the
slot map is read again (see :meth:`Store.execute`). redis-py's own cluster
pipeline would not do: a node that refuses the connection fails the whole
pipeline, and redis-py 8 asks a node (``COMMAND GETKEYS``) for the keys of
each EVAL, a round trip each, to a node that may be the one that died.

**Which shards exist.** A layout of one shard has shard 0. A sharded layout
has a registry, a bitmap whose bit ``s`` the writer sets with the first marks
it writes to shard ``s`` (see :mod:`flask_bitmapist.store.writer`), so that a
query learns the shards with one GET, never a SCAN.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeAlias

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    TryAgainError,
)

from .layout import BITMAPIST, KeyLayout, ShardedLayout
from .program import PROGRAM_SCRIPT, Program

if TYPE_CHECKING:
    from .idmap import IdMap

__all__ = [
    "Client",
    "Script",
    "Store",
    "as_store",
    "is_cluster",
    "set_bits",
    "unreachable_as_redis_error",
]

#: A client of one Redis node, or of a Redis Cluster.
Client: TypeAlias = "redis.Redis | RedisCluster"

# The set bits of every byte value, most significant bit first: Redis
# numbers bit 0 as the high bit of the first byte.
_BYTE_BITS = tuple(
    tuple(bit for bit in range(8) if value & (0x80 >> bit)) for value in range(256)
)


def is_cluster(client: Client) -> bool:
    """Whether ``client`` is a Redis Cluster's."""
    return isinstance(client, RedisCluster)


def set_bits(value: bytes | None, first: int = 0) -> Iterator[int]:
    """The numbers of the set bits of a bitmap, ascending, bit 0 numbered
    ``first``."""
    for index, byte in enumerate(value or b""):
        if byte:
            base = first + index * 8
            for bit in _BYTE_BITS[byte]:
                yield base + bit


class Store:
    """Where an app's marks live: a Redis client, a key layout, and the id
    map when user ids are mapped.

    :param client: a client of one Redis node or of a cluster.
    :param layout: the key layout; default bitmapist's. A cluster needs a
        layout whose shards share a slot each
        (:class:`~flask_bitmapist.store.layout.ShardedLayout`).
    :param id_map: the map from any user id to a dense int
        (``BITMAPIST_ID_MAP``), or ``None`` when user ids are the ints
        themselves.
    """

    def __init__(
        self,
        client: Client,
        layout: KeyLayout = BITMAPIST,
        id_map: IdMap | None = None,
    ) -> None:
        self.client = client
        self.layout = layout
        self.id_map = id_map

    def __repr__(self) -> str:
        return f"Store({self.client!r}, {self.layout!r}, {self.id_map!r})"

    def shards(self) -> list[int]:
        """The shards that hold data, ascending: ``[0]`` for a layout of one
        shard; else those of the registry (one round trip)."""
        registry = self.layout.registry_key
        if registry is None:
            return [0]
        with unreachable_as_redis_error():
            value: bytes | None = self.client.get(registry)  # type: ignore[assignment]
        return list(set_bits(value))

    def run(self, jobs: Sequence[tuple[Program, int]], ttl: int) -> list[list[Any]]:
        """Run each ``(program, shard)`` of ``jobs`` in one round trip per
        node; return each one's results, in order.

        On a cluster, the programs of a node that failed (a master killed, a
        slot moved) are sent again, up to twice, once the slot map is read
        again (see :meth:`execute`): each is self-contained, so sending it
        again is safe.

        :param ttl: the seconds a kept scratch key lives.
        :raises redis.RedisError: the first error of a program that failed
            every time.
        """
        name = f"fb_{uuid.uuid4().hex}"
        scripts: list[Script] = []
        for number, (program, shard) in enumerate(jobs):
            keys, argv = program.arguments(self.layout, shard, f"{name}_{number}", ttl)
            scripts.append((PROGRAM_SCRIPT, keys, argv))
        results = self.execute(scripts, attempts=_READ_ATTEMPTS)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def execute(self, scripts: Sequence[Script], attempts: int = 2) -> list[Any]:
        """EVAL each ``(script, keys, args)`` of ``scripts``: on one node, in
        one pipeline; on a cluster, in one pipeline per node (the node of
        each script's first key; a script's keys must share its slot), the
        nodes at once, each in a thread of its own.

        On a cluster, the scripts of a node that failed (no answer,
        ``MOVED``, ``ASK``, ``CLUSTERDOWN``, ``TRYAGAIN``) are sent again, up
        to ``attempts`` times in all, each time after the slot map is read
        again (a replica promoted since the map was read is found so); a
        slot that is migrating answers ``ASK`` until it has moved, as the
        scripts are not sent with ``ASKING``. Only
        send scripts that may run twice: SETBITs, and self-contained
        programs.

        :returns: each script's reply, or the :exc:`redis.RedisError` it
            failed with, in order. A node that cannot be reached fails its
            own scripts only.
        """
        client = self.client
        if not isinstance(client, RedisCluster):
            return _execute_on(client, scripts)  # type: ignore[arg-type,unused-ignore]
        results = _execute_on_nodes(client, scripts)
        for _ in range(attempts - 1):
            failed = [
                index
                for index, result in enumerate(results)
                if isinstance(result, Exception) and _may_pass_elsewhere(result)
            ]
            if not failed:
                break
            _reload_slots(client)
            again = _execute_on_nodes(client, [scripts[index] for index in failed])
            for index, result in zip(failed, again, strict=True):
                results[index] = result
        return results


def _may_pass_elsewhere(error: Exception) -> bool:
    """Whether ``error`` may be gone once the slot map is read again: a node
    that did not answer, or a slot that moved or has no node for now. A
    reply that refuses the script itself (a key of another type) is not."""
    return not isinstance(error, redis.ResponseError) or isinstance(
        error, (AskError, ClusterDownError, TryAgainError)
    )


#: How many times :meth:`Store.run` sends a program whose node failed.
_READ_ATTEMPTS = 3

#: A script to EVAL: its text, its keys, its other arguments.
Script = tuple[str, Sequence[str], Sequence[str | int | bytes]]


def _execute_on_nodes(client: RedisCluster, scripts: Sequence[Script]) -> list[Any]:
    """One pipeline per node, the nodes at once; each script's reply or error."""
    results: list[Any] = [None] * len(scripts)
    by_node: dict[str, tuple[ClusterNode, list[int]]] = {}
    for index, (_, keys, _) in enumerate(scripts):
        try:
            node = client.get_node_from_key(keys[0])  # type: ignore[no-untyped-call,unused-ignore]
        except RedisClusterException as error:
            # No node serves the slot now (a failover under way): an
            # outage, as the server's own CLUSTERDOWN is.
            results[index] = ClusterDownError(str(error))  # type: ignore[no-untyped-call,unused-ignore]
            continue
        by_node.setdefault(node.name, (node, []))[1].append(index)

    def run_node(node: ClusterNode, indexes: list[int]) -> None:
        connection = client.get_redis_connection(node)  # type: ignore[no-untyped-call,unused-ignore]
        try:
            replies = _execute_on(connection, [scripts[index] for index in indexes])
        except (ValueError, AttributeError) as error:
            if isinstance(error, UnicodeError):
                raise
            # What redis-py raises from a connection closed under the call (I/O
            # on a closed file, a reader set to None): another thread's
            # slot-map reload disconnects the pools it replaces. An outage,
            # as a connection reset is.
            closed = redis.ConnectionError(
                f"The connection closed during the call: {error}"
            )
            replies = [closed] * len(indexes)
        for index, reply in zip(indexes, replies, strict=True):
            results[index] = reply

    groups = list(by_node.values())
    if len(groups) > 1:
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            try:
                futures = [pool.submit(run_node, *group) for group in groups]
            except RuntimeError:
                # The interpreter is exiting (the background writer's exit
                # flush runs from atexit), and takes no new thread: one node
                # after another below.
                futures = []
            for done in futures:
                done.result()
        if futures:
            return results
    for group in groups:
        run_node(*group)
    return results


@contextlib.contextmanager
def unreachable_as_redis_error() -> Iterator[None]:
    """Raise :exc:`redis.ConnectionError` for redis-py's
    ``RedisClusterException``, which is no :exc:`redis.RedisError`: what it
    says when no node of a cluster answers, and what every caller that
    handles an unreachable Redis handles."""
    try:
        yield
    except RedisClusterException as error:
        raise redis.ConnectionError(str(error)) from error


def _execute_on(client: redis.Redis, scripts: Sequence[Script]) -> list[Any]:
    if not scripts:
        return []
    pipeline = client.pipeline(transaction=False)
    for text, keys, args in scripts:
        pipeline.eval(text, len(keys), *keys, *args)  # type: ignore[arg-type,unused-ignore]
    try:
        replies: list[Any] = pipeline.execute(raise_on_error=False)
    except redis.RedisError as error:
        # The node could not be reached: every script of it failed.
        return [error] * len(scripts)
    return replies


def _reload_slots(client: RedisCluster) -> None:
    """Read the slot map again from any node that answers; when none does,
    the next call fails again and tries again."""
    with contextlib.suppress(redis.RedisError, RedisClusterException):
        client.nodes_manager.initialize()  # type: ignore[no-untyped-call,unused-ignore]


def as_store(store: Store | Client, layout: KeyLayout | None = None) -> Store:
    """``store`` itself, or a store of the client ``store`` with ``layout``
    (default: a :class:`~flask_bitmapist.store.layout.ShardedLayout` on a
    cluster, bitmapist's on one node)."""
    if isinstance(store, Store):
        return store
    if layout is None:
        layout = ShardedLayout() if is_cluster(store) else BITMAPIST
    return Store(store, layout)

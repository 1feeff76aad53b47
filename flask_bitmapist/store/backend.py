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
from collections.abc import Callable, Iterator, Sequence
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

from ..config import QUERY_ENGINES, QueryEngine, numpy_installed
from .interpreter import Plans, Reader
from .layout import BITMAPIST, KeyLayout, ShardedLayout
from .program import PROGRAM_SCRIPT, Program

if TYPE_CHECKING:
    from .idmap import IdMap

__all__ = [
    "READ_CHUNK_BYTES",
    "Client",
    "Command",
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


def _client_runner() -> Callable[[Plans, Reader], list[list[Any]]]:
    """How the client runs programs: with numpy when it is installed
    (:mod:`.clientside`), else on Python's ints (:mod:`.intbits`)."""
    if numpy_installed():
        from .clientside import run_programs
    else:
        from .intbits import run_programs
    return run_programs


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
    :param engine: where reports' programs run (``BITMAPIST_QUERY_ENGINE``):
        ``"client"`` (``"auto"``, the default, is the client) or
        ``"redis"``; :attr:`engine` holds the one chosen.
    :raises ValueError: for an unknown engine.
    """

    def __init__(
        self,
        client: Client,
        layout: KeyLayout = BITMAPIST,
        id_map: IdMap | None = None,
        engine: QueryEngine = "auto",
    ) -> None:
        self.client = client
        self.layout = layout
        self.id_map = id_map
        self.engine = resolve_engine(engine)
        # The length of each key read last (see read): a prediction, so a
        # race between threads costs at most a longer round trip.
        self._sizes: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"Store({self.client!r}, {self.layout!r}, {self.id_map!r}, {self.engine!r})"
        )

    def shards(self) -> list[int]:
        """The shards that hold data, ascending: ``[0]`` for a layout of one
        shard; else those of the registry (one round trip)."""
        registry = self.layout.registry_key
        if registry is None:
            return [0]
        with unreachable_as_redis_error():
            value: bytes | None = self.client.get(registry)  # type: ignore[assignment]
        return list(set_bits(value))

    def run(
        self, jobs: Sequence[tuple[Program, int]], ttl: int, *, apart: bool = False
    ) -> list[list[Any]]:
        """Run each ``(program, shard)`` of ``jobs``; return each one's
        results, in order.

        With the ``"client"`` engine, the programs that can
        (:attr:`~flask_bitmapist.store.program.Program.runs_on_client`) run
        here, on the keys :meth:`read` reads (one round trip per node, and
        one per :data:`READ_CHUNK_BYTES` past the first); the others, and
        all of them with the ``"redis"`` engine, run as scripts in one round
        trip per node.

        On a cluster, the programs of a node that failed (a master killed, a
        slot moved) are sent again, up to twice, once the slot map is read
        again (see :meth:`execute`): each is self-contained, so sending it
        again is safe.

        :param ttl: the seconds a kept scratch key lives.
        :param apart: send each script in a round trip of its own (the Redis
            engine), so that Redis serves other clients between them: it
            runs the scripts of one pipeline one after another, as many as
            it reads at once.
        :raises redis.RedisError: the first error of a program that failed
            every time.
        """
        on_client = [
            index
            for index, (program, _) in enumerate(jobs)
            if self.engine == "client" and program.runs_on_client
        ]
        results: list[Any] = [None] * len(jobs)
        if on_client:
            run_programs = _client_runner()
            plans = [
                (
                    jobs[index][0].stored_keys(self.layout, jobs[index][1]),
                    jobs[index][0].words,
                )
                for index in on_client
            ]
            for index, result in zip(
                on_client, run_programs(plans, self.read), strict=True
            ):
                results[index] = result
        name = f"fb_{uuid.uuid4().hex}"
        in_redis = sorted(set(range(len(jobs))) - set(on_client))
        scripts: list[Script] = []
        for index in in_redis:
            program, shard = jobs[index]
            keys, argv = program.arguments(self.layout, shard, f"{name}_{index}", ttl)
            scripts.append((PROGRAM_SCRIPT, keys, argv))
        if apart:
            replies = [
                reply
                for script in scripts
                for reply in self.execute([script], attempts=_READ_ATTEMPTS)
            ]
        else:
            replies = self.execute(scripts, attempts=_READ_ATTEMPTS)
        for index, reply in zip(in_redis, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            results[index] = reply
        return results

    def stored_sizes(self, program: Program, shards: Sequence[int]) -> list[int]:
        """``STRLEN`` of each stored key ``program`` names, in each of
        ``shards`` (0 for a missing one): one round trip per node.

        :raises redis.RedisError: the first error of a key that failed every
            time (a key of another type).
        """
        names = [
            name
            for shard in shards
            for name in program.stored_keys(self.layout, shard)
            if name is not None
        ]
        sizes = self._key_replies([(name, ("STRLEN", name)) for name in names])
        for size in sizes:
            if isinstance(size, Exception):
                raise size
        return sizes

    def read(self, names: Sequence[str]) -> list[bytes | redis.ResponseError | None]:
        """The value of each key of ``names``: ``None`` for a missing one (or
        one that holds the empty string, which no mark leaves), the error
        Redis answers for a key of another type (``WRONGTYPE``), which the
        caller raises where a script would; in reads of about
        :data:`READ_CHUNK_BYTES` at most, so that Redis serves other clients
        between them.

        The keys read before, whose sizes the store remembers (the last
        :data:`_SIZES_REMEMBERED`), are read whole, with ``MGET``, as many
        a round trip as fit in a chunk by their last size; a key that grew
        much since then can make a round trip longer. The others, and those
        of more than half a chunk, are read in the first round trip too:
        their ``STRLEN`` and what fits of their first bytes, the rest in
        round trips of a chunk each. So a query read again (a dashboard's
        refresh) costs one round trip per node, and so does a small one read
        for the first time.

        :raises redis.RedisError: when Redis cannot be reached.
        """
        remembered = self._sizes
        predicted = [remembered.get(name) for name in names]
        whole: list[list[int]] = [[]]
        fills = [0]
        unknown = []
        for index, size in enumerate(predicted):
            if size is None or size > READ_CHUNK_BYTES // 2:
                unknown.append(index)
                continue
            if whole[-1] and fills[-1] + size > READ_CHUNK_BYTES:
                whole.append([])
                fills.append(0)
            whole[-1].append(index)
            fills[-1] += size
        share = (READ_CHUNK_BYTES - fills[0]) // max(1, len(unknown))
        values: dict[int, Any] = {}
        parts: dict[int, list[bytes]] = {}
        sizes: dict[int, int] = {}
        for number, chunk in enumerate(whole):
            commands = self._whole_reads([names[index] for index in chunk])
            if number == 0:
                for index in unknown:
                    name = names[index]
                    commands.append((name, ("STRLEN", name)))
                    if share:
                        commands.append((name, ("GETRANGE", name, 0, share - 1)))
            replies = self._key_replies(commands)
            values.update(
                zip(chunk, self._whole_values(replies, chunk, names), strict=True)
            )
            if number == 0:
                rest = iter(
                    replies[len(replies) - len(unknown) * (2 if share else 1) :]
                )
                for index in unknown:
                    size = next(rest)
                    first = next(rest) if share else b""
                    if isinstance(size, redis.ResponseError):
                        values[index] = size
                    elif isinstance(first, redis.ResponseError):
                        values[index] = first
                    else:
                        sizes[index] = size
                        parts[index] = [first]
        # What is left of the longer keys, in pieces of at most a chunk, a
        # chunk of pieces a round trip.
        pieces = [
            (index, start, min(start + READ_CHUNK_BYTES, size))
            for index, size in sizes.items()
            for start in range(share, size, READ_CHUNK_BYTES)
        ]
        trip: list[tuple[int, int, int]] = []
        filled = 0
        for piece in [*pieces, None]:
            if piece is None or (
                trip and filled + piece[2] - piece[1] > READ_CHUNK_BYTES
            ):
                replies = self._key_replies(
                    [
                        (names[index], ("GETRANGE", names[index], start, end - 1))
                        for index, start, end in trip
                    ]
                )
                for (index, _, _), reply in zip(trip, replies, strict=True):
                    if isinstance(reply, redis.ResponseError):
                        values[index] = reply
                    else:
                        parts[index].append(reply)
                trip, filled = [], 0
            if piece is not None:
                trip.append(piece)
                filled += piece[2] - piece[1]
        for index, part in parts.items():
            if index not in values:
                values[index] = b"".join(part) or None
        if len(remembered) + len(unknown) > _SIZES_REMEMBERED:
            # A new dict, not cleared: another thread may be reading it.
            remembered = self._sizes = {}
        for index, name in enumerate(names):
            value = values[index]
            if not isinstance(value, redis.ResponseError):
                remembered[name] = len(value or b"")
        return [values[index] for index in range(len(names))]

    def _whole_reads(self, names: list[str]) -> list[Command]:
        """The commands that read ``names`` whole: on one node, one ``MGET``
        (one reply to parse, not one a key) and an ``EXISTS`` of them all,
        which tells a key of another type (``MGET`` answers nil) from a
        missing one; on a cluster, whose keys may be in many slots, a
        ``GET`` each."""
        if not names:
            return []
        if isinstance(self.client, RedisCluster):
            return [(name, ("GET", name)) for name in names]
        return [(names[0], ("MGET", *names)), (names[0], ("EXISTS", *names))]

    def _whole_values(
        self, replies: list[Any], chunk: list[int], names: Sequence[str]
    ) -> list[Any]:
        """The values of the keys of ``chunk`` that :meth:`_whole_reads`
        read, from the start of ``replies``: on one node, the errors of those
        of another type read again, a ``GET`` each."""
        if not chunk:
            return []
        if isinstance(self.client, RedisCluster):
            return replies[: len(chunk)]
        values: list[Any] = replies[0]
        if replies[1] > sum(value is not None for value in values):
            missing = [index for index, value in enumerate(values) if value is None]
            again = self._key_replies(
                [
                    (names[chunk[index]], ("GET", names[chunk[index]]))
                    for index in missing
                ]
            )
            for index, reply in zip(missing, again, strict=True):
                values[index] = reply
        return values

    def _key_replies(self, commands: Sequence[Command]) -> list[Any]:
        """:meth:`send` ``commands`` (none: no round trip); a key's own
        error (``WRONGTYPE``) is its reply, any other error raised."""
        replies = self.send(commands, _READ_ATTEMPTS) if commands else []
        for reply in replies:
            if isinstance(reply, Exception) and not _is_key_error(reply):
                raise reply
        return replies

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
        return self.send(
            [
                # A script without keys runs on one node only.
                (keys[0] if keys else "", ("EVAL", text, len(keys), *keys, *args))
                for text, keys, args in scripts
            ],
            attempts,
        )

    def send(self, commands: Sequence[Command], attempts: int = 2) -> list[Any]:
        """Send each ``(key, words)`` of ``commands`` as :meth:`execute`
        sends its scripts: on a cluster, to the node of ``key``, sent again
        when that node failed.

        :returns: each command's reply, or the :exc:`redis.RedisError` it
            failed with, in order.
        """
        client = self.client
        if not isinstance(client, RedisCluster):
            return _execute_on(client, commands)  # type: ignore[arg-type,unused-ignore]
        results = _execute_on_nodes(client, commands)
        for _ in range(attempts - 1):
            failed = [
                index
                for index, result in enumerate(results)
                if isinstance(result, Exception) and _may_pass_elsewhere(result)
            ]
            if not failed:
                break
            _reload_slots(client)
            again = _execute_on_nodes(client, [commands[index] for index in failed])
            for index, result in zip(failed, again, strict=True):
                results[index] = result
        return results


def _is_key_error(error: Exception) -> bool:
    """Whether ``error`` is a key's own answer (a key of another type), not
    a node's failure."""
    return isinstance(error, redis.ResponseError) and not _may_pass_elsewhere(error)


def _may_pass_elsewhere(error: Exception) -> bool:
    """Whether ``error`` may be gone once the slot map is read again: a node
    that did not answer, or a slot that moved or has no node for now. A
    reply that refuses the script itself (a key of another type) is not."""
    return not isinstance(error, redis.ResponseError) or isinstance(
        error, (AskError, ClusterDownError, TryAgainError)
    )


#: How many times :meth:`Store.run` sends a program whose node failed.
_READ_ATTEMPTS = 3

#: The most bytes :meth:`Store.read` reads in one round trip: Redis copies
#: them into its replies in one go, about 1 ms for 8 MB on this machine,
#: before it serves another client.
READ_CHUNK_BYTES = 8 << 20

#: How many key lengths a store remembers from its reads (about 100 bytes
#: each); past that, it forgets them all and learns them again.
_SIZES_REMEMBERED = 100_000

#: A script to EVAL: its text, its keys, its other arguments.
Script = tuple[str, Sequence[str], Sequence[str | int | bytes]]

#: A command to send: the key whose node takes it on a cluster, and its words.
Command = tuple[str, tuple[str | int | bytes, ...]]


def resolve_engine(engine: QueryEngine) -> QueryEngine:
    """``"client"`` or ``"redis"``: ``"auto"`` is the client, which runs
    programs with numpy when it is installed, else on Python's ints (see
    :func:`_client_runner`).

    :raises ValueError: for an unknown name.
    """
    if engine not in QUERY_ENGINES:
        raise ValueError(
            f"The query engine must be one of {', '.join(QUERY_ENGINES)}, "
            f"got {engine!r}."
        )
    return "redis" if engine == "redis" else "client"


def _execute_on_nodes(client: RedisCluster, commands: Sequence[Command]) -> list[Any]:
    """One pipeline per node, the nodes at once; each command's reply or error."""
    results: list[Any] = [None] * len(commands)
    by_node: dict[str, tuple[ClusterNode, list[int]]] = {}
    for index, (key, _) in enumerate(commands):
        try:
            node = client.get_node_from_key(key)  # type: ignore[no-untyped-call,unused-ignore]
        except RedisClusterException as error:
            # No node serves the slot now (a failover under way): an
            # outage, as the server's own CLUSTERDOWN is.
            results[index] = ClusterDownError(str(error))  # type: ignore[no-untyped-call,unused-ignore]
            continue
        by_node.setdefault(node.name, (node, []))[1].append(index)

    def run_node(node: ClusterNode, indexes: list[int]) -> None:
        connection = client.get_redis_connection(node)  # type: ignore[no-untyped-call,unused-ignore]
        try:
            replies = _execute_on(connection, [commands[index] for index in indexes])
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


def _execute_on(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    if not commands:
        return []
    pipeline = client.pipeline(transaction=False)
    for _, words in commands:
        pipeline.execute_command(*words)  # type: ignore[no-untyped-call,unused-ignore]
    try:
        replies: list[Any] = pipeline.execute(raise_on_error=False)
    except redis.RedisError as error:
        # The node could not be reached: every command of it failed.
        return [error] * len(commands)
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

"""Id map benchmark: map mode against int mode, side by side in one run.

Every ratio compares two things measured in the same run on the same
machine, interleaved round by round (each side goes first in turn), as
medians, so the machine's noise hits both sides:

(1) the request path: the per-request time of one view through the Flask
    test client, bare, decorated with ``@mark`` in int mode (ids: ints), and
    with ``@mark`` in map mode (``BITMAPIST_ID_MAP``; ids: UUID strings),
    the background writer in both; a fixed pool of ``--pool`` users (default
    1,000), written once before the timed rounds so the map's cache is warm.
    Each round is timed up to the flush of its last marks, so the writer
    thread's work for its requests is in it: in wall time, and in this
    process's CPU time (both threads), which the other processes of a shared
    machine disturb less.
    (1b) where map mode's extra time goes: ``to_user_id`` and
    ``canonical_id`` per call (``timeit``), and the writer thread's cache
    look-up per id.
(2) the writer: marks/s of ``write_marks`` on batches of ``--batch`` marks
    (default 500, ``BITMAPIST_FLUSH_AT``'s default: the batch the background
    writer takes under steady load), in bitmapist's layout with one bucket
    (``IdMap(1)``) and in the sharded layout with 64 (``IdMap(64)``), each
    against int mode in the same layout; all ids new (every mark a UUID never
    seen) and all ids known (mapped, and in the map's cache); the CPU this
    process spends per mark, and the round trips per batch (counted on the
    connection).
(3) memory: ``--users`` (default 1,000,000) random UUIDs loaded with
    ``write_marks`` in batches of ``MAX_BATCH``, one mark each: the map's
    bytes per user (``IdMap.stats``: ``MEMORY USAGE`` of its keys), against
    the bitmaps it saves: an event-period key of those users with the map,
    and without it.

    python scripts/bench_idmap.py    # full run, 2 to 4 minutes, Redis up to 200 MB
    python scripts/bench_idmap.py --users 1000 --rounds 3 --requests 50

Redis: ``--redis-url`` (its db is emptied before and after!), else a private
redis-server (:class:`flask_bitmapist.testing.RedisProcess`). It needs no
bitmapist: the helpers of ``scripts/bench.py`` are not imported, as that
module imports bitmapist.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from random import Random
from typing import Any, TypeVar, cast

import redis
from benchkit import bench_redis, load_average
from flask import Flask, request

from flask_bitmapist import FlaskBitmapist, flush, mark, mark_event
from flask_bitmapist.config import DEFAULT_ID_CACHE_SIZE, MAX_USER_ID
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.idmap import SHARDED_BUCKETS, IdMap, canonical_id
from flask_bitmapist.store.layout import BITMAPIST, KeyLayout, Period, ShardedLayout
from flask_bitmapist.store.writer import MAX_BATCH, Mark, write_marks
from flask_bitmapist.track.ids import to_user_id

NOW = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)
DAY = Period.of("day", NOW)
REQUEST_VARIANTS = ("bare", "@mark, int ids", "@mark, map (UUID str)")
CLOCKS = ("wall", "CPU")
#: The issue's bound on map mode's request path, against int mode.
REQUEST_BOUND = 1.02

T = TypeVar("T")


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` starting from the ``turn``-th: each goes first in turn, so
    that warm-up, frequency scaling and a neighbour's load favour none."""
    shift = turn % len(items)
    return [*items[shift:], *items[:shift]]


def random_uuids(rng: Random, count: int) -> list[str]:
    """``count`` random version-4 UUIDs in their canonical form."""
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def integer(reply: Any) -> int:
    """A Redis reply as an int (0 for none: ``MEMORY USAGE`` of no key)."""
    return int(reply or 0)


def server_info(client: redis.Redis, section: str) -> dict[str, Any]:
    """A section of ``INFO``, parsed."""
    return cast(dict[str, Any], client.info(section))


def median_interval(values: Sequence[float]) -> tuple[float, float]:
    """A 95% confidence interval of the median of ``values``, free of any
    assumption on their distribution: the order statistics that the
    binomial distribution of the values below the median puts around it."""
    ranked = sorted(values)
    spread = 1.96 * math.sqrt(len(ranked))
    low = max(0, math.floor((len(ranked) - spread) / 2) - 1)
    high = min(len(ranked) - 1, math.ceil(1 + (len(ranked) + spread) / 2) - 1)
    return ranked[low], ranked[high]


def verdict(low: float, high: float) -> str:
    """What an interval of map mode's ratio to int mode says of the issue's
    bound."""
    if high <= REQUEST_BOUND:
        return "within the issue's 2%"
    if low > REQUEST_BOUND:
        return "NOT within the issue's 2%"
    return "the noise hides whether it is within the issue's 2%"


# -- (1) request path -------------------------------------------------------


@dataclass
class Variant:
    """One app of (1): the ids its view marks, and the event (none: bare)."""

    app: Flask
    users: list[int | str]
    event: str | None


def create_variants(redis_url: str, pool: int) -> dict[str, Variant]:
    """The apps of (1), each with one view at ``/play/<n>`` that marks
    ``users[n]`` (but the bare one). Every app serves the same URLs: they
    differ only in the id the view marks and in ``BITMAPIST_ID_MAP``."""
    ints: list[int | str] = list(range(pool))
    uuids: list[int | str] = list(random_uuids(Random(1), pool))
    variants = {}
    for number, (name, users, event) in enumerate(
        (
            ("bare", ints, None),
            ("@mark, int ids", ints, "played:int"),
            ("@mark, map (UUID str)", uuids, "played:map"),
        )
    ):
        app = Flask(f"bench_idmap_{number}")

        def play(n: int) -> str:
            return "ok"

        view = play
        if event is not None:
            view = mark(event, functools.partial(_user_of_request, users))(play)
            app.config.update(
                BITMAPIST_REDIS_URL=redis_url,
                BITMAPIST_WRITE_MODE="background",
                BITMAPIST_ID_MAP=users is uuids,
            )
            FlaskBitmapist(app)
        app.add_url_rule("/play/<int:n>", "play", view)
        variants[name] = Variant(app, users, event)
    return variants


def _user_of_request(users: list[int | str]) -> int | str:
    number: int = (request.view_args or {})["n"]
    return users[number]


def request_times(
    variants: dict[str, Variant], pool: int, requests: int, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Each variant's wall and CPU microseconds per request, one figure of
    each a round, keyed ``"wall"`` and ``"CPU"``."""
    clients = {name: variant.app.test_client() for name, variant in variants.items()}
    urls = [f"/play/{number % pool}" for number in range(requests)]

    def run(name: str) -> tuple[float, float]:
        get = clients[name].get
        cpu = time.process_time()
        started = time.perf_counter()
        for url in urls:
            get(url)
        # Up to the last mark written: the writer thread's work for each
        # request (its CPU, and the GIL it takes from the requests) is in
        # the round, and none is left for the next side's.
        flush(timeout=60)
        elapsed = time.perf_counter() - started
        return elapsed * 1e6 / requests, (time.process_time() - cpu) * 1e6 / requests

    # Untimed: every user is mapped, and in each writer's cache.
    for name in REQUEST_VARIANTS:
        run(name)
    times: dict[str, dict[str, list[float]]] = {
        clock: {name: [] for name in REQUEST_VARIANTS} for clock in CLOCKS
    }
    for turn in range(rounds):
        for name in rotated(REQUEST_VARIANTS, turn):
            for clock, value in zip(CLOCKS, run(name), strict=True):
                times[clock][name].append(value)
    return times


def report_requests(
    times: dict[str, dict[str, list[float]]], rounds: int, requests: int
) -> float:
    """Print (1); return the int-mode request's median CPU microseconds."""
    medians = {
        clock: {name: statistics.median(each) for name, each in by.items()}
        for clock, by in times.items()
    }
    print(f"\n(1) request path: Flask test client, GET /play/<n>, background "
          f"writer, timed up to the flush of the round's last marks; {rounds} "
          f"rounds x {requests:,} requests, interleaved, medians; CPU = this "
          f"process's, both threads")  # fmt: skip
    for name in REQUEST_VARIANTS:
        cells = [
            f"{medians[clock][name]:8.2f} {clock} us/request  ratio "
            f"{medians[clock][name] / medians[clock]['bare']:.3f} vs bare"
            for clock in CLOCKS
        ]
        print(f"  {name:<26}" + "  ".join(cells))
    for clock in CLOCKS:
        int_mode = times[clock]["@mark, int ids"]
        map_mode = times[clock]["@mark, map (UUID str)"]
        per_round = [top / low for top, low in zip(map_mode, int_mode, strict=True)]
        low, high = median_interval(per_round)
        ratio = (
            medians[clock]["@mark, map (UUID str)"] / medians[clock]["@mark, int ids"]
        )
        print(f"  map / int, {clock}: {ratio:.3f} (ratio of the medians); per "
              f"round: median {statistics.median(per_round):.3f}, 95% "
              f"interval {low:.3f} to {high:.3f}: "
              f"{verdict(low, high)}")  # fmt: skip
    return medians["CPU"]["@mark, int ids"]


def per_call(
    rounds: int,
    calls: int,
    functions: dict[str, Callable[[], Any]],
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Microseconds per call of each function on ``clock``: ``calls`` calls
    a round, the functions interleaved, the median round."""
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for turn in range(rounds):
        for name in rotated(list(functions), turn):
            seconds = timeit.timeit(functions[name], number=calls, timer=clock)
            samples[name].append(seconds * 1e6 / calls)
    return {name: statistics.median(each) for name, each in samples.items()}


def marking(variant: Variant, calls: int) -> Callable[[], None]:
    """``calls`` calls of ``mark_event`` in the variant's app, ids from its
    pool in turn, then the flush of its writer."""
    app, users, event = variant.app, variant.users, variant.event
    assert event is not None

    def run() -> None:
        with app.app_context():
            for number in range(calls):
                mark_event(event, users[number % len(users)])
            flush(timeout=60)

    return run


def report_id_costs(
    variants: dict[str, Variant], rounds: int, int_request: float
) -> None:
    """Print (1b): what map mode adds to a request, on the request thread
    and on the writer thread (which takes the GIL from the request
    threads)."""
    text = "1b4e28ba-2fa1-4fd2-883f-0016d3cca427"
    as_uuid = uuid.UUID(text)
    id_map = IdMap(1)
    id_map.remember([(text, 7)])
    calls = 20_000
    costs = per_call(
        rounds,
        calls,
        {
            "to_user_id(int), int mode": lambda: to_user_id(
                "played:int", 123_456, max_user_id=MAX_USER_ID
            ),
            "to_user_id(UUID str), map mode": lambda: to_user_id(
                "played:map", text, id_map=True
            ),
            "canonical_id(UUID str)": lambda: canonical_id(text),
            "canonical_id(uuid.UUID)": lambda: canonical_id(as_uuid),
            "IdMap.cached(UUID str)": lambda: id_map.cached(text),
        },
    )
    print(f"\n(1b) where map mode's time goes: per call, timeit, median of "
          f"{rounds} rounds x {calls:,} calls, interleaved")  # fmt: skip
    for name, cost in costs.items():
        print(f"  {name:<34} {cost:6.3f} us")
    marks = 5_000
    names = ("@mark, int ids", "@mark, map (UUID str)")
    whole = per_call(
        rounds,
        1,
        {name: marking(variants[name], marks) for name in names},
        time.process_time,
    )
    print(f"  mark_event in an app context, the background writer's work "
          f"included ({rounds} rounds x {marks:,} marks, then the flush; this "
          f"process's CPU, both threads):")  # fmt: skip
    for name in names:
        print(f"    {name:<32} {whole[name] / marks:6.3f} us a mark")
    extra = (whole[names[1]] - whole[names[0]]) / marks
    thread = (
        costs["to_user_id(UUID str), map mode"] - costs["to_user_id(int), int mode"]
    )
    share = extra / int_request
    print(f"  map mode adds {extra:.3f} us of CPU a marked request = "
          f"{share:.1%} of an int-mode request's CPU in (1), "
          f"{verdict(1 + share, 1 + share)}; of "
          f"which to_user_id on the request thread {thread:.3f} us, the "
          f"writer thread's cache look-up of each id of a batch "
          f"{costs['IdMap.cached(UUID str)']:.3f} us")  # fmt: skip


# -- (2) writer -------------------------------------------------------------


def counting_client(redis_url: str) -> tuple[redis.Redis, list[int]]:
    """A client of its own connection pool, and the number of times it has
    sent something to Redis: its round trips (a pipeline sends once)."""
    sends = [0]

    class Counting(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sends[0] += 1
            super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    return redis.Redis.from_url(redis_url, connection_class=Counting), sends


@dataclass
class Side:
    """One writer under test: a store, and where its marks' ids come from."""

    layout: str
    ids: str
    mode: str
    store: Store
    sends: list[int]
    event: str
    #: The ids every round writes (known), or ``None``: new ids each round.
    known: list[int | str] | None
    next_int: int = 0
    written: set[int | str] = field(default_factory=set)
    known_shards: set[int] = field(default_factory=set)
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    trips: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.layout:<10} {self.ids:<10} {self.mode:<4}"

    def batches_of_round(self, rng: Random, batch: int, count: int) -> list[list[Mark]]:
        """A round's ``count`` marks in batches: the known ids, or new ones."""
        ids: Sequence[int | str]
        if self.known is not None:
            ids = self.known
        elif self.mode == "map":
            ids = random_uuids(rng, count)
        else:
            ids = range(self.next_int, self.next_int + count)
            self.next_int += count
        self.written.update(ids)
        marks = [Mark(self.event, user, NOW, False, False) for user in ids]
        return [marks[start : start + batch] for start in range(0, count, batch)]

    def write(self, batches: list[list[Mark]]) -> None:
        for marks in batches:
            write_marks(self.store, marks, self.known_shards)


def writer_sides(redis_url: str, pool: int) -> list[Side]:
    """The eight sides of (2): each layout, all new or all known ids (a pool
    of ``pool``), int or map mode; each with a client of its own, to count
    its round trips, and an event of its own."""
    sharded = ShardedLayout()
    sides = []
    for layout_name, layout, buckets in (
        ("bitmapist", BITMAPIST, 1),
        ("sharded", sharded, SHARDED_BUCKETS),
    ):
        for ids in ("all new", "all known"):
            for mode in ("int", "map"):
                client, sends = counting_client(redis_url)
                # Each side a map (and cache) of its own, as a process has.
                id_map = IdMap(buckets) if mode == "map" else None
                known: list[int | str] | None = None
                if ids == "all known":
                    known = (
                        list(range(pool))
                        if mode == "int"
                        else list(random_uuids(Random(buckets), pool))
                    )
                event = f"w:{layout_name[0]}:{ids.split()[1]}:{mode}"
                sides.append(
                    Side(
                        layout_name,
                        ids,
                        mode,
                        Store(client, layout, id_map),
                        sends,
                        event,
                        known,
                    )
                )
    return sides


def writer_rates(redis_url: str, batch: int, batches: int, rounds: int) -> list[Side]:
    """Time ``batches`` batches of each side a round; the known ids are
    written (mapped, cached) once before, untimed, as the new ones of a
    first untimed round."""
    count = batch * batches
    sides = writer_sides(redis_url, count)
    rng = Random(2)
    for side in sides:
        side.write(side.batches_of_round(rng, batch, count))
    for turn in range(rounds):
        # Made before the round: only write_marks is timed.
        work = [(side, side.batches_of_round(rng, batch, count)) for side in sides]
        for side, marks in rotated(work, turn):
            sends = side.sends[0]
            cpu = time.process_time()
            started = time.perf_counter()
            side.write(marks)
            side.seconds.append(time.perf_counter() - started)
            side.cpu.append(time.process_time() - cpu)
            side.trips.append((side.sends[0] - sends) / batches)
    for side in sides:
        check_bits(side, len(side.written))
    return sides


def check_bits(side: Side, expected: int) -> None:
    """Stop unless the side's day keys hold ``expected`` users."""
    store = side.store
    found = sum(
        integer(store.client.bitcount(store.layout.key(side.event, DAY, shard)))
        for shard in store.shards()
    )
    if found != expected:
        raise AssertionError(f"{side.label}: {found} users written, not {expected}")


def report_writer(
    sides: list[Side], batch: int, batches: int, rounds: int, int_request: float
) -> None:
    source = (
        "MAX_BATCH, the most the writer takes"
        if batch == MAX_BATCH
        else "BITMAPIST_FLUSH_AT's default, the background writer's batch "
        "under steady load"
        if batch == 500
        else "--batch"
    )
    print(f"\n(2) writer: write_marks on batches of {batch:,} marks ({source}), "
          f"{batches} batches a side a round, {rounds} rounds, interleaved, "
          f"medians; one event, 3 keys a mark (month, week, day); the sharded "
          f"layout's shard_bits {ShardedLayout().shard_bits}")  # fmt: skip
    marks = batch * batches
    rates = {side.label: marks / statistics.median(side.seconds) for side in sides}
    for side in sides:
        baseline = next(
            other
            for other in sides
            if (other.layout, other.ids, other.mode) == (side.layout, side.ids, "int")
        )
        rate = rates[side.label]
        cpu = statistics.median(side.cpu) * 1e6 / marks
        trips = statistics.median(side.trips)
        print(f"  {side.label} {rate:>10,.0f} marks/s {cpu:6.2f} CPU us/mark "
              f"{trips:g} round trip(s)/batch  ratio "
              f"{rate / rates[baseline.label]:.3f} vs int")  # fmt: skip
    cpu_of = {
        (side.layout, side.ids, side.mode): statistics.median(side.cpu) * 1e6 / marks
        for side in sides
    }
    extra = [
        cpu_of[layout, "all known", "map"] - cpu_of[layout, "all known", "int"]
        for layout in ("bitmapist", "sharded")
    ]
    print(f"  map mode's writer with known ids: {extra[0]:+.2f} us CPU a mark "
          f"(bitmapist), {extra[1]:+.2f} (sharded): what it adds to a request "
          f"of one mark on the writer thread, {extra[0] / int_request:.1%} of "
          f"an int-mode request's CPU")  # fmt: skip


# -- (3) memory -------------------------------------------------------------


@dataclass
class Loaded:
    label: str
    ids: int
    memory: int
    seconds: float
    trips: float
    used_memory: int
    key_length: int
    key_memory: int


def load(
    redis_url: str, label: str, layout: KeyLayout, id_map: IdMap, users: int
) -> Loaded:
    """Write one mark of each of ``users`` new random UUIDs, in batches of
    ``MAX_BATCH``: the map's size, and its day key's; then empty the db."""
    client, sends = counting_client(redis_url)
    store = Store(client, layout, id_map)
    rng = Random(3)
    used_before = integer(server_info(client, "memory")["used_memory"])
    sends_before = sends[0]
    known_shards: set[int] = set()
    seconds = 0.0
    for start in range(0, users, MAX_BATCH):
        ids = random_uuids(rng, min(MAX_BATCH, users - start))
        marks = [Mark("visit", user, NOW, False, False) for user in ids]
        started = time.perf_counter()
        write_marks(store, marks, known_shards)
        seconds += time.perf_counter() - started
    trips = (sends[0] - sends_before) / -(-users // MAX_BATCH)
    used = integer(server_info(client, "memory")["used_memory"]) - used_before
    stats = id_map.stats(store)
    keys = [layout.key("visit", DAY, shard) for shard in store.shards()]
    bits = sum(integer(client.bitcount(key)) for key in keys)
    if stats.ids != users or bits != users:
        raise AssertionError(f"{label}: {stats.ids} ids, {bits} bits, not {users}")
    loaded = Loaded(
        label,
        stats.ids,
        stats.memory,
        seconds,
        trips,
        used,
        sum(integer(client.strlen(key)) for key in keys),
        sum(integer(client.memory_usage(key, samples=0)) for key in keys),
    )
    client.flushdb()
    return loaded


def report_memory(redis_url: str, users: int) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    sharded = IdMap(SHARDED_BUCKETS)
    results = [
        load(redis_url, "1 bucket, bitmapist", BITMAPIST, IdMap(1), users),
        load(redis_url, "64 buckets, sharded", ShardedLayout(), sharded, users),
    ]
    # A hash of up to this many fields is one compact block (a listpack;
    # a ziplist before Redis 7), beyond it a hash table.
    compact = ", ".join(
        f"{name} {value}"
        for name, value in cast(
            dict[str, str], client.config_get("hash-max-*-entries")
        ).items()
    )
    print(f"\n(3) memory: {users:,} random UUIDs (version 4), one mark each "
          f"(\"visit\": 3 keys), loaded by write_marks in batches of "
          f"{MAX_BATCH:,} (all new; the map's cache {DEFAULT_ID_CACHE_SIZE:,}); "
          f"{compact}")  # fmt: skip
    print(f"  {'':22} {'ids':>10} {'map MEMORY USAGE':>17} {'B/user':>7} "
          f"{'load marks/s':>13} {'trips/batch':>11} {'used_memory +':>14}  "
          f"day key: {'STRLEN':>9} {'MEMORY USAGE':>12}")  # fmt: skip
    for each in results:
        print(f"  {each.label:<22} {each.ids:>10,} {each.memory:>17,} "
              f"{each.memory / each.ids:>7.1f} {each.ids / each.seconds:>13,.0f} "
              f"{each.trips:>11g} {each.used_memory:>14,}  {'':8} "
              f"{each.key_length:>9,} {each.key_memory:>12,}")  # fmt: skip
    mapped = -(-users // 8)
    capped = 2**32 // 8
    per_user = results[0].memory / results[0].ids
    print(f"  an event-period key of these {users:,} users: with the map "
          f"{mapped:,} B (a bit per user, dense ids 0..{users - 1:,}); without "
          f"it, the UUIDs as ints are bit offsets up to 2**128 - 1: keys of up "
          f"to 2**125 B, which Redis cannot hold (its offsets stop at "
          f"2**32 - 1); ids cut to 32 bits (colliding) make keys of up to "
          f"{capped:,} B (512 MiB) each, {capped / mapped:,.0f}x the mapped "
          f"key")  # fmt: skip
    print(f"  the map costs {per_user:.1f} B per user, once: as much as that "
          f"user's bits in {per_user * 8:,.0f} mapped event-period keys (1 bit "
          f"each); its {results[0].memory:,} B are "
          f"{results[0].memory / capped:.2%} of ONE 32-bit key")  # fmt: skip


# -- main -------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("BITMAPIST_BENCH_REDIS_URL")
    )
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--requests", type=int, default=1000, help="a round's")
    parser.add_argument("--pool", type=int, default=1000, help="(1)'s users")
    parser.add_argument("--batch", type=int, default=500, help="(2)'s marks")
    parser.add_argument("--batches", type=int, default=20, help="(2)'s a round")
    parser.add_argument("--users", type=int, default=1_000_000, help="(3)'s")
    args = parser.parse_args()
    if min(args.rounds, args.requests, args.pool, args.batch, args.batches) < 1:
        parser.error("every size must be positive")
    if not 1 <= args.users <= MAX_USER_ID + 1:
        parser.error(f"--users is from 1 to {MAX_USER_ID + 1:,}")
    logging.getLogger("flask_bitmapist").setLevel(logging.ERROR)
    started = time.perf_counter()
    with bench_redis(args.redis_url) as redis_url:
        server = redis.Redis.from_url(redis_url)
        info = {**server_info(server, "server"), **server_info(server, "memory")}
        print(f"Python {sys.version.split()[0]}, redis-server "
              f"{info['redis_version']} ({info['mem_allocator']}), "
              f"{os.cpu_count()} cores, load average at the start "
              f"{load_average()}")  # fmt: skip
        variants = create_variants(redis_url, args.pool)
        times = request_times(variants, args.pool, args.requests, args.rounds)
        int_request = report_requests(times, args.rounds, args.requests)
        report_id_costs(variants, args.rounds, int_request)
        sides = writer_rates(redis_url, args.batch, args.batches, args.rounds)
        report_writer(sides, args.batch, args.batches, args.rounds, int_request)
        redis.Redis.from_url(redis_url).flushdb()
        report_memory(redis_url, args.users)
    print(f"\nload average at the end: {load_average()}; "
          f"{time.perf_counter() - started:.0f} s in all")  # fmt: skip


if __name__ == "__main__":
    main()

"""Cluster benchmark: one node against a 3-master Redis Cluster, side by side
in one run.

Three stores get the same marks and answer the same queries:

  (1) one node, bitmapist's layout (one key per event and period);
  (2) one node, the sharded layout (``ShardedLayout``, ``--shard-bits``,
      default 20);
  (3) a Redis Cluster of 3 masters and no replicas, the sharded layout.

Each is a private redis-server (the cluster: three), all from the same
binary (:func:`flask_bitmapist.testing.redis_server_binary`). The cluster's
nodes run without their append-only file, as the single nodes do, and
without replicas: this machine has 2 cores, and a replica would only take CPU
from the masters.

Data: each of ``--users`` users (ids 0..N-1, default 3,000,000) does "signup"
once, on a random day of ``--days`` days (default 30) up to NOW, and
``--active`` of them (default 5%, a random sample each day) do "active" each
day. The marks are generated a day at a time (fixed seeds) and written to the
three stores in turn (the first store of each day rotates), with
``write_marks`` in batches of 10,000, as ``flask bitmapist import`` writes
them; the generating is not timed.

Measured, per store: the import's rate (marks/s); the wall time of
``get_cohort("signup", "active")`` days x days and of the dashboard overview
(``count_events`` of both events and ``list_event_names``), the median of
``--repeats``; and for each, the CPU each redis-server used (``INFO cpu``:
used_cpu_sys + used_cpu_user, before and after, per node and summed), the
benchmark process's own CPU, and the CPU the rest of the machine used
meanwhile (``/proc/stat``: on a shared machine, what took cores from the
benchmark). On 2 cores the wall time cannot show a cluster's gain: the CPU
per node says how the work spreads. With 3,000,000 users and shard_bits 20
there are 3 shards, and their hash tags put two on one master and none on
another: the first line of output says which shard is on which node.

Then the memory per user-event of each store (MEMORY USAGE of every event key,
on every node, divided by the bits set in them, their BITCOUNT; STRLEN shows
the bitmaps' own bytes), and the same for a sparse case: ``--sparse-users``
(default 100,000) users with distinct ids drawn from 0..2**32-1, one event on
one day, where bitmapist's layout makes keys of 512 MB (the private servers
have no maxmemory; the sparse case needs about 3 GB of RAM). The cohort
tables, overview counts and event names must agree across the three stores,
and do (the script stops otherwise).

    python scripts/bench_cluster.py                  # 6 to 8 minutes
    python scripts/bench_cluster.py --users 20000    # a smoke check, 1 minute
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from random import Random
from typing import Any, TypeVar, cast

import redis
from benchkit import load_average
from redis.cluster import ClusterNode, RedisCluster

from flask_bitmapist.report.cohort import get_cohort
from flask_bitmapist.report.events import count_events, list_event_names
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.layout import BITMAPIST, KeyLayout, ShardedLayout
from flask_bitmapist.store.writer import MAX_BATCH, Mark, write_marks
from flask_bitmapist.testing import ClusterProcess, RedisProcess

NOW = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)
EVENTS = ("signup", "active")
# Redis's default: the benchmark must not see a busy node as failed (no
# replica could take over, and the cluster would refuse every query).
NODE_TIMEOUT_MS = 15_000

T = TypeVar("T")


@dataclass
class Sample:
    """What one measured stretch cost: wall seconds, this process's CPU
    seconds, each node's Redis CPU seconds, and the CPU seconds the whole
    machine was busy (``/proc/stat``, in 10 ms ticks)."""

    wall: float = 0.0
    client: float = 0.0
    nodes: list[float] = field(default_factory=list)
    machine: float = 0.0

    def __add__(self, other: Sample) -> Sample:
        nodes = other.nodes if not self.nodes else self.nodes
        if self.nodes and other.nodes:
            nodes = [a + b for a, b in zip(self.nodes, other.nodes, strict=True)]
        return Sample(
            self.wall + other.wall,
            self.client + other.client,
            nodes,
            self.machine + other.machine,
        )

    @property
    def redis(self) -> float:
        return sum(self.nodes)

    @property
    def others(self) -> float:
        """The CPU seconds neither this process nor the store's nodes used:
        other processes on this machine (the benchmark's idle servers too),
        which took cores from the benchmark."""
        return self.machine - self.client - self.redis

    @property
    def busiest(self) -> float:
        return max(self.nodes)


def median_sample(samples: Sequence[Sample]) -> Sample:
    """Each figure's median over ``samples``, the figures taken apart."""
    return Sample(
        statistics.median(sample.wall for sample in samples),
        statistics.median(sample.client for sample in samples),
        [
            statistics.median(column)
            for column in zip(*(s.nodes for s in samples), strict=True)
        ],
        statistics.median(sample.machine for sample in samples),
    )


def machine_busy() -> float:
    """The CPU seconds every core of this machine has been busy since boot
    (0 where there is no ``/proc/stat``)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    # user nice system idle iowait irq softirq steal ...: all but idle, iowait.
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass
class Subject:
    """One store under test and the nodes its data lives on."""

    label: str
    store: Store
    #: A plain client of each node holding data (the cluster's masters).
    nodes: list[redis.Redis]
    known_shards: set[int] = field(default_factory=set)

    def cpu(self) -> list[float]:
        """Each node's CPU seconds so far (``INFO cpu``)."""
        seconds = []
        for node in self.nodes:
            info = server_info(node, "cpu")
            seconds.append(float(info["used_cpu_sys"]) + float(info["used_cpu_user"]))
        return seconds

    def measure(self, work: Callable[[], T]) -> tuple[Sample, T]:
        before_nodes = self.cpu()
        before_machine = machine_busy()
        before_client = time.process_time()
        started = time.perf_counter()
        result = work()
        wall = time.perf_counter() - started
        client = time.process_time() - before_client
        machine = machine_busy() - before_machine
        after_nodes = self.cpu()
        nodes = [b - a for a, b in zip(before_nodes, after_nodes, strict=True)]
        return Sample(wall, client, nodes, machine), result

    def write(self, marks: Sequence[Mark]) -> None:
        for start in range(0, len(marks), MAX_BATCH):
            write_marks(self.store, marks[start : start + MAX_BATCH], self.known_shards)

    def flushall(self) -> None:
        for node in self.nodes:
            node.flushall()
        self.known_shards.clear()


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` starting from the ``turn``-th: each goes first in turn."""
    shift = turn % len(items)
    return [*items[shift:], *items[:shift]]


# -- import ---------------------------------------------------------------


def day_marks(
    rng: Random, users: int, signups: list[int], active: float, when: datetime
) -> list[Mark]:
    """One day's marks, shuffled: the day's signups, and a random sample of
    ``active`` of the users doing "active"."""
    sample = rng.sample(range(users), round(users * active))
    marks = [Mark("signup", user, when, False, False) for user in signups]
    marks += [Mark("active", user, when, False, False) for user in sample]
    rng.shuffle(marks)
    return marks


def import_all(
    subjects: list[Subject], users: int, days: int, active: float
) -> tuple[list[Sample], dict[str, int], float]:
    """Write the generated marks to every subject; return each one's summed
    write cost, the marks per event, and the seconds spent generating."""
    rng = Random(2026)
    signups_by_day: list[list[int]] = [[] for _ in range(days)]
    for user, day in enumerate(rng.choices(range(days), k=users)):
        signups_by_day[day].append(user)
    first_day = NOW.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=days - 1
    )
    totals = [Sample() for _ in subjects]
    counts = dict.fromkeys(EVENTS, 0)
    generating = 0.0
    for day in range(days):
        started = time.perf_counter()
        when = first_day + timedelta(days=day, hours=12)
        # The day's marks hold no cycles: the collector, scanning them over
        # and over, would double the time they take to make, and tax the
        # writes with a scan of a day's marks that an import streaming them
        # from a file would not hold.
        gc.unfreeze()
        gc.disable()
        marks = day_marks(rng, users, signups_by_day[day], active, when)
        gc.freeze()
        gc.enable()
        generating += time.perf_counter() - started
        counts["signup"] += len(signups_by_day[day])
        counts["active"] += len(marks) - len(signups_by_day[day])
        for index in rotated(range(len(subjects)), day):
            subject = subjects[index]
            sample, _ = subject.measure(functools.partial(subject.write, marks))
            totals[index] = totals[index] + sample
    del marks
    gc.unfreeze()
    return totals, counts, generating


# -- queries --------------------------------------------------------------


def cohort_query(store: Store, size: int) -> Any:
    return get_cohort(
        "signup",
        "active",
        time_group="days",
        num_rows=size,
        num_cols=size,
        now=NOW,
        system=store,
    )


def overview_query(store: Store) -> Any:
    counts = count_events(list(EVENTS), now=NOW, system=store)
    return counts, list_event_names(system=store)


def time_query(
    subjects: list[Subject], query: Callable[[Store], Any], repeats: int, what: str
) -> list[Sample]:
    """One untimed run per subject whose results must agree, then
    ``repeats`` timed rounds (the first subject rotating); each subject's
    median."""
    results = [query(subject.store) for subject in subjects]
    for subject, result in zip(subjects[1:], results[1:], strict=True):
        if result != results[0]:
            raise AssertionError(
                f"{what}: {subject.label} disagrees with {subjects[0].label}"
            )
    samples: list[list[Sample]] = [[] for _ in subjects]
    for turn in range(repeats):
        for index in rotated(range(len(subjects)), turn):
            subject = subjects[index]
            sample, result = subject.measure(functools.partial(query, subject.store))
            if result != results[0]:
                raise AssertionError(f"{what}: {subject.label} changed its answer")
            samples[index].append(sample)
    return [median_sample(each) for each in samples]


# -- memory ---------------------------------------------------------------


@dataclass
class Footprint:
    keys: int
    #: MEMORY USAGE summed: what the keys take, allocator slack included.
    bytes: int
    #: STRLEN summed: the bitmaps' own bytes.
    length: int
    bits: int
    largest: int
    #: Bytes per node, in the order of the subject's nodes.
    per_node: list[int]


def footprint(subject: Subject) -> Footprint:
    """MEMORY USAGE, STRLEN and BITCOUNT of every event key of every node."""
    layout: KeyLayout = subject.store.layout
    keys = size = length = bits = largest = 0
    per_node = []
    for node in subject.nodes:
        names = [
            name
            for name in node.scan_iter(match=layout.scan_pattern(), count=10_000)
            if layout.parse(name.decode()) is not None
        ]
        node_bytes = 0
        for start in range(0, len(names), 1000):
            chunk = names[start : start + 1000]
            pipeline = node.pipeline(transaction=False)
            for name in chunk:
                pipeline.memory_usage(name)
                pipeline.strlen(name)
                pipeline.bitcount(name)
            replies = pipeline.execute()
            for used, strlen, count in zip(
                replies[::3], replies[1::3], replies[2::3], strict=True
            ):
                node_bytes += int(used or 0)
                largest = max(largest, int(used or 0))
                length += int(strlen)
                bits += int(count)
        keys += len(names)
        size += node_bytes
        per_node.append(node_bytes)
    return Footprint(keys, size, length, bits, largest, per_node)


def sparse_case(subjects: list[Subject], users: int) -> list[tuple[Sample, Footprint]]:
    """``users`` distinct ids drawn from 0..2**32-1, "visit" on NOW's day:
    each subject's write cost and footprint, then emptied."""
    rng = Random(32)
    marks = [
        Mark("visit", user, NOW, False, False)
        for user in rng.sample(range(2**32), users)
    ]
    results = []
    counts = []
    for subject in subjects:
        subject.flushall()
        sample, _ = subject.measure(functools.partial(subject.write, marks))
        counts.append(count_events(["visit"], now=NOW, system=subject.store))
        results.append((sample, footprint(subject)))
        subject.flushall()
    if any(each != counts[0] for each in counts):
        raise AssertionError(f"sparse case: the stores disagree: {counts}")
    if counts[0]["visit"].day != users:
        raise AssertionError(f"sparse case: {counts[0]['visit'].day} of {users}")
    return results


# -- output ---------------------------------------------------------------


def node_cells(sample: Sample, width: int) -> str:
    cells = [f"{value:7.2f}" for value in sample.nodes]
    cells += ["      -"] * (width - len(cells))
    return " ".join(cells)


def quotient(top: float, bottom: float) -> str:
    return f"{top / bottom:.2f}" if bottom > 0 else "-"


def print_costs(
    subjects: list[Subject], samples: list[Sample], rate: Callable[[Sample], str]
) -> None:
    width = max(len(subject.nodes) for subject in subjects)
    heads = " ".join(f"{'node' + str(n + 1):>7}" for n in range(width))
    print(f"  {'':26} {'wall s':>8} {'rate':>15} {'client CPU s':>12}  "
          f"Redis CPU s: {heads} {'sum':>7}  {'others':>7}")  # fmt: skip
    for subject, sample in zip(subjects, samples, strict=True):
        print(f"  {subject.label:26} {sample.wall:8.3f} {rate(sample):>15} "
              f"{sample.client:12.3f}  {'':12} {node_cells(sample, width)} "
              f"{sample.redis:7.2f}  {sample.others:7.2f}")  # fmt: skip
    bitmapist, sharded, cluster = samples

    def ratio(name: str, top: Sample, bottom: Sample) -> None:
        print(f"  {name:26} {quotient(top.wall, bottom.wall):>8} {'':15} "
              f"{quotient(top.client, bottom.client):>12}  Redis CPU: busiest "
              f"node {quotient(top.busiest, bottom.busiest)}, sum "
              f"{quotient(top.redis, bottom.redis)}")  # fmt: skip

    print("  ratios")
    ratio("sharded / bitmapist", sharded, bitmapist)
    ratio("cluster / single sharded", cluster, sharded)
    ratio("cluster / single bitmapist", cluster, bitmapist)


def print_footprints(subjects: list[Subject], prints: list[Footprint]) -> None:
    print(f"  {'':26} {'keys':>7} {'MEMORY USAGE':>14} {'STRLEN':>14} "
          f"{'bits set':>12} {'B/user-event':>12} {'largest key':>12}  "
          f"per node")  # fmt: skip
    for subject, each in zip(subjects, prints, strict=True):
        per_node = ", ".join(f"{size / 2**20:,.1f}" for size in each.per_node)
        print(f"  {subject.label:26} {each.keys:7,} {each.bytes:14,} "
              f"{each.length:14,} {each.bits:12,} "
              f"{quotient(each.bytes, each.bits):>12} {each.largest:12,}  "
              f"{per_node} MiB")  # fmt: skip


def shard_map(cluster: ClusterProcess, shards: int) -> str:
    ports = [node.port for node in cluster.masters()]
    lines = []
    for shard in range(shards):
        owner = cluster.master_of_slot(ClusterProcess.slot_of(f"{{{shard}}}"))
        lines.append(f"shard {shard} on node{ports.index(owner.port) + 1}")
    return ", ".join(lines)


# -- servers --------------------------------------------------------------


def server_info(client: redis.Redis, section: str) -> dict[str, Any]:
    """A section of ``INFO``, parsed."""
    return cast(dict[str, Any], client.info(section))


def unlimited(client: redis.Redis) -> None:
    """No maxmemory, no append-only file: nothing but the data's memory."""
    client.config_set("maxmemory", 0)
    client.config_set("appendonly", "no")


def run(args: argparse.Namespace, directory: Path) -> None:
    single_bitmapist = RedisProcess(directory / "bitmapist")
    single_sharded = RedisProcess(directory / "sharded")
    cluster = ClusterProcess(
        directory / "cluster",
        masters=3,
        replicas_per_master=0,
        node_timeout_ms=NODE_TIMEOUT_MS,
    )
    started: list[RedisProcess | ClusterProcess] = []
    try:
        for single in (single_bitmapist, single_sharded):
            single.directory.mkdir()
            # Listed first: a server that starts but never answers is
            # stopped too.
            started.append(single)
            single.start()
        started.append(cluster)
        cluster.start()
        benchmark(args, single_bitmapist, single_sharded, cluster)
    finally:
        for server in reversed(started):
            server.stop()


def benchmark(
    args: argparse.Namespace,
    single_bitmapist: RedisProcess,
    single_sharded: RedisProcess,
    cluster: ClusterProcess,
) -> None:
    masters = [redis.Redis(port=node.port) for node in cluster.masters()]
    cluster_client = RedisCluster(
        startup_nodes=[
            ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in cluster.startup_nodes
        ]
    )
    sharded = ShardedLayout(shard_bits=args.shard_bits)
    subjects = [
        Subject(
            "1 node, bitmapist",
            Store(redis.Redis(port=single_bitmapist.port), BITMAPIST),
            [redis.Redis(port=single_bitmapist.port)],
        ),
        Subject(
            "1 node, sharded",
            Store(redis.Redis(port=single_sharded.port), sharded),
            [redis.Redis(port=single_sharded.port)],
        ),
        Subject("3 masters, sharded", Store(cluster_client, sharded), masters),
    ]
    for subject in subjects:
        for node in subject.nodes:
            unlimited(node)
    info = server_info(subjects[0].nodes[0], "server")
    memory = server_info(subjects[0].nodes[0], "memory")
    shards = ((args.users - 1) >> args.shard_bits) + 1
    print(f"redis-server {info['redis_version']} ({memory['mem_allocator']}), "
          f"no append-only file, no maxmemory; the cluster: 3 masters, no "
          f"replicas (this machine has {os.cpu_count()} cores), node timeout "
          f"{NODE_TIMEOUT_MS // 1000} s")  # fmt: skip
    print(f"{args.users:,} users over {args.days} days up to {NOW:%Y-%m-%d}, "
          f"{args.active:.0%} active a day; shard_bits {args.shard_bits}: "
          f"{shards} shard(s): {shard_map(cluster, shards)}")  # fmt: skip
    print(
        "CPU seconds: client = this process (all its threads); Redis = INFO "
        "cpu used_cpu_sys + used_cpu_user of each node of the store; others "
        "= the rest of the machine's busy CPU meanwhile (/proc/stat)"
    )

    totals, counts, generating = import_all(
        subjects, args.users, args.days, args.active
    )
    marks = sum(counts.values())
    print(f"\n(1) import: {marks:,} marks ({counts['signup']:,} signup, "
          f"{counts['active']:,} active; {marks * 3:,} SETBITs: month, week, "
          f"day), write_marks in batches of {MAX_BATCH:,}; "
          f"generating them took {generating:.1f} s more")  # fmt: skip
    print_costs(subjects, totals, lambda s: f"{marks / s.wall:,.0f} marks/s")

    prints = [footprint(subject) for subject in subjects]
    if any(each.bits != prints[0].bits for each in prints):
        raise AssertionError(f"the stores hold different bits: {prints}")

    size = args.days
    cohorts = time_query(
        subjects, lambda store: cohort_query(store, size), args.repeats, "get_cohort"
    )
    print(f"\n(2) get_cohort signup/active {size}x{size} days, median of "
          f"{args.repeats}: tables identical")  # fmt: skip
    print_costs(subjects, cohorts, lambda s: f"{s.wall * 1000:,.1f} ms")

    overviews = time_query(subjects, overview_query, args.repeats, "overview")
    print(f"\n(3) overview: count_events(signup, active) and list_event_names, "
          f"median of {args.repeats}: counts and names identical")  # fmt: skip
    print_costs(subjects, overviews, lambda s: f"{s.wall * 1000:,.1f} ms")

    print(f"\n(4) memory of the event keys after the import ({prints[0].bits:,} "
          f"user-events: bits set in month, week and day keys, the same in "
          f"each)")  # fmt: skip
    print_footprints(subjects, prints)

    if args.sparse_users:
        results = sparse_case(subjects, args.sparse_users)
        print(f"\n(5) sparse: {args.sparse_users:,} distinct ids drawn from "
              f"0..2**32-1, one event on one day (counts identical)")  # fmt: skip
        print_footprints(subjects, [each for _, each in results])
        print("  the import of those marks:")
        print_costs(
            subjects,
            [sample for sample, _ in results],
            lambda s: f"{args.sparse_users / s.wall:,.0f} marks/s",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=3_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--active", type=float, default=0.05, help="share of users active a day"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--sparse-users", type=int, default=100_000, help="0 skips the sparse case"
    )
    parser.add_argument("--shard-bits", type=int, default=20)
    args = parser.parse_args()
    if args.users < 1 or not 1 <= args.days <= 1000 or args.repeats < 1:
        parser.error("--users, --days (up to 1000) and --repeats must be positive")
    if not 0 < args.active <= 1 or args.sparse_users < 0:
        parser.error("--active is from 0 to 1; --sparse-users is not negative")
    started = time.perf_counter()
    print(f"load average at the start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as folder:
        run(args, Path(folder))
    print(f"\nload average at the end: {load_average()}; "
          f"{time.perf_counter() - started:.0f} s in all")  # fmt: skip


if __name__ == "__main__":
    main()

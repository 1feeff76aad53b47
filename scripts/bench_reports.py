"""Reports benchmark (issue 15): retention modes, funnels, lifecycle and
stickiness against the naive computation, side by side in one run.

The data: ``--users-per-day`` (default 100,000) users did "visit" on each of
the ``--days`` (default 182: October to March) days up to 2026-03-31, a
twentieth of them new each day (the next ids), the others drawn at random
from everyone seen before, so users come back and the first-time rows have
months of history to exclude: about 1,000,000 users by the last day. The
funnel's later steps ("search", "view", "cart", "buy") are, on each of the last
``--size`` + 7 days, 60% of the previous step's users of that day and the day
before. Keys are bitmapist's: a day key per event and day, built on the
client and SET, and the week and month keys as the BITOP OR of their days,
as ``bitmapist.mark_event`` would leave them.

Each query runs against its naive computation on bitmapist's classes, one
Redis round trip per bitmap operation, ``--rounds`` rounds interleaved (each
side goes first in turn): the medians of the wall time, and of the CPU time
of Redis (``INFO cpu``) and of this process, whose sum a busy machine
disturbs less than the wall time; then once more, counted: the round trips
(sends on the connection: a pipeline is one) and the commands Redis ran
(``INFO commandstats``, which counts the BITOPs inside a script too; on a
shared server, other clients' commands count as well):

(a) a ``--size`` x ``--size`` cohort by days, "visit" then "visit",
    ``cohort="first_time"``, ``retention="on_or_after"``. Naive: per row, the
    OR of the months and days before it (the months of the data, which the
    naive knows without looking), an AND and an XOR (its first-time users)
    and a count; per cell, a ``BitOpOr`` of the days from the column's
    to now's, a ``BitOpAnd`` with the row and a count. And a less naive one,
    which ORs the days from each day to now's once, for all the cells of
    that day.
(a') the default modes (recurring, on), with replacement, against the
    original algorithm (tests/reference.py), as scripts/bench_queries.py (e):
    for reference. (Without replacement the original's key names double with
    each column.)
(b) a 5-step funnel over ``--size`` days, ``within=7``. Naive: per entry
    period, its entries (an OR of step 1's earlier periods, an AND, an XOR, a
    count), then per step and period of the window an AND and an OR, and a
    count per step: the package's recurrence, a round trip per BITOP.
    redis-py's BITOP into named scratch keys, not bitmapist's ``BitOp``
    classes, whose keys are named after their operands: the recurrence's
    names would grow binomially, to hundreds of kB.
(c) a ``--size``-day lifecycle of "visit". Naive: per day, the OR of the
    months and days before it (``BitOpOr``), ``BitOpAnd`` with the day before
    and with that history, and four counts.
(d) stickiness of "visit" in March 2026 (31 days). Two naives: iterating
    each day's ``DayEvents`` (bitmapist's own decoding of a GET in Python,
    a round trip per day) and counting each user's days in Python, as a
    bitmapist user would; and the package's bit-sliced counter sent one
    BITOP a round trip.

Beside (a), (b), (c) and (d), their floor: one round trip (an MGET) that
reads every bitmap the query needs, then its bit operations on the client
with numpy on 64-bit words, and the package's wall time over the floor's.

At the end, every package result is compared with its naive ones and its
floor: the script exits with 1 if any differ.

    python scripts/bench_reports.py                  # private redis-server, about 2 min
    python scripts/bench_reports.py --redis-url redis://127.0.0.1:6391/0
    python scripts/bench_reports.py --quick          # tiny sizes: proves it runs

``--redis-url``'s db is emptied before and after!
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from random import Random
from typing import Any, TypeVar, cast

import bitmapist
import numpy
import redis
from bitmapist import BitOpAnd, BitOpOr, BitOpXor, DayEvents, MonthEvents, WeekEvents

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchkit import bench_redis, load_average
from reference import reference_cohort

from flask_bitmapist.report.cohort import get_cohort
from flask_bitmapist.report.funnel import get_funnel
from flask_bitmapist.report.lifecycle import get_lifecycle
from flask_bitmapist.report.stickiness import get_stickiness
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.layout import BITMAPIST

NOW = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)
EVENT = "visit"
STEPS = ("visit", "search", "view", "cart", "buy")
WITHIN = 7
#: The share of a day's users who are new, and of a step's who go on.
NEW_SHARE = 1 / 20
STEP_SHARE = 0.6
#: The commands whose calls each side's counted run reports.
COMMANDS = ("evalsha", "eval", "bitop", "bitcount", "exists", "get", "scan")
#: The label of each query's floor (one MGET, then numpy).
FLOOR = "floor (MGET + numpy)"
#: The naive funnel's and stickiness's scratch keys.
SCRATCH = "bench_reports_scratch:"

T = TypeVar("T")


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` starting from the ``turn``-th: each goes first in turn, so
    that warm-up, frequency scaling and a neighbour's load favour none."""
    shift = turn % len(items)
    return [*items[shift:], *items[:shift]]


def day_of(offset: int) -> datetime:
    """The day ``offset`` days before NOW's (NOW's time of day)."""
    return NOW - timedelta(days=offset)


def day_key(event_name: str, day: datetime) -> str:
    return str(DayEvents.from_date(event_name, day).redis_key)


# -- data ---------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    """What was seeded: the first day, and the number of users."""

    first_day: datetime
    users: int


def bitmap(users: Sequence[int]) -> bytes:
    """The bitmap of ``users`` as bitmapist writes it: bit ``u`` is byte
    ``u // 8``'s bit ``7 - u % 8``, and the bitmap ends with its last user."""
    bits = bytearray(max(users) // 8 + 1)
    for user in users:
        bits[user >> 3] |= 0x80 >> (user & 7)
    return bytes(bits)


def seed(client: redis.Redis, users_per_day: int, days: int, step_days: int) -> Data:
    """Write the day keys of "visit" (and of the funnel's steps on the last
    ``step_days`` days), then each week's and month's key as the OR of its
    days."""
    rng = Random(7)
    new_per_day = max(1, round(users_per_day * NEW_SHARE))
    population = 0
    previous: dict[str, set[int]] = {}
    written: dict[str, list[datetime]] = {}
    for offset in range(days - 1, -1, -1):
        day = day_of(offset)
        fresh = users_per_day if population == 0 else new_per_day
        visitors = set(rng.sample(range(population), users_per_day - fresh))
        visitors.update(range(population, population + fresh))
        population += fresh
        today = {EVENT: visitors}
        if offset < step_days:
            for before, step in itertools.pairwise(STEPS):
                pool = sorted(today[before] | previous.get(before, set()))
                size = min(len(pool), round(len(today[before]) * STEP_SHARE))
                today[step] = set(rng.sample(pool, size))
        pipeline = client.pipeline(transaction=False)
        for event_name, users in today.items():
            if users:
                pipeline.set(day_key(event_name, day), bitmap(sorted(users)))
                written.setdefault(event_name, []).append(day)
        pipeline.execute()
        previous = today
    pipeline = client.pipeline(transaction=False)
    for event_name, event_days in written.items():
        for kind in (WeekEvents, MonthEvents):
            groups: dict[str, list[str]] = {}
            for day in event_days:
                key = str(kind.from_date(event_name, day).redis_key)
                groups.setdefault(key, []).append(day_key(event_name, day))
            for key, sources in groups.items():
                pipeline.bitop("OR", key, *sources)
    pipeline.execute()
    return Data(day_of(days - 1), population)


# -- the naive computations ---------------------------------------------------


def bit_count(client: redis.Redis, key: str) -> int:
    """BITCOUNT of ``key``: a round trip."""
    return int(cast(int, client.bitcount(key)))


Events = Any


def naive_history(client: redis.Redis, data: Data, day: datetime) -> list[Events]:
    """The bitmapist objects whose union is every "visit" before ``day``:
    the months of the data before ``day``'s month, then that month's days
    before ``day``."""
    month_start = day.replace(day=1)
    month = data.first_day.replace(day=1)
    history: list[Events] = []
    while month < month_start:
        history.append(MonthEvents(EVENT, month.year, month.month, system=client))
        month = (month + timedelta(days=32)).replace(day=1)
    history += [
        DayEvents.from_date(EVENT, month_start + timedelta(days=number), system=client)
        for number in range((day - month_start).days)
    ]
    return history


def naive_first_time_cohort(
    client: redis.Redis, data: Data, size: int, unions_once: bool = False
) -> tuple[list[list[int | None]], list[int]]:
    """(a)'s cohort on bitmapist's classes, a round trip per operation: per
    cell, the OR of the days from its column's to now's (with
    ``unions_once``, the OR of each of those runs of days once, kept for the
    cells of the same day)."""
    table: list[list[int | None]] = []
    totals = []
    unions: dict[datetime, Events] = {}

    def later_than(start: datetime) -> Events:
        union = unions.get(start)
        if union is None:
            days = (NOW - start).days + 1
            union = BitOpOr(
                client,
                *(
                    DayEvents.from_date(EVENT, start + timedelta(days=n), system=client)
                    for n in range(days)
                ),
            )
            if unions_once:
                unions[start] = union
        return union

    try:
        for row in range(size):
            day = day_of(size - 1 - row)
            row_users = DayEvents.from_date(EVENT, day, system=client)
            history = naive_history(client, data, day)
            if history:
                before = BitOpOr(client, *history)
                seen = BitOpAnd(client, row_users, before)
                row_users = BitOpXor(client, row_users, seen)
            total = len(row_users)
            totals.append(total)
            if not total:
                table.append([None] * size)
                continue
            cells: list[int | None] = []
            for column in range(size):
                start = day + timedelta(days=column)
                if start > NOW:
                    cells.append(None)
                    continue
                cells.append(len(BitOpAnd(client, row_users, later_than(start))))
            table.append(cells)
    finally:
        bitmapist.delete_runtime_bitop_keys()
    return table, totals


def naive_funnel(client: redis.Redis, size: int) -> list[list[int]]:
    """(b)'s funnel: the recurrence ``R[k][u] = R[k][u - 1] | (R[k - 1][u] &
    step_k[u])``, a round trip per BITOP and per count, into scratch keys."""
    entered, seen, common = (f"{SCRATCH}{name}" for name in ("in", "seen", "and"))
    banks = [
        [f"{SCRATCH}{bank}:{index}" for index in range(WITHIN + 1)] for bank in "ab"
    ]
    rows = []
    try:
        for entry in range(size):
            day = day_of(size - 1 - entry)
            first_step = day_key(STEPS[0], day)
            if entry == 0:
                client.bitop("OR", entered, first_step)
            else:
                earlier = [
                    day_key(STEPS[0], day_of(size - 1 - e)) for e in range(entry)
                ]
                client.bitop("OR", seen, *earlier)
                client.bitop("AND", common, first_step, seen)
                client.bitop("XOR", entered, first_step, common)
            row = [bit_count(client, entered)]
            window = min(WITHIN, size - 1 - entry) + 1
            reached = [entered] * window
            for number, step in enumerate(STEPS[1:]):
                done = banks[number % 2]
                for index in range(window):
                    did = day_key(step, day + timedelta(days=index))
                    if index == 0:
                        client.bitop("AND", done[0], reached[0], did)
                    else:
                        client.bitop("AND", common, reached[index], did)
                        client.bitop("OR", done[index], done[index - 1], common)
                row.append(bit_count(client, done[window - 1]))
                reached = done
            rows.append(row)
    finally:
        client.delete(entered, seen, common, *banks[0], *banks[1])
    return rows


def naive_lifecycle(
    client: redis.Redis, data: Data, size: int
) -> list[tuple[int, int, int, int]]:
    """(c)'s lifecycle on bitmapist's classes: ``(new, returning,
    resurrecting, dormant)`` per day, oldest first."""
    rows = []
    try:
        for offset in range(size - 1, -1, -1):
            day = day_of(offset)
            active = DayEvents.from_date(EVENT, day, system=client)
            before = DayEvents.from_date(EVENT, day_of(offset + 1), system=client)
            history = naive_history(client, data, day)
            in_period = len(active)
            in_both = len(BitOpAnd(client, active, before))
            seen_before = (
                len(BitOpAnd(client, active, BitOpOr(client, *history)))
                if history
                else 0
            )
            in_previous = len(before)
            rows.append(
                (
                    in_period - seen_before,
                    in_both,
                    seen_before - in_both,
                    in_previous - in_both,
                )
            )
    finally:
        bitmapist.delete_runtime_bitop_keys()
    return rows


def month_days() -> list[datetime]:
    start = NOW.replace(day=1)
    return [
        start + timedelta(days=number)
        for number in range(((start + timedelta(days=32)).replace(day=1) - start).days)
    ]


def naive_stickiness_iterated(client: redis.Redis) -> list[int]:
    """(d), as a bitmapist user would: each day's users (``DayEvents``'s
    iteration: a GET, decoded in Python), each user's days counted."""
    days = month_days()
    per_user: Counter[int] = Counter()
    for day in days:
        per_user.update(DayEvents.from_date(EVENT, day, system=client))
    users_with = Counter(per_user.values())
    return [users_with[count] for count in range(1, len(days) + 1)]


def naive_stickiness_bitops(client: redis.Redis) -> list[int]:
    """(d) with the package's bit-sliced counter, a round trip per BITOP and
    per count."""
    days = month_days()
    bits = len(days).bit_length()
    counters = [f"{SCRATCH}counter:{bit}" for bit in range(bits)]
    carries = (f"{SCRATCH}carry:0", f"{SCRATCH}carry:1")
    exact, others = f"{SCRATCH}exact", f"{SCRATCH}others"
    totals = []
    try:
        for day in days:
            carry = day_key(EVENT, day)
            for bit, counter in enumerate(counters):
                if bit < bits - 1:
                    client.bitop("AND", carries[bit % 2], counter, carry)
                client.bitop("XOR", counter, counter, carry)
                carry = carries[bit % 2]
        for count in range(1, len(days) + 1):
            ones = [counter for bit, counter in enumerate(counters) if count >> bit & 1]
            zeros = [c for bit, c in enumerate(counters) if not count >> bit & 1]
            client.bitop("AND", exact, *ones)
            total = bit_count(client, exact)
            if zeros:
                client.bitop("OR", others, *zeros)
                client.bitop("AND", others, others, exact)
                total -= bit_count(client, others)
            totals.append(total)
    finally:
        client.delete(*counters, *carries, exact, others)
    return totals


# -- the floors ---------------------------------------------------------------
# Each query's floor: one round trip (an MGET) that reads every bitmap it
# needs, then its bit operations on the client, with numpy on 64-bit words.


def read_words(client: redis.Redis, keys: Sequence[str]) -> Any:
    """The bitmaps of ``keys`` in one MGET, as a matrix of 64-bit words, a
    key a row, each padded with zeros to the longest."""
    values = [value or b"" for value in cast(list[Any], client.mget(keys))]
    width = (max(len(value) for value in values) + 7) // 8 * 8
    joined = b"".join(value.ljust(width, b"\0") for value in values)
    return numpy.frombuffer(joined, dtype=numpy.uint64).reshape(len(keys), -1)


def count(bits: Any) -> int:
    return int(numpy.bitwise_count(bits).sum())


def history_keys(client: redis.Redis, data: Data, day: datetime) -> list[str]:
    """The keys whose union is every "visit" before ``day`` (those of
    :func:`naive_history`)."""
    return [str(events.redis_key) for events in naive_history(client, data, day)]


def history_and_days(
    client: redis.Redis, data: Data, days: list[datetime], first: int
) -> tuple[Any, Any]:
    """In one MGET: every "visit" before ``days[first]`` (the OR of its
    history's keys, zeros for none), and the bitmap of each of ``days``."""
    before = history_keys(client, data, days[first])
    bits = read_words(client, [*before, *(day_key(EVENT, day) for day in days)])
    return numpy.bitwise_or.reduce(bits[: len(before)], axis=0), bits[len(before) :]


def floor_first_time_cohort(
    client: redis.Redis, data: Data, size: int
) -> tuple[list[list[int | None]], list[int]]:
    """(a)'s floor: the history before the first row and the rows' days in
    one MGET; each row's users less the history, the history grown row by
    row; each cell the AND with the OR of the days from its column's on."""
    history, rows = history_and_days(
        client, data, [day_of(size - 1 - row) for row in range(size)], 0
    )
    later = numpy.bitwise_or.accumulate(rows[::-1], axis=0)[::-1]
    table: list[list[int | None]] = []
    totals = []
    for row in range(size):
        users = rows[row] & ~history
        history = history | rows[row]
        total = count(users)
        totals.append(total)
        if not total:
            table.append([None] * size)
            continue
        table.append(
            [
                count(users & later[row + column]) if row + column < size else None
                for column in range(size)
            ]
        )
    return table, totals


def floor_funnel(client: redis.Redis, size: int) -> list[list[int]]:
    """(b)'s floor: every step's days in one MGET, then the recurrence."""
    days = [day_of(size - 1 - index) for index in range(size)]
    bits = read_words(client, [day_key(step, day) for step in STEPS for day in days])
    steps = bits.reshape(len(STEPS), size, -1)
    seen = numpy.zeros(bits.shape[1], dtype=numpy.uint64)
    rows = []
    for entry in range(size):
        first = steps[0][entry]
        entered = first & ~seen
        seen = seen | first
        row = [count(entered)]
        window = min(WITHIN, size - 1 - entry) + 1
        reached = [entered] * window
        for step in steps[1:]:
            done = [reached[0] & step[entry]]
            for index in range(1, window):
                done.append(done[-1] | (reached[index] & step[entry + index]))
            row.append(count(done[-1]))
            reached = done
        rows.append(row)
    return rows


def floor_lifecycle(
    client: redis.Redis, data: Data, size: int
) -> list[tuple[int, int, int, int]]:
    """(c)'s floor: the history before the first day and the days (and the
    one before them) in one MGET, the history grown day by day."""
    history, active = history_and_days(
        client, data, [day_of(offset) for offset in range(size, -1, -1)], 1
    )
    rows = []
    for index in range(1, size + 1):
        today, yesterday = active[index], active[index - 1]
        in_both = count(today & yesterday)
        seen_before = count(today & history)
        rows.append(
            (
                count(today) - seen_before,
                in_both,
                seen_before - in_both,
                count(yesterday) - in_both,
            )
        )
        history = history | today
    return rows


def floor_stickiness(client: redis.Redis) -> list[int]:
    """(d)'s floor: the month's days in one MGET, a bit-sliced counter of
    each user's days, then the users of each count."""
    days = month_days()
    bits = read_words(client, [day_key(EVENT, day) for day in days])
    counters = [numpy.zeros(bits.shape[1], dtype=numpy.uint64)] * len(days).bit_length()
    for day in bits:
        carry = day
        for index, counter in enumerate(counters):
            counters[index], carry = counter ^ carry, counter & carry
    per_user = sum(
        numpy.unpackbits(counter.view(numpy.uint8)).astype(numpy.int64) << index
        for index, counter in enumerate(counters)
    )
    users_with = numpy.bincount(per_user, minlength=len(days) + 1)
    return [int(users) for users in users_with[1:]]


# -- measuring ----------------------------------------------------------------


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
    """One computation under test: per round, its wall time and the CPU
    time of Redis and of this process; and its counted run."""

    label: str
    run: Callable[[], Any]
    wall: list[float] = field(default_factory=list)
    redis_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    trips: int = 0
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        """The median of the rounds' CPU time, Redis's and this process's."""
        return statistics.median(
            map(sum, zip(self.redis_cpu, self.client_cpu, strict=True))
        )


def command_calls(server: redis.Redis) -> dict[str, int]:
    """The calls of each of :data:`COMMANDS` since the server started."""
    stats = cast(dict[str, dict[str, Any]], server.info("commandstats"))
    return {
        name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in COMMANDS
    }


def redis_cpu_seconds(server: redis.Redis) -> float:
    """The CPU time the Redis server has used (``INFO cpu``): on a machine
    shared with other work, less than the time Redis took, which includes
    its waits for a core."""
    cpu = cast(dict[str, Any], server.info("cpu"))
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measure(
    sides: list[Side], rounds: int, sends: list[int], server: redis.Redis
) -> None:
    """Time each side ``rounds`` times, interleaved; then run each once more,
    counted (``server``, a client of its own, reads the server's counters,
    outside the timed part)."""
    for turn in range(rounds):
        for side in rotated(sides, turn):
            redis_cpu = redis_cpu_seconds(server)
            client_cpu = time.process_time()
            started = time.perf_counter()
            result = side.run()
            side.wall.append(time.perf_counter() - started)
            side.client_cpu.append(time.process_time() - client_cpu)
            side.redis_cpu.append(redis_cpu_seconds(server) - redis_cpu)
            side.results.append(result)
    for side in sides:
        calls, trips = command_calls(server), sends[0]
        side.results.append(side.run())
        side.trips = sends[0] - trips
        after = command_calls(server)
        side.calls = {name: after[name] - calls[name] for name in COMMANDS}


def report(title: str, sides: list[Side], rounds: int) -> None:
    """Print a query's sides, then each naive one's ratios to the package's
    (the first side)."""
    print(f"\n{title}; medians of {rounds} round(s), interleaved; round trips "
          f"and commands of one run more")  # fmt: skip
    for side in sides:
        commands = ", ".join(
            f"{calls:,} {name.upper()}" for name, calls in side.calls.items() if calls
        )
        print(f"  {side.label:<30} {side.median_wall * 1000:8.1f} ms "
              f"{statistics.median(side.redis_cpu) * 1000:7.1f} ms Redis CPU "
              f"{statistics.median(side.client_cpu) * 1000:7.1f} ms client CPU "
              f"{side.trips:>5,} round trip(s)  {commands}")  # fmt: skip
    package = sides[0]
    for side in sides[1:]:
        if side.label == FLOOR:
            ratio = package.median_wall / side.median_wall
            print(f"  {package.label} / the floor: {ratio:.2f}x wall time")
            continue
        print(f"  ratio {side.label} / {package.label}: "
              f"{side.median_wall / package.median_wall:.1f}x wall time, "
              f"{side.median_cpu / package.median_cpu:.1f}x CPU time (Redis's "
              f"and the client's)")  # fmt: skip


@dataclass
class Checks:
    """The comparisons of package and naive results, by query."""

    failures: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def compare(
        self, name: str, sides: list[Side], convert: Callable[[Any], Any]
    ) -> None:
        """Every run of every side must give the package's first result."""
        expected = convert(sides[0].results[0])
        for side in sides:
            for number, result in enumerate(side.results):
                if convert(result) != expected:
                    self.failures.append(
                        f"{name}: {side.label}'s run {number + 1} gave "
                        f"{convert(result)!r}, the package {expected!r}"
                    )
                    return
        self.passed.append(name)


def table_and_totals(
    cohort: tuple[list[list[int | None]], list[datetime], list[int]],
) -> tuple[list[list[int | None]], list[int]]:
    """A :func:`get_cohort` result as the naive computations return theirs."""
    table, _, totals = cohort
    return table, totals


def run(redis_url: str, users_per_day: int, days: int, size: int, rounds: int) -> bool:
    """Seed, measure, print; return whether every result matched."""
    server = redis.Redis.from_url(redis_url)
    client, sends = counting_client(redis_url)
    store = Store(client, BITMAPIST)
    started = time.perf_counter()
    data = seed(server, users_per_day, days, size + WITHIN)
    print(f"seeded in {time.perf_counter() - started:.0f} s: {data.users:,} users, "
          f"{users_per_day:,} a day ({round(users_per_day * NEW_SHARE):,} new) "
          f"from {data.first_day.date()} to {NOW.date()}, "
          f"{server.dbsize():,} keys, "
          f"{cast(dict[str, Any], server.info('memory'))['used_memory_human']} "
          f"used")  # fmt: skip
    checks = Checks()

    first_time = [
        Side(
            "get_cohort",
            lambda: table_and_totals(
                get_cohort(
                    EVENT,
                    EVENT,
                    num_rows=size,
                    num_cols=size,
                    now=NOW,
                    system=store,
                    cohort="first_time",
                    retention="on_or_after",
                )
            ),
        ),
        Side(
            "naive (bitmapist, per cell)",
            lambda: naive_first_time_cohort(client, data, size),
        ),
        Side(
            "naive, each union once",
            lambda: naive_first_time_cohort(client, data, size, unions_once=True),
        ),
        Side(FLOOR, lambda: floor_first_time_cohort(client, data, size)),
    ]
    measure(first_time, rounds, sends, server)
    report(f"(a) {size}x{size} cohort by days, cohort=\"first_time\", "
           f"retention=\"on_or_after\"", first_time, rounds)  # fmt: skip
    checks.compare("(a)", first_time, lambda table: table)

    default = [
        Side(
            "get_cohort",
            lambda: table_and_totals(
                get_cohort(
                    EVENT,
                    EVENT,
                    num_rows=size,
                    num_cols=size,
                    now=NOW,
                    system=store,
                    with_replacement=True,
                )
            ),
        ),
        Side(
            "original algorithm",
            lambda: reference_cohort(
                EVENT, EVENT, [], "days", size, size, True, NOW, client
            ),
        ),
    ]
    measure(default, rounds, sends, server)
    report(f"(a') {size}x{size} cohort by days, the default modes (recurring, on), "
           f"with replacement", default, rounds)  # fmt: skip
    checks.compare("(a')", default, lambda table: table)

    funnel = [
        Side(
            "get_funnel",
            lambda: get_funnel(STEPS, "days", size, WITHIN, NOW, store).rows,
        ),
        Side("naive (a round trip per BITOP)", lambda: naive_funnel(client, size)),
        Side(FLOOR, lambda: floor_funnel(client, size)),
    ]
    measure(funnel, rounds, sends, server)
    report(f"(b) {len(STEPS)}-step funnel over {size} days, within={WITHIN}",
           funnel, rounds)  # fmt: skip
    checks.compare("(b)", funnel, lambda rows: rows)

    lifecycle = [
        Side(
            "get_lifecycle",
            lambda: [
                (row.new, row.returning, row.resurrecting, row.dormant)
                for row in get_lifecycle(EVENT, "days", size, NOW, store)
            ],
        ),
        Side("naive (bitmapist, per day)", lambda: naive_lifecycle(client, data, size)),
        Side(FLOOR, lambda: floor_lifecycle(client, data, size)),
    ]
    measure(lifecycle, rounds, sends, server)
    report(f"(c) {size}-day lifecycle", lifecycle, rounds)
    checks.compare("(c)", lifecycle, lambda rows: rows)

    stickiness = [
        Side("get_stickiness", lambda: get_stickiness(EVENT, "months", NOW, store)),
        Side("naive (DayEvents iterated)", lambda: naive_stickiness_iterated(client)),
        Side("naive (a round trip per BITOP)", lambda: naive_stickiness_bitops(client)),
        Side(FLOOR, lambda: floor_stickiness(client)),
    ]
    measure(stickiness, rounds, sends, server)
    report(f"(d) stickiness of {NOW:%B %Y} ({len(month_days())} days)",
           stickiness, rounds)  # fmt: skip
    checks.compare("(d)", stickiness, lambda counts: counts)

    if checks.failures:
        for failure in checks.failures:
            print(f"MISMATCH {failure}", file=sys.stderr)
        return False
    print(f"\ncheck: every run's package results equal the naive ones: "
          f"{', '.join(checks.passed)}")  # fmt: skip
    return True


# -- main ---------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("BITMAPIST_BENCH_REDIS_URL")
    )
    parser.add_argument("--users-per-day", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=182, help="of history")
    parser.add_argument(
        "--size", type=int, default=30, help="rows, columns and periods"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes: 1,000 users a day, 70 days, 5 periods, 1 round",
    )
    args = parser.parse_args()
    if args.quick:
        args.users_per_day, args.days, args.size, args.rounds = 1000, 70, 5, 1
    if min(args.users_per_day, args.size, args.rounds) < 1:
        parser.error("every size must be positive")
    # The funnel's steps and stickiness's month are written on the last days.
    if args.days < max(args.size + WITHIN + 1, NOW.day):
        parser.error(f"--days must be at least {max(args.size + WITHIN + 1, NOW.day)}")
    started = time.perf_counter()
    with bench_redis(args.redis_url) as redis_url:
        info = cast(dict[str, Any], redis.Redis.from_url(redis_url).info("server"))
        print(f"Python {sys.version.split()[0]}, redis-py {redis.__version__}, "
              f"redis-server {info['redis_version']}, bitmapist "
              f"{importlib.metadata.version('bitmapist')}, {os.cpu_count()} cores, "
              f"load average at the start {load_average()}")  # fmt: skip
        matched = run(redis_url, args.users_per_day, args.days, args.size, args.rounds)
    print(f"\nload average at the end: {load_average()}; "
          f"{time.perf_counter() - started:.0f} s in all")  # fmt: skip
    if not matched:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Query and import benchmark: ratios measured side by side in one run.

(e) A 30x30 cohort by days, 100,000 users active per day, pipelined
    ``get_cohort`` against the original algorithm on bitmapist's classes
    (tests/reference.py), and the share of its wall time spent inside Redis
    (``INFO cpu``). With replacement: without it, the original XORs
    each column's result into the row's base, and bitmapist names that key
    after both operands, so the name doubles with each column and passes
    Redis's limits long before column 30.
(f) Importing 1,000,000 events (JSON Lines) against a loop of
    ``bitmapist.mark_event`` over the same events, and the import's SETBITs/s
    against ``redis-benchmark`` sending pipelined SETBITs to the same server.

(g) The dashboard overview's counts (today, week, month, year) of 100
    events in one pipeline (``count_events``) against the original
    dashboard's loop of ``len(DayEvents(...))``, ``WeekEvents``,
    ``MonthEvents`` and ``YearEvents`` per event.

    python scripts/bench_queries.py --redis-url redis://127.0.0.1:6379/13
    python scripts/bench_queries.py --quick

``scripts/bench.py`` runs it too. The Redis db is emptied before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bitmapist
import redis
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchkit import bench_redis
from reference import reference_cohort

from flask_bitmapist import (
    DayEvents,
    FlaskBitmapist,
    MonthEvents,
    WeekEvents,
    YearEvents,
    count_events,
    get_cohort,
)
from flask_bitmapist.store.writer import Mark
from flask_bitmapist.track.importer import import_marks, read_marks

NOW = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)


def redis_cpu_seconds(client: redis.Redis) -> float:
    """The CPU time the Redis server has used (``INFO cpu``). Not
    ``commandstats``, which counts a script's inner commands twice."""
    cpu: dict[str, Any] = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def seed_days(
    client: redis.Redis, days: int, users_per_day: int, population: int
) -> None:
    """For each of ``days`` days up to NOW, a bitmap of ``users_per_day`` random
    users for "signup" and for "active", built on the client and SET at once."""
    rng = random.Random(7)
    pipeline = client.pipeline(transaction=False)
    for offset in range(days):
        day = NOW - timedelta(days=offset)
        for event in ("signup", "active"):
            bits = bytearray(population // 8 + 1)
            for user in rng.sample(range(population), users_per_day):
                bits[user >> 3] |= 0x80 >> (user & 7)
            pipeline.set(DayEvents.from_date(event, day).redis_key, bytes(bits))
    pipeline.execute()


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def cohort_benchmark(
    redis_url: str, size: int, users_per_day: int, repeats: int
) -> None:
    client = redis.Redis.from_url(redis_url)
    seed_days(client, size, users_per_day, users_per_day * 3)
    app = Flask("bench_queries")
    app.config.update(TESTING=True, BITMAPIST_REDIS_URL=redis_url)
    FlaskBitmapist(app)

    def pipelined(with_replacement: bool = True) -> Any:
        with app.app_context():
            cohort, _, totals = get_cohort(
                "signup",
                "active",
                num_rows=size,
                num_cols=size,
                now=NOW,
                with_replacement=with_replacement,
            )
        return cohort, totals

    def original() -> Any:
        return reference_cohort(
            "signup", "active", [], "days", size, size, True, NOW, client
        )

    ours, theirs, inside = [], [], []
    for _ in range(repeats):
        before = redis_cpu_seconds(client)
        seconds, result = timed(pipelined)
        inside.append((redis_cpu_seconds(client) - before) / seconds)
        ours.append(seconds)
        seconds, expected = timed(original)
        theirs.append(seconds)
        if result != expected:
            raise AssertionError("get_cohort and the original algorithm disagree")
    without, _ = timed(lambda: pipelined(with_replacement=False))
    print(f"\n(e) {size}x{size} cohort by days, {users_per_day:,} users a day, "
          f"with replacement, median of {repeats}")  # fmt: skip
    print(f"  pipelined get_cohort        {statistics.median(ours) * 1000:9.1f} ms")
    print(f"  original algorithm          {statistics.median(theirs) * 1000:9.1f} ms")
    ratio = statistics.median(theirs) / statistics.median(ours)
    print(f"  ratio                       {ratio:9.1f}x faster")
    share = statistics.median(inside)
    print(f"  share of get_cohort's wall time inside Redis: {share:.0%}")
    print(f"  get_cohort without replacement: {without * 1000:.1f} ms")
    client.flushdb()


def event_lines(count: int) -> str:
    rng = random.Random(11)
    events = ("song:played", "song:liked", "app:opened")
    start = NOW - timedelta(days=30)
    return "".join(
        json.dumps(
            {
                "event": rng.choice(events),
                "user": rng.randrange(1_000_000),
                "time": (
                    start + timedelta(seconds=rng.randrange(30 * 86400))
                ).isoformat(),
            }
        )
        + "\n"
        for _ in range(count)
    )


def import_benchmark(redis_url: str, count: int) -> None:
    client = redis.Redis.from_url(redis_url)
    text = event_lines(count)
    client.flushdb()
    import_seconds, result = timed(
        lambda: import_marks(client, read_marks(io.StringIO(text), "jsonl"))
    )
    if result.imported != count:
        raise AssertionError(f"imported {result.imported} of {count}")
    imported = {key: client.get(key) for key in client.keys("*")}
    client.flushdb()
    parsed = [json.loads(line) for line in text.splitlines()]

    def loop() -> None:
        for record in parsed:
            bitmapist.mark_event(
                record["event"],
                record["user"],
                system=client,  # type: ignore[arg-type]
                now=datetime.fromisoformat(record["time"]),
            )

    loop_seconds, _ = timed(loop)
    if {key: client.get(key) for key in client.keys("*")} != imported:
        raise AssertionError("the import and the mark_event loop wrote different bits")
    client.flushdb()
    setbits_per_second = count * 3 / import_seconds
    print(f"\n(f) importing {count:,} events")
    print(f"  flask bitmapist import      {count / import_seconds:12,.0f} events/s")
    print(f"  bitmapist.mark_event loop   {count / loop_seconds:12,.0f} events/s")
    print(
        f"  ratio                       {loop_seconds / import_seconds:12.1f}x faster"
    )
    print(f"  import SETBITs/s            {setbits_per_second:12,.0f}")
    benchmark = redis_benchmark_setbits(redis_url, max(count, 100_000))
    if benchmark is None:
        print("  redis-benchmark not found: no comparison with pipelined SETBIT")
    else:
        print(f"  redis-benchmark SETBIT -P 64 {benchmark:11,.0f} SETBITs/s")
        print(f"  import / redis-benchmark    {setbits_per_second / benchmark:12.2f}")


def redis_benchmark_setbits(redis_url: str, requests: int) -> float | None:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    options = redis.connection.parse_url(redis_url)
    command = [binary, "-h", str(options.get("host", "127.0.0.1")), "-p",
               str(options.get("port", 6379)), "--dbnum", str(options.get("db", 0)),
               "-n", str(requests), "-P", "64", "-r", "1000", "-q",
               "setbit", "bench:setbit:__rand_int__", "123456", "1"]  # fmt: skip
    # Redis reads no zero-padded offset, and __rand_int__ is padded: the random
    # part goes in the key, over 1,000 keys.
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"([\d.]+) requests per second", output.replace(",", ""))
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("bench:setbit:*", count=1000):
        client.delete(key)
    return float(found.group(1)) if found else None


def overview_benchmark(
    redis_url: str, events: int, marks_per_event: int, repeats: int
) -> None:
    client = redis.Redis.from_url(redis_url)
    chance = random.Random(5)
    names = [f"event{index:03d}" for index in range(events)]
    marks = (
        (number, mark)
        for number, mark in enumerate(
            (
                Mark(
                    name,
                    chance.randrange(100_000),
                    NOW - timedelta(days=chance.randrange(90)),
                    False,
                    False,
                )
                for name in names
                for _ in range(marks_per_event)
            ),
            1,
        )
    )
    import_marks(client, marks)
    app = Flask("bench_overview")
    app.config.update(TESTING=True, BITMAPIST_REDIS_URL=redis_url)
    FlaskBitmapist(app)

    def pipelined() -> Any:
        with app.app_context():
            counts = count_events(names, now=NOW)
        return [[c.day, c.week, c.month, c.year] for c in counts.values()]

    def original() -> Any:
        iso_year, iso_week, _ = NOW.isocalendar()
        return [
            [
                len(DayEvents(name, NOW.year, NOW.month, NOW.day, system=client)),
                len(WeekEvents(name, iso_year, iso_week, system=client)),
                len(MonthEvents(name, NOW.year, NOW.month, system=client)),
                len(YearEvents(name, NOW.year, system=client)),
            ]
            for name in names
        ]

    ours, theirs = [], []
    for _ in range(repeats):
        seconds, result = timed(pipelined)
        ours.append(seconds)
        seconds, expected = timed(original)
        theirs.append(seconds)
        if result != expected:
            raise AssertionError("count_events and the original loop disagree")
    print(f"\n(g) dashboard overview counts of {events} events, median of {repeats}")
    print(f"  count_events (one pipeline) {statistics.median(ours) * 1000:9.1f} ms")
    print(f"  original per-event loop     {statistics.median(theirs) * 1000:9.1f} ms")
    ratio = statistics.median(theirs) / statistics.median(ours)
    print(f"  ratio                       {ratio:9.1f}x faster")
    client.flushdb()


def run(redis_url: str, quick: bool) -> None:
    if quick:
        cohort_benchmark(redis_url, size=5, users_per_day=1_000, repeats=1)
        import_benchmark(redis_url, count=2_000)
        overview_benchmark(redis_url, events=5, marks_per_event=50, repeats=1)
    else:
        cohort_benchmark(redis_url, size=30, users_per_day=100_000, repeats=7)
        import_benchmark(redis_url, count=1_000_000)
        overview_benchmark(redis_url, events=100, marks_per_event=2_000, repeats=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("BITMAPIST_BENCH_REDIS_URL")
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: proves it runs"
    )
    args = parser.parse_args()
    with bench_redis(args.redis_url) as redis_url:
        run(redis_url, args.quick)


if __name__ == "__main__":
    main()

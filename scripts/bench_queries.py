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

(i) Redis kept responsive: a second process PINGs Redis while a 90x90
    cohort by days (with replacement, and without) and a 90-day lifecycle
    run on 1,000,000 users a day, on each engine: the PINGs' p50, p99 and
    maximum, the longest command Redis ran (``SLOWLOG``), and the scripts.

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
import functools
import importlib.util
import io
import json
import multiprocessing
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
import numpy
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
    get_lifecycle,
)
from flask_bitmapist.store import backend
from flask_bitmapist.store.writer import Mark
from flask_bitmapist.track.importer import MarkReader, import_marks, read_marks

NOW = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)


def redis_cpu_seconds(client: redis.Redis) -> float:
    """The CPU time the Redis server has used (``INFO cpu``). Not
    ``commandstats``, which counts a script's inner commands twice."""
    cpu: dict[str, Any] = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def seed_days(
    client: redis.Redis, days: int, users_per_day: int, population: int
) -> None:
    """For each of ``days`` days up to NOW, a bitmap of about ``users_per_day``
    random users of ``population`` for "signup" and for "active", built on the
    client (numpy) and SET at once, a few keys a round trip."""
    rng = numpy.random.default_rng(7)
    pipeline = client.pipeline(transaction=False)
    for offset in range(days):
        day = NOW - timedelta(days=offset)
        for event in ("signup", "active"):
            bits = rng.random(population) < users_per_day / population
            # packbits puts user 0 in the high bit of byte 0, as Redis does.
            value = numpy.packbits(bits).tobytes()
            pipeline.set(DayEvents.from_date(event, day).redis_key, value)
        if len(pipeline) >= 16:
            pipeline.execute()
    pipeline.execute()


def rotated(names: list[str], round_number: int) -> list[str]:
    """``names`` starting from a different one each round: whichever runs
    first after the slowest (the original algorithm, which leaves Redis and
    the CPU caches in another state) runs about 30% slower."""
    shift = round_number % len(names)
    return names[shift:] + names[:shift]


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def cohort_floor(client: redis.Redis, size: int) -> tuple[list[list[int]], list[int]]:
    """The floor of a ``size`` x ``size`` cohort by days with replacement:
    one round trip (MGET) that reads the ``2 * size`` day bitmaps, then the
    AND and popcount of every cell with numpy on 64-bit words."""
    days = [NOW - timedelta(days=offset) for offset in range(size - 1, -1, -1)]
    keys = [
        DayEvents.from_date(event, day).redis_key
        for event in ("signup", "active")
        for day in days
    ]
    values = client.mget(keys)
    longest = max(len(value or b"") for value in values)
    words = (longest + 7) // 8
    bitmaps = []
    for value in values:
        padded = numpy.zeros(words, dtype=numpy.uint64)
        padded.view(numpy.uint8)[: len(value or b"")] = numpy.frombuffer(
            value or b"", dtype=numpy.uint8
        )
        bitmaps.append(padded)
    rows, columns = bitmaps[:size], bitmaps[size:]
    both = numpy.empty(words, dtype=numpy.uint64)
    table, totals = [], []
    for row, primary in enumerate(rows):
        totals.append(int(numpy.bitwise_count(primary).sum()))
        cells = []
        for column in columns[row:]:
            numpy.bitwise_and(primary, column, out=both)
            cells.append(int(numpy.bitwise_count(both).sum()))
        table.append(cells)
    return table, totals


def cohort_apps(redis_url: str) -> dict[str, Flask]:
    """An app of each query engine."""
    apps = {}
    for engine in ("client", "redis"):
        app = Flask(f"bench_queries_{engine}")
        app.config.update(
            TESTING=True, BITMAPIST_REDIS_URL=redis_url, BITMAPIST_QUERY_ENGINE=engine
        )
        FlaskBitmapist(app)
        apps[engine] = app
    return apps


def on_python_ints(query: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``query(*args, **kwargs)`` with the client engine running its programs
    on Python's ints, as it does where numpy cannot be imported: the
    package's check for numpy answers no meanwhile."""
    checked = backend.numpy_installed
    backend.numpy_installed = lambda: False
    try:
        return query(*args, **kwargs)
    finally:
        backend.numpy_installed = checked


def run_cohort(app: Flask, size: int, with_replacement: bool = True) -> Any:
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


def cohort_benchmark(
    redis_url: str, size: int, users_per_day: int, repeats: int
) -> dict[str, float]:
    """(e): the two engines, the floor and the original algorithm, each
    round in turn, each going first in turn; the medians in seconds by
    name."""
    client = redis.Redis.from_url(redis_url)
    seed_days(client, size, users_per_day, users_per_day * 3)
    apps = cohort_apps(redis_url)

    def original() -> Any:
        return reference_cohort(
            "signup", "active", [], "days", size, size, True, NOW, client
        )

    measures: dict[str, Callable[[], Any]] = {
        "client": lambda: run_cohort(apps["client"], size),
        "ints": lambda: on_python_ints(run_cohort, apps["client"], size),
        "redis": lambda: run_cohort(apps["redis"], size),
        "floor": lambda: cohort_floor(client, size),
        "original": original,
    }
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    inside = []
    for round_number in range(repeats):
        results = {}
        for name in rotated(list(measures), round_number):
            function = measures[name]
            before = redis_cpu_seconds(client) if name == "redis" else 0.0
            took, results[name] = timed(function)
            seconds[name].append(took)
            if name == "redis":
                inside.append((redis_cpu_seconds(client) - before) / took)
        table, totals = results["client"]
        floor_table, floor_totals = results["floor"]
        if (
            results["redis"] != results["client"]
            or results["ints"] != results["client"]
            or results["original"] != results["client"]
        ):
            raise AssertionError("the engines and the original algorithm disagree")
        if (
            totals != floor_totals
            or [
                row[: len(cells)] for row, cells in zip(table, floor_table, strict=True)
            ]
            != floor_table
        ):
            raise AssertionError("get_cohort and the floor disagree")
    median = {name: statistics.median(values) for name, values in seconds.items()}
    without = statistics.median(
        timed(lambda: run_cohort(apps["client"], size, False))[0] for _ in range(5)
    )
    print(f"\n(e) {size}x{size} cohort by days, {users_per_day:,} users a day, "
          f"with replacement, median of {repeats}")  # fmt: skip
    print(f"  get_cohort, client engine   {median['client'] * 1000:9.1f} ms"
          f"   {median['client'] / median['floor']:5.2f}x the floor")  # fmt: skip
    print(f"  get_cohort, redis engine    {median['redis'] * 1000:9.1f} ms"
          f"   {median['redis'] / median['floor']:5.2f}x the floor")  # fmt: skip
    print(f"  get_cohort, client engine on Python ints (no numpy) "
          f"{median['ints'] * 1000:.1f} ms   "
          f"{median['ints'] / median['floor']:.2f}x the floor")  # fmt: skip
    print(f"  floor (MGET + numpy)        {median['floor'] * 1000:9.1f} ms")
    print(f"  original algorithm          {median['original'] * 1000:9.1f} ms")
    ratio = median["original"] / median["client"]
    print(f"  ratio                       {ratio:9.1f}x faster")
    share = statistics.median(inside)
    print(f"  share of the redis engine's wall time inside Redis: {share:.0%}")
    print(f"  get_cohort without replacement, client engine, median of 5: "
          f"{without * 1000:.1f} ms")  # fmt: skip
    client.flushdb()
    return median


def responsiveness_benchmark(redis_url: str, size: int, users_per_day: int) -> None:
    """(i): a second client's PING round trips while each query runs on each
    engine (a ``size`` x ``size`` cohort by days with replacement, and
    without; a ``size``-day lifecycle), and the longest command Redis ran
    for it (``SLOWLOG``, every command logged during the query)."""
    client = redis.Redis.from_url(redis_url)
    seed_days(client, size, users_per_day, users_per_day * 3)
    apps = cohort_apps(redis_url)

    def lifecycle(app: Flask) -> Any:
        with app.app_context():
            return get_lifecycle("active", "days", size, NOW)

    queries: dict[str, Callable[[Flask], Any]] = {
        "cohort": functools.partial(run_cohort, size=size),
        "cohort without replacement": functools.partial(
            run_cohort, size=size, with_replacement=False
        ),
        f"{size}-day lifecycle": lifecycle,
    }
    print(f"\n(i) PING from a second client during each query, {size}x{size} "
          f"by days, {users_per_day:,} users a day")  # fmt: skip
    slowlog = client.config_get("slowlog-*")
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 100_000)
    try:
        runs = {
            "client": lambda query: query(apps["client"]),
            "client (Python ints)": lambda query: on_python_ints(query, apps["client"]),
            "redis": lambda query: query(apps["redis"]),
        }
        for label, query in queries.items():
            answers = []
            for engine, run in runs.items():
                client.slowlog_reset()
                latencies, took, answer = pings_during(
                    redis_url, functools.partial(run, query)
                )
                answers.append(answer)
                entries = client.slowlog_get(100_000)
                longest = max((entry["duration"] for entry in entries), default=0)
                scripts = sum(
                    entry["command"].split(b" ")[0].upper() in (b"EVAL", b"EVALSHA")
                    for entry in entries
                )
                latencies.sort()
                p50 = latencies[len(latencies) // 2] * 1000
                p99 = latencies[int(len(latencies) * 0.99)] * 1000
                print(f"  {label}, {engine} engine: query {took * 1000:7.1f} ms, "
                      f"{len(latencies):5d} PINGs, p50 {p50:5.2f} ms, "
                      f"p99 {p99:5.2f} ms, max {latencies[-1] * 1000:5.2f} ms; "
                      f"longest command {longest / 1000:5.2f} ms, "
                      f"{scripts} scripts")  # fmt: skip
            if any(answer != answers[0] for answer in answers):
                raise AssertionError(f"the engines disagree on the {label}")
    finally:
        for name, value in slowlog.items():
            client.config_set(name, value)
        client.slowlog_reset()
    client.flushdb()


def pings_during(
    redis_url: str, query: Callable[[], Any]
) -> tuple[list[float], float, Any]:
    """Each PING's round trip, sent one after another by another process
    (its own GIL: in this one, its thread would slow the query and be
    slowed by it) while ``query`` runs, the query's wall time and its
    answer."""
    context = multiprocessing.get_context("spawn")
    stop, ready = context.Event(), context.Event()
    results = context.Queue()
    pinger = context.Process(target=ping_until, args=(redis_url, stop, ready, results))
    pinger.start()
    try:
        ready.wait(60)
        took, answer = timed(query)
    finally:
        stop.set()
    latencies: list[float] = results.get(timeout=60)
    pinger.join()
    return latencies, took, answer


def ping_until(redis_url: str, stop: Any, ready: Any, results: Any) -> None:
    """PING ``redis_url`` until ``stop`` is set; put the round trips in
    ``results``."""
    client = redis.Redis.from_url(redis_url)
    client.ping()
    latencies = []
    ready.set()
    while True:  # at least one PING, however short the query
        started = time.perf_counter()
        client.ping()
        latencies.append(time.perf_counter() - started)
        if stop.is_set():
            break
    results.put(latencies)


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
    # The grouping and writing alone, the lines read before.
    fields = list(read_marks(io.StringIO(text), "jsonl").fields())
    write_seconds, _ = timed(
        lambda: import_marks(client, MarkReader(iter(fields), False, False))
    )
    if {key: client.get(key) for key in client.keys("*")} != imported:
        raise AssertionError("writing parsed marks wrote other bits")
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
    parser = "orjson" if importlib.util.find_spec("orjson") else "json (no orjson)"
    print(f"\n(f) importing {count:,} events, lines parsed by {parser}")
    print(f"  flask bitmapist import      {count / import_seconds:12,.0f} events/s")
    print(f"  bitmapist.mark_event loop   {count / loop_seconds:12,.0f} events/s")
    print(
        f"  ratio                       {loop_seconds / import_seconds:12.1f}x faster"
    )
    print(f"  import SETBITs/s            {setbits_per_second:12,.0f}")
    writes_per_second = count * 3 / write_seconds
    print(f"  writing alone (lines read before) {writes_per_second:6,.0f} SETBITs/s")
    benchmark = redis_benchmark_setbits(redis_url, max(count, 100_000))
    if benchmark is None:
        print("  redis-benchmark not found: no comparison with pipelined SETBIT")
    else:
        print(f"  redis-benchmark SETBIT -P 64 {benchmark:11,.0f} SETBITs/s")
        print(f"  import / redis-benchmark    {setbits_per_second / benchmark:12.2f}")
        print(f"  writing / redis-benchmark   {writes_per_second / benchmark:12.2f}")


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
    apps = cohort_apps(redis_url)

    def counts(engine: str) -> Any:
        with apps[engine].app_context():
            counted = count_events(names, now=NOW)
        return [[c.day, c.week, c.month, c.year] for c in counted.values()]

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

    measures: dict[str, Callable[[], Any]] = {
        "client": lambda: counts("client"),
        "redis": lambda: counts("redis"),
        "floor": lambda: overview_floor(client, names),
        "original": original,
    }
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    for round_number in range(repeats):
        results = {}
        for name in rotated(list(measures), round_number):
            took, results[name] = timed(measures[name])
            seconds[name].append(took)
        if any(result != results["original"] for result in results.values()):
            raise AssertionError("count_events, the floor and the original disagree")
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"\n(g) dashboard overview counts of {events} events, median of {repeats}")
    print(f"  count_events, client engine {median['client'] * 1000:9.1f} ms"
          f"   {median['client'] / median['floor']:5.2f}x the floor")  # fmt: skip
    print(f"  count_events, redis engine  {median['redis'] * 1000:9.1f} ms"
          f"   {median['redis'] / median['floor']:5.2f}x the floor")  # fmt: skip
    print(f"  floor (MGET + numpy)        {median['floor'] * 1000:9.1f} ms")
    print(f"  original per-event loop     {median['original'] * 1000:9.1f} ms")
    ratio = median["original"] / median["client"]
    print(f"  ratio                       {ratio:9.1f}x faster")
    client.flushdb()


def overview_floor(client: redis.Redis, names: list[str]) -> list[list[int]]:
    """The floor of the overview: one MGET of each event's day, week and
    month keys and the twelve months of its year, then the popcounts, and
    the year's OR of its months, with numpy."""
    iso_year, iso_week, _ = NOW.isocalendar()
    keys = []
    for name in names:
        keys += [
            DayEvents(name, NOW.year, NOW.month, NOW.day).redis_key,
            WeekEvents(name, iso_year, iso_week).redis_key,
            MonthEvents(name, NOW.year, NOW.month).redis_key,
            *(MonthEvents(name, NOW.year, month).redis_key for month in range(1, 13)),
        ]
    values = [value or b"" for value in client.mget(keys)]
    longest = (max(len(value) for value in values) + 7) // 8 * 8
    counts = []
    for first in range(0, len(values), 15):
        day, week, month, *months = (
            numpy.frombuffer(value.ljust(longest, b"\0"), dtype=numpy.uint64)
            for value in values[first : first + 15]
        )
        year = numpy.bitwise_or.reduce(months)
        counts.append(
            [int(numpy.bitwise_count(bits).sum()) for bits in (day, week, month, year)]
        )
    return counts


def run(redis_url: str, quick: bool) -> None:
    if quick:
        cohort_benchmark(redis_url, size=5, users_per_day=1_000, repeats=1)
        responsiveness_benchmark(redis_url, size=5, users_per_day=1_000)
        import_benchmark(redis_url, count=2_000)
        overview_benchmark(redis_url, events=5, marks_per_event=50, repeats=1)
    else:
        cohort_benchmark(redis_url, size=30, users_per_day=100_000, repeats=21)
        responsiveness_benchmark(redis_url, size=90, users_per_day=1_000_000)
        import_benchmark(redis_url, count=1_000_000)
        overview_benchmark(redis_url, events=100, marks_per_event=2_000, repeats=21)


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

"""The benchmark scripts run end to end at tiny sizes (figures are not checked:
these machines are shared and noisy; the README has the measured ones, but
what does not depend on the machine is: the rows, the round trips, the ids
and bits written). scripts/bench.py measures against bitmapist itself
(``bitmapist.mark_event``, the original algorithm of tests/reference.py), so
its test needs the bitmapist extra; scripts/bench_idmap.py does not."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent.parent / "scripts"


def run_script(name: str, *arguments: str) -> str:
    """Run ``scripts/<name>`` with ``arguments``; its output, once it has
    exited with 0."""
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.bitmapist
def test_write_benchmark_prints_every_ratio(redis_url: str) -> None:
    output = run_script("bench.py", "--quick", "--redis-url", redis_url)
    # (a, b, d): the 2 rounds of --quick in 2 sets of apps, one round each.
    assert ", 2 rounds x 50 requests, medians, (a, b, d) in 2 sets of apps," in output
    ratios = re.findall(
        r"^  (.+?)\s+\d+ \S+\s+ratio (\d+\.\d+) vs", output, re.MULTILINE
    )
    names = [name.strip() for name, _ in ratios]
    variants = ["bare", "bare again", "background", "sync", "rule"]
    variants += ["50 unmatched rules", "mark floor", "rule floor", "hook floor"]
    assert names == [*variants, *variants, "one round trip", "3 x bitmapist.mark_event"]
    assert all(float(ratio) > 0 for _, ratio in ratios)
    # Under each of the two tables of (a, b, d): the variants against their floors.
    against_floors = re.findall(
        r"^  (\S.+ / \S.+ floor) +ratio (\d\.\d{3})$", output, re.MULTILINE
    )
    assert [name for name, _ in against_floors] == [
        "background / mark floor",
        "rule / rule floor",
        "50 unmatched rules / hook floor",
    ] * 2
    assert all(float(ratio) > 0 for _, ratio in against_floors)
    assert "(e) 5x5 cohort by days, 1,000 users a day" in output
    assert re.search(r"ratio +\d+\.\dx faster", output)
    assert "(f) importing 2,000 events" in output
    assert "share of the redis engine's wall time inside Redis" in output
    assert "(g) dashboard overview counts of 5 events" in output
    # Each engine's cohort and overview beside the floor.
    floors = re.findall(
        r"^  (get_cohort|count_events), (client|redis) engine +\d+\.\d ms +"
        r"(\d+\.\d\d)x the floor$",
        output,
        re.MULTILINE,
    )
    assert [(query, engine) for query, engine, _ in floors] == [
        ("get_cohort", "client"),
        ("get_cohort", "redis"),
        ("count_events", "client"),
        ("count_events", "redis"),
    ]
    assert all(float(ratio) > 0 for _, _, ratio in floors)
    assert re.search(
        r"^  get_cohort, client engine on Python ints \(no numpy\) \d+\.\d ms +"
        r"\d+\.\d\dx the floor$",
        output,
        re.MULTILINE,
    )
    pings = re.findall(
        r"^  (.+?), (client|client \(Python ints\)|redis) engine: query +\d+\.\d ms, "
        r"+(\d+) PINGs, "
        r"p50 +\d+\.\d\d ms, p99 +\d+\.\d\d ms, max +\d+\.\d\d ms; "
        r"longest command +\d+\.\d\d ms, (\d+) scripts$",
        output,
        re.MULTILINE,
    )
    queries = ["cohort", "cohort without replacement", "5-day lifecycle"]
    assert [(query, engine) for query, engine, _, _ in pings] == [
        (query, engine)
        for query in queries
        for engine in ("client", "client (Python ints)", "redis")
    ]
    assert all(int(count) > 0 for _, _, count, _ in pings)
    # The Redis engine runs at least one script (SLOWLOG is the server's: on
    # a shared one, other clients' scripts count too).
    assert all(int(scripts) > 0 for _, engine, _, scripts in pings if engine == "redis")
    parts = re.findall(
        r"^  (.+?)\s+([-+ ]\d+\.\d\d) us",
        output.split("(h)")[1].split("\n\n")[0],
        re.MULTILINE,
    )
    assert [name for name, _ in parts] == [
        "bare Flask",
        "background, request thread",
        "mark floor, request thread",
        "rule, request thread",
        "rule floor, request thread",
        "50 unmatched rules, request thread",
        "hook floor, request thread",
        "writer thread CPU per mark",
        "writer thread CPU per mark",
    ]
    assert float(parts[0][1]) > 0
    assert float(parts[7][1]) > 0
    assert float(parts[8][1]) >= 0
    assert re.search(r"^  requests/s +\d\.\d{3} ratio$", output, re.MULTILINE)
    beside = re.findall(
        r"^  (scripts of 1,500 SETBITs at most|one script) +(\d+\.\d\d) ms, "
        r"(\d+\.\d\d) ms a script$",
        output,
        re.MULTILINE,
    )
    assert [name for name, _, _ in beside] == [
        "scripts of 1,500 SETBITs at most",
        "one script",
    ]
    assert all(float(p99) > 0 and float(script) > 0 for _, p99, script in beside)
    # The Python calls of a request, counted: the extension adds some to
    # every variant's request, even to one that no rule matches (its hook).
    calls = re.findall(
        r"us(?: a request)?, ([-+]?\d+) Python calls$", output, re.MULTILINE
    )
    assert len(calls) == 7
    assert int(calls[0]) > 100
    assert all(int(added) > 0 for added in calls[1:])


# scripts/bench_idmap.py at tiny sizes: requests of 10 users, the writer in
# batches of 50, the memory of a map of 1,000 users.
TINY = {
    "--rounds": 3,
    "--requests": 20,
    "--pool": 10,
    "--batch": 50,
    "--batches": 2,
    "--users": 1000,
}


def test_id_map_benchmark_prints_every_figure(redis_url: str) -> None:
    out = run_script(
        "bench_idmap.py",
        "--redis-url",
        redis_url,
        *(str(word) for option in TINY.items() for word in option),
    )

    requests = re.findall(
        r"^  (.+?) +\d+\.\d\d wall us/request  ratio (\d\.\d{3}) vs bare"
        r" +\d+\.\d\d CPU us/request  ratio (\d\.\d{3}) vs bare$",
        out,
        re.MULTILINE,
    )
    assert [name for name, _, _ in requests] == [
        "bare",
        "@mark, int ids",
        "@mark, map (UUID str)",
    ]
    assert requests[0][1:] == ("1.000", "1.000")
    assert re.findall(
        r"^  map / int, (wall|CPU): \d\.\d{3} \(ratio of the medians\); per round: "
        r"median \d\.\d{3}, 95% interval \d\.\d{3} to \d\.\d{3}: (?:NOT within|"
        r"within|the noise hides whether it is within) the issue's 2%$",
        out,
        re.MULTILINE,
    ) == ["wall", "CPU"]

    costs = re.findall(r"^  (\S.+?) {2,}\d+\.\d{3} us$", out, re.MULTILINE)
    assert costs == [
        "to_user_id(int), int mode",
        "to_user_id(UUID str), map mode",
        "canonical_id(UUID str)",
        "canonical_id(uuid.UUID)",
        "IdMap.cached(UUID str)",
    ]
    assert re.findall(r"^    (.+?) +\d+\.\d{3} us a mark$", out, re.MULTILINE) == [
        "@mark, int ids",
        "@mark, map (UUID str)",
    ]
    assert re.search(
        r"^  map mode adds -?\d+\.\d{3} us of CPU a marked request = -?\d+\.\d% of "
        r"an int-mode request's CPU in \(1\), (?:NOT )?within the issue's 2%; of which "
        r"to_user_id on the request thread -?\d+\.\d{3} us, the writer thread's "
        r"cache look-up of each id of a batch \d+\.\d{3} us$",
        out,
        re.MULTILINE,
    )

    assert "(2) writer: write_marks on batches of 50 marks (--batch), 2 batches" in out
    writers = re.findall(
        r"^  (\w+) +(all new|all known) +(int|map) +[\d,]+ marks/s +\d+\.\d\d "
        r"CPU us/mark (\d+) round trip\(s\)/batch  ratio (\d\.\d{3}) vs int$",
        out,
        re.MULTILINE,
    )
    # The round trips are the design's: one per batch, but two for new ids
    # in a map of 64 buckets (allocate, then write the bits).
    assert [row[:4] for row in writers] == [
        ("bitmapist", "all new", "int", "1"),
        ("bitmapist", "all new", "map", "1"),
        ("bitmapist", "all known", "int", "1"),
        ("bitmapist", "all known", "map", "1"),
        ("sharded", "all new", "int", "1"),
        ("sharded", "all new", "map", "2"),
        ("sharded", "all known", "int", "1"),
        ("sharded", "all known", "map", "1"),
    ]
    assert [row[4] for row in writers if row[2] == "int"] == ["1.000"] * 4
    assert re.search(
        r"^  map mode's writer with known ids: [+-]\d+\.\d\d us CPU a mark "
        r"\(bitmapist\), [+-]\d+\.\d\d \(sharded\)",
        out,
        re.MULTILINE,
    )

    memory = re.findall(
        r"^  (1 bucket, bitmapist|64 buckets, sharded) +1,000 +([\d,]+) +"
        r"(\d+\.\d) +[\d,]+ +(\d+) +-?[\d,]+ +([\d,]+) +[\d,]+$",
        out,
        re.MULTILINE,
    )
    # Batches of MAX_BATCH new ids: mapped first, in a round trip of their
    # own, past SCRIPT_SETBITS.
    assert [(name, trips) for name, _, _, trips, _ in memory] == [
        ("1 bucket, bitmapist", "2"),
        ("64 buckets, sharded", "2"),
    ]
    for _, size, per_user, _, _ in memory:
        assert f"{int(size.replace(',', '')) / 1000:.1f}" == per_user
    # Dense ids 0..999: a day key of 1,000 bits. The 64 buckets hand out ids
    # n * 64 + bucket: a longer key, as their ids are not all used.
    assert memory[0][4] == "125"
    assert int(memory[1][4].replace(",", "")) > 125
    assert (
        "an event-period key of these 1,000 users: with the map 125 B (a bit "
        "per user, dense ids 0..999)"
    ) in out
    assert "make keys of up to 536,870,912 B (512 MiB) each, 4,294,967x" in out


# scripts/bench_reports.py at its --quick sizes: 1,000 users a day over 70
# days, 5 rows, columns and periods, one round; it compares every package
# result with its naive computation on bitmapist's classes and exits 1 if any
# differ.
@pytest.mark.bitmapist
def test_reports_benchmark_checks_every_query_against_its_naive_one(
    redis_url: str,
) -> None:
    out = run_script("bench_reports.py", "--quick", "--redis-url", redis_url)

    assert re.search(
        r"^seeded in \d+ s: 4,450 users, 1,000 a day \(50 new\) from 2026-01-21 "
        r"to 2026-03-31, 148 keys, ",
        out,
        re.MULTILINE,
    )
    assert re.findall(
        r"^\((\S+)\) (.+); medians of 1 round\(s\)", out, re.MULTILINE
    ) == [
        ("a", '5x5 cohort by days, cohort="first_time", retention="on_or_after"'),
        (
            "a'",
            "5x5 cohort by days, the default modes (recurring, on), with replacement",
        ),
        ("b", "5-step funnel over 5 days, within=7"),
        ("c", "5-day lifecycle"),
        ("d", "stickiness of March 2026 (31 days)"),
    ]
    # Round trips are counted on the connection: the package's query is one
    # pipeline; each naive one is a round trip per bitmap operation and count
    # (and one DEL of its keys at the end); (d)'s first naive one a GET per
    # day of March.
    sides = re.findall(
        r"^  (.+?) +\d+\.\d ms +\d+\.\d ms Redis CPU +\d+\.\d ms client CPU "
        r"+([\d,]+) round trip\(s\)  ",
        out,
        re.MULTILINE,
    )
    floor = "floor (MGET + numpy)"
    assert sides == [
        ("get_cohort", "1"),
        ("naive (bitmapist, per cell)", "66"),
        ("naive, each union once", "56"),
        (floor, "1"),
        ("get_cohort", "1"),
        ("original algorithm", "36"),
        ("get_funnel", "1"),
        ("naive (a round trip per BITOP)", "139"),
        (floor, "1"),
        ("get_lifecycle", "1"),
        ("naive (bitmapist, per day)", "36"),
        (floor, "1"),
        ("get_stickiness", "1"),
        ("naive (DayEvents iterated)", "31"),
        ("naive (a round trip per BITOP)", "432"),
        (floor, "1"),
    ]
    floors = re.findall(
        r"^  (\w+) / the floor: (\d+\.\d\d)x wall time$", out, re.MULTILINE
    )
    assert [name for name, _ in floors] == [
        "get_cohort",
        "get_funnel",
        "get_lifecycle",
        "get_stickiness",
    ]
    assert all(float(ratio) > 0 for _, ratio in floors)
    assert re.findall(
        r"^  ratio (.+) / (\w+): \d+\.\dx wall time, \d+\.\dx CPU time \(Redis's "
        r"and the client's\)$",
        out,
        re.MULTILINE,
    ) == [
        ("naive (bitmapist, per cell)", "get_cohort"),
        ("naive, each union once", "get_cohort"),
        ("original algorithm", "get_cohort"),
        ("naive (a round trip per BITOP)", "get_funnel"),
        ("naive (bitmapist, per day)", "get_lifecycle"),
        ("naive (DayEvents iterated)", "get_stickiness"),
        ("naive (a round trip per BITOP)", "get_stickiness"),
    ]
    assert (
        "check: every run's package results equal the naive ones: (a), (a'), (b), "
        "(c), (d)" in out
    )


# scripts/bench_curve.py reuses scripts/bench_queries.py's seeding and floors,
# which name keys with bitmapist's classes: it needs the bitmapist extra.
@pytest.mark.bitmapist
def test_cost_curve_prints_every_figure_at_each_size(redis_url: str) -> None:
    output = run_script("bench_curve.py", "--quick", "--redis-url", redis_url)
    table = output.split("(j) the cost curve")[1]
    rows = re.findall(r"^  (\S.*?) {2,}([\d,.]+) +([\d,.]+)$", table, re.MULTILINE)
    assert [name for name, _, _ in rows] == [
        "users a day",
        "writer marks/s",
        "import events/s",
        "import SETBITs/s",
        "memory bytes/user-event",
        "cohort client ms",
        "cohort redis ms",
        "cohort floor ms",
        "overview client ms",
        "overview redis ms",
        "overview floor ms",
    ]
    assert rows[0][1:] == ("1,000", "10,000")
    assert all(
        float(value.replace(",", "")) > 0 for _, *values in rows for value in values
    )


@pytest.mark.bitmapist
def test_write_benchmark_refuses_no_sets_of_apps() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench.py"), "--processes", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--processes must be at least 1, not 0" in result.stderr

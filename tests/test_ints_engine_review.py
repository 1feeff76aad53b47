"""Review of 953ef98: the client engine on Python's ints (store/intbits.py),
"auto" always the client, and "client" without numpy.

Each instruction of the ints engine is compared with Redis's own
PROGRAM_SCRIPT (random programs with keys of another type too, whose errors
must be the script's, word for word; values of several MB, longer than a
read chunk); every report runs in a process without numpy, in bitmapist's
layout and the sharded one, against the Redis engine and a plain-Python
model of the marks; so do the dashboard and the CLI; then the engine
setting, and what the docs say of it.

The in-process tests run the ints engine as the package does without numpy:
``backend.numpy_installed`` answers no (as scripts/bench_queries.py does).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from programs import INSTRUCTIONS, build

from flask_bitmapist import ConfigError, Settings
from flask_bitmapist.config import numpy_installed
from flask_bitmapist.store import backend as backend_module
from flask_bitmapist.store import intbits
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.layout import BITMAPIST, ShardedLayout
from flask_bitmapist.store.program import NamedKey, Program

ROOT = Path(__file__).resolve().parent.parent
KEYS = [f"ints:{letter}" for letter in "abcde"]


@pytest.fixture
def ints(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The client engine runs on Python's ints, as without numpy."""
    monkeypatch.setattr(backend_module, "numpy_installed", lambda: False)
    yield


def outcome(run: Callable[[], Any]) -> Any:
    """What ``run`` returns, or ``("error", the whole message)``."""
    try:
        return run()
    except redis.ResponseError as error:
        return ("error", str(error))


def on_engines(client: redis.Redis, program: Program) -> dict[str, Any]:
    """The program's outcome in Redis, on the client (whichever
    implementation the test set up), and on Python's ints directly."""
    store = Store(client, engine="client")
    plans = [(program.stored_keys(store.layout, 0), program.words)]
    return {
        "redis": outcome(lambda: Store(client, engine="redis").run([(program, 0)], 60)),
        "client": outcome(lambda: store.run([(program, 0)], 60)),
        "ints": outcome(lambda: intbits.run_programs(plans, Store(client).read)),
    }


def on_every_engine(expected: Any) -> dict[str, Any]:
    """:func:`on_engines`'s answer when every engine gives ``expected``."""
    return dict.fromkeys(("redis", "client", "ints"), expected)


def write(client: redis.Redis, values: dict[str, bytes | str | None]) -> None:
    """Set each key: bytes as a string, ``"list"`` as a list, ``None`` gone."""
    client.delete(*values)
    for key, value in values.items():
        if value == "list":
            client.rpush(key, "x")
        elif isinstance(value, bytes):
            client.set(key, value)


# --- Each instruction on Python's ints, against Redis's script ---------------


@pytest.mark.parametrize("offset", [2**32, -1])
def test_getbit_out_of_range_of_a_key_of_another_type_fails_as_the_script(
    client: redis.Redis, ints: None, offset: int
) -> None:
    """GETBIT checks its offset before the key's type: the script answers
    "bit offset is not an integer or out of range" for a list key. Before
    its fix, the client (the shared interpreter read the key first)
    answered WRONGTYPE, with numpy ("client") and on ints alike."""
    write(client, {KEYS[0]: "list"})
    program = Program()
    program.getbit(NamedKey(KEYS[0]), offset)
    expected = ("error", "bit offset is not an integer or out of range")
    assert on_engines(client, program) == on_every_engine(expected)


@pytest.mark.parametrize("value", [b"\xff", None])
@pytest.mark.parametrize("offset", [2**32, -1])
def test_getbit_out_of_range_of_a_string_or_a_missing_key_fails_as_the_script(
    client: redis.Redis, ints: None, value: bytes | None, offset: int
) -> None:
    write(client, {KEYS[0]: value})
    program = Program()
    program.getbit(NamedKey(KEYS[0]), 2**32 - 1)
    program.getbit(NamedKey(KEYS[0]), offset)
    expected = ("error", "bit offset is not an integer or out of range")
    assert on_engines(client, program) == on_every_engine(expected)


def test_existing_and_unions_of_keys_of_another_type(
    client: redis.Redis, ints: None
) -> None:
    """X asks only whether a key exists: a list does; U ORs the keys that
    exist, so a list among them fails with WRONGTYPE, as BITOP does."""
    write(client, {KEYS[0]: "list", KEYS[1]: b"\x01", KEYS[2]: None})
    listed, string, missing = (NamedKey(key) for key in KEYS[:3])
    program = Program()
    program.existing([listed, missing, string])
    program.count(program.union_existing([missing, string]))
    expected = [[[1, 3], 1]]
    assert on_engines(client, program) == on_every_engine(expected)
    wrongtype = (
        "error",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    )
    for operation in ("union_existing", "union", "NOT"):
        failing = Program()
        failing.existing([listed])
        if operation == "union_existing":
            failing.count(failing.union_existing([missing, listed, string]))
        elif operation == "union":
            failing.count(failing.union([string, listed]))
        else:
            failing.count(failing.bitop("NOT", [listed]))
        assert on_engines(client, failing) == {
            "redis": wrongtype,
            "client": wrongtype,
            "ints": wrongtype,
        }, operation


values_strategy = st.lists(
    st.one_of(
        st.none(),
        st.just("list"),
        # Trailing and leading zero bytes too; never the empty string, which
        # no mark leaves and the client reads as missing (documented).
        st.binary(min_size=1, max_size=20),
        st.integers(1, 20).map(lambda size: bytes(size)),
    ),
    min_size=len(KEYS),
    max_size=len(KEYS),
)
steps_strategy = st.lists(
    st.tuples(
        st.sampled_from(INSTRUCTIONS),
        st.lists(st.integers(min_value=0, max_value=63), min_size=1, max_size=5),
        # In range: an offset out of range on a key of another type is
        # test_getbit_out_of_range_of_a_key_of_another_type_fails_as_the_script.
        st.one_of(st.integers(0, 20 * 8 + 8), st.just(2**32 - 1)),
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=values_strategy, plan=steps_strategy)
def test_random_programs_with_keys_of_another_type_give_the_script_outcome(
    client: redis.Redis,
    ints: None,
    values: list[bytes | str | None],
    plan: Any,
) -> None:
    """Random programs of every client instruction on missing, zero, random
    and list keys: the same results, or the same error word for word, as the
    script; nothing left in Redis."""
    write(client, dict(zip(KEYS, values, strict=True)))
    program = Program()
    build(program, plan, KEYS)
    results = on_engines(client, program)
    assert results["client"] == results["redis"]
    assert results["ints"] == results["redis"]
    assert sorted(client.keys("ints:*")) == sorted(
        key.encode()
        for key, value in zip(KEYS, values, strict=True)
        if value is not None
    )


def test_bitops_keep_the_longest_length_and_trailing_zero_bytes(
    client: redis.Redis, ints: None
) -> None:
    """Exact values: the result is as long as the longest source, its
    trailing zero bytes kept; AND with a missing key is all zero bytes;
    NOT of a key ending in 0xff ends in a zero byte."""
    write(
        client,
        {KEYS[0]: b"\xff\x00\x00", KEYS[1]: b"\x0f", KEYS[2]: b"\x80\x00\xff"},
    )
    a, b, c, missing = (NamedKey(key) for key in (*KEYS[:3], KEYS[4]))
    program = Program()
    program.get(program.bitop("AND", [a, b]))
    program.get(program.bitop("OR", [b, missing]))
    program.get(program.bitop("XOR", [a, c]))
    program.get(program.bitop("AND", [a, missing]))
    program.get(program.bitop("NOT", [c]))
    program.get(a)
    program.first_bit(program.bitop("AND", [a, b]))
    program.first_bit(c)
    program.count(program.bitop("NOT", [a]))
    program.getbit(c, 23)
    program.getbit(c, 24)
    program.getbit(missing, 2**32 - 1)
    expected = [
        [
            b"\x0f\x00\x00",
            b"\x0f",
            b"\x7f\x00\xff",
            b"\x00\x00\x00",
            b"\x7f\xff\x00",
            b"\xff\x00\x00",
            4,
            0,
            16,
            1,
            0,
            0,
        ]
    ]
    assert on_engines(client, program) == on_every_engine(expected)


def test_bitops_of_missing_keys_only_leave_no_key(
    client: redis.Redis, ints: None
) -> None:
    """BITOP of missing keys only deletes its destination (EXISTS says no),
    however it was filled before; so does a union of existing keys when
    none exists; an all-zero result of bytes is a key."""
    write(client, {KEYS[0]: b"\xf0", KEYS[1]: b"\x0f"})
    a, b, gone, other = (NamedKey(key) for key in (KEYS[0], KEYS[1], *KEYS[3:]))
    program = Program()
    scratch = program.bitop("OR", [a, b])
    program.bitop_into("OR", scratch, [gone, other])
    union = program.union_existing([gone, other])
    disjoint = program.bitop("AND", [a, b])
    program.existing([scratch, union, disjoint, a, gone])
    program.count(scratch)
    program.get(union)
    program.get(disjoint)
    program.first_bit(disjoint)
    expected = [[[3, 4], 0, b"", b"\x00", -1]]
    assert on_engines(client, program) == on_every_engine(expected)


def test_cohort_rows_and_keys_of_another_type(client: redis.Redis, ints: None) -> None:
    """R: a row of users ANDs each cell (a user counts once without
    replacement); an all-zero primary of 4 bytes never reads its cells,
    even a list; a row with users reading a list fails with WRONGTYPE."""
    write(
        client,
        {
            KEYS[0]: b"\xff\x0f",
            KEYS[1]: b"\xf0\x00\x01",
            KEYS[2]: b"\xff\xff",
            KEYS[3]: bytes(4),
            KEYS[4]: "list",
        },
    )
    primary, first, second, zero, listed = (NamedKey(key) for key in KEYS)
    missing = NamedKey("ints:missing")
    program = Program()
    program.cohort_row(primary, [first, missing, second, primary], False)
    program.cohort_row(primary, [first, missing, second, primary], True)
    program.cohort_row(zero, [listed, first], False)
    program.cohort_row(missing, [listed], True)
    expected = [[[12, 4, 0, 8, 0], [12, 4, 0, 12, 12], [0], [0]]]
    assert on_engines(client, program) == on_every_engine(expected)
    failing = Program()
    failing.count(primary)
    failing.cohort_row(primary, [first, listed], True)
    wrongtype = (
        "error",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    )
    assert on_engines(client, failing) == on_every_engine(wrongtype)


def test_values_of_several_megabytes_and_longer_than_a_read_chunk(
    client: redis.Redis, ints: None
) -> None:
    """Keys of 9 MB (read in chunks of READ_CHUNK_BYTES) and 3 MB with short
    ones, through every instruction on ints, read fresh then remembered:
    the script's results, and GET returns each value whole."""
    import random

    rng = random.Random(17)
    big = rng.randbytes((9 << 20) + 3)
    middle = rng.randbytes(3 << 20) + bytes(5)
    values = {
        KEYS[0]: big,
        KEYS[1]: middle,
        KEYS[2]: b"\x01\x00",
        KEYS[3]: bytes(11),
    }
    write(client, values)
    refs = [NamedKey(key) for key in KEYS[:4]]
    missing = NamedKey(KEYS[4])
    program = Program()
    for operation in ("AND", "OR", "XOR"):
        result = program.bitop(operation, [*refs, missing])
        program.count(result)
        program.first_bit(result)
        program.get(program.bitop(operation, refs[1:3]))
    program.get(program.bitop("NOT", [refs[1]]))
    program.count(program.bitop("NOT", [refs[0]]))
    program.get(refs[0])
    program.get(refs[1])
    program.count(program.difference(refs[0], refs[1]))
    program.count(program.union_existing([missing, *refs]))
    program.first_bit(refs[3])
    program.getbit(refs[0], (9 << 23) + 20)
    program.getbit(refs[1], (3 << 23) + 39)
    program.existing([missing, *refs])
    program.cohort_row(refs[0], [refs[1], refs[2], missing, refs[3], refs[0]], False)
    program.cohort_row(refs[0], [refs[1], refs[2], missing, refs[3], refs[0]], True)
    expected = Store(client, engine="redis").run([(program, 0)], 60)
    store = Store(client, engine="client")
    assert store.run([(program, 0)], 60) == expected
    assert store.run([(program, 0)], 60) == expected
    results = expected[0]
    ones = int.from_bytes(big, "big").bit_count()
    assert results[9] == bytes(255 - byte for byte in middle)
    assert results[10] == len(big) * 8 - ones
    assert results[11] == big
    assert results[12] == middle
    assert results[16:18] == [
        big[(9 << 20) + 2] >> 3 & 1,
        middle[(3 << 20) + 4] & 1,
    ]
    assert results[18] == [2, 3, 4, 5]
    assert results[-1][0] == ones
    assert sorted(client.keys("ints:*")) == sorted(key.encode() for key in KEYS[:4])


def test_threads_sharing_a_store_run_programs_on_ints(
    client: redis.Redis, ints: None
) -> None:
    """Eight threads on one store, each running programs on ints at once:
    each answer is the script's."""
    write(client, {KEYS[0]: b"\xff\x01" * 500, KEYS[1]: b"\x0f" * 700})
    program = Program()
    a, b = NamedKey(KEYS[0]), NamedKey(KEYS[1])
    program.count(program.bitop("AND", [a, b]))
    program.cohort_row(a, [b, a], False)
    program.get(program.bitop("XOR", [a, b]))
    expected = Store(client, engine="redis").run([(program, 0)], 60)
    store = Store(client, engine="client")
    answers: list[Any] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        for _ in range(20):
            answers.append(store.run([(program, 0)], 60))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [expected] * 160
    # 0xff & 0x0f and 0x01 & 0x0f over the 700 bytes both keys have.
    assert expected[0][0] == 350 * 4 + 350 * 1


def test_numpy_installed_is_checked_once_whatever_the_threads() -> None:
    """The check is cached: sixteen threads asking at once, with the cache
    cleared, all get the same answer, and later calls are cache hits."""
    numpy_installed.cache_clear()
    try:
        barrier = threading.Barrier(16)
        answers: list[bool] = []

        def ask() -> None:
            barrier.wait()
            answers.append(numpy_installed())

        threads = [threading.Thread(target=ask) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        import numpy

        installed = hasattr(numpy, "bitwise_count")
        assert answers == [installed] * 16
        hits = numpy_installed.cache_info().hits
        assert numpy_installed() is installed
        assert numpy_installed.cache_info().hits == hits + 1
    finally:
        numpy_installed.cache_clear()


# --- Every report without numpy, against the Redis engine and a model -------

REPORTS_CODE = r"""
import sys
sys.modules["numpy"] = None
import json
import random
import threading
from datetime import date, datetime, timedelta, timezone

import redis

from flask_bitmapist import (
    chain_events, count_events, event_history, get_cohort, get_cohort_cell,
    get_cohort_row, get_cohort_users, get_event_data, get_funnel, get_lifecycle,
    get_stickiness, get_users,
)
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.layout import BITMAPIST, ShardedLayout
from flask_bitmapist.store.writer import Mark, write_marks

URL = sys.argv[1]
UTC = timezone.utc
NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
TODAY = NOW.date()
rng = random.Random(11)
USERS = [*range(64), 5000]
marks = [
    (rng.choice("abc"), rng.choice(USERS), TODAY - timedelta(days=rng.randrange(41)))
    for _ in range(500)
]
# An older history: first-time rows and "new" users need it.
marks += [("a", user, date(2025, 6, 1)) for user in range(0, 64, 5)]
marks += [("a", user, date(2024, 12, 31)) for user in range(3, 64, 7)]


def users(event, days):
    return {u for e, u, d in marks if e == event and d in days}


def model_cohort(rows, cols, first_time, on_or_after, replace):
    earliest = {}
    for e, u, d in marks:
        if e == "a":
            earliest[u] = min(d, earliest.get(u, d))
    table, totals = [], []
    for i in range(rows):
        start = TODAY - timedelta(days=rows - 1 - i)
        if first_time:
            row = {u for u, d in earliest.items() if d == start}
        else:
            row = users("a", {start})
        totals.append(len(row))
        if not row:
            table.append([None] * cols)
            continue
        remaining, cells = set(row), []
        for j in range(cols):
            day = start + timedelta(days=j)
            if day > TODAY:
                cells.append(None)
            elif on_or_after:
                later = {day + timedelta(days=k) for k in range((TODAY - day).days + 1)}
                cells.append(len(row & users("b", later)))
            elif replace:
                cells.append(len(row & users("b", {day})))
            else:
                found = remaining & users("b", {day})
                cells.append(len(found))
                remaining -= found
        table.append(cells)
    return table, totals


def model_stickiness(days):
    counts = [0] * len(days)
    for user in USERS:
        k = len({d for e, u, d in marks if e == "a" and u == user and d in days})
        if k:
            counts[k - 1] += 1
    return counts


class Counting(Store):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scripts = 0

    def execute(self, scripts, attempts=2):
        self.scripts += len(scripts)
        return super().execute(scripts, attempts)


CHAIN = [{"name": "b", "op": "and"}, {"name": "c", "op": "or"}]


def reports(store):
    out = {}
    for cohort in ("recurring", "first_time"):
        for retention in ("on", "on_or_after"):
            for replace in (False, True):
                for group, n in (("days", 9), ("weeks", 5), ("months", 3)):
                    for chained in (None, [{"name": "c", "op": "or"}]):
                        out[f"cohort {cohort} {retention} {replace} {group} {chained is not None}"] = get_cohort(
                            "a", "b", chained, time_group=group, num_rows=n,
                            num_cols=n, system=store, with_replacement=replace,
                            now=NOW, cohort=cohort, retention=retention)
    # More than 500 cells: several programs, each from its own history.
    out["cohort first_time 30x30"] = get_cohort(
        "a", "b", num_rows=30, num_cols=30, system=store, now=NOW,
        cohort="first_time")
    out["funnel days"] = get_funnel(["a", "b", "c"], "days", 10, 3, NOW, store)
    out["funnel weeks"] = get_funnel(["b", "a", "b"], "weeks", 6, 2, NOW, store)
    out["lifecycle days"] = get_lifecycle("a", "days", 45, NOW, store)
    out["lifecycle weeks"] = get_lifecycle("b", "weeks", 8, NOW, store)
    out["lifecycle months"] = get_lifecycle("a", "months", 4, NOW, store)
    out["stickiness week"] = get_stickiness("a", "weeks", NOW, store)
    out["stickiness month"] = get_stickiness("a", "months", NOW, store)
    out["counts"] = count_events(["a", "b", "c", "never"], now=NOW, system=store)
    out["history"] = event_history("a", now=NOW, days=10, weeks=3, months=3, system=store)
    for group in ("days", "weeks", "months", "years"):
        a, b, c = (get_event_data(e, group, now=NOW, system=store) for e in "abc")
        out[f"set {group}"] = (
            len(a), sorted(a), bool(a), [u in a for u in (0, 1, 7, 63, 5000, 6000)],
            len(a & b), len(a | b | c), sorted(a ^ b), sorted(a - b),
            len(~a), bool(get_event_data("never", group, now=NOW, system=store)),
        )
        out[f"chain {group}"] = sorted(chain_events("a", CHAIN, NOW, group, store))
    out["cohort row"] = sorted(get_cohort_row("a", "days", 9, store, NOW, row=3, cohort="first_time"))
    out["cohort cell"] = sorted(get_cohort_cell("a", "b", None, "days", 9, 9, store, False, NOW, row=2, column=3))
    return out


def pages(store):
    return {
        "users": [get_users("a", g, now=NOW, limit=7, system=store) for g in ("days", "months")],
        "cohort users": get_cohort_users("a", "b", None, "days", 9, 9, store, True, NOW, row=2, column=1, limit=5),
    }


def model(out):
    wrong = []
    for first_time in (False, True):
        for on_or_after in (False, True):
            for replace in (False, True):
                cohort = "first_time" if first_time else "recurring"
                retention = "on_or_after" if on_or_after else "on"
                table, _, totals = out[f"cohort {cohort} {retention} {replace} days False"]
                if (table, totals) != model_cohort(9, 9, first_time, on_or_after, replace):
                    wrong.append(f"cohort {cohort} {retention} {replace}")
    table, _, totals = out["cohort first_time 30x30"]
    if (table, totals) != model_cohort(30, 30, True, False, False):
        wrong.append("cohort first_time 30x30")
    week = [date(2026, 3, 9) + timedelta(days=k) for k in range(7)]
    month = [date(2026, 3, 1) + timedelta(days=k) for k in range(31)]
    if out["stickiness week"] != model_stickiness(set(week)):
        wrong.append("stickiness week")
    if out["stickiness month"] != model_stickiness(set(month)):
        wrong.append("stickiness month")
    counts = out["counts"]
    for event in "abc":
        expected = (
            len(users(event, {TODAY})), len(users(event, set(week))),
            len(users(event, set(month))),
            len({u for e, u, d in marks if e == event and d.year == 2026}),
        )
        got = counts[event]
        if (got.day, got.week, got.month, got.year) != expected:
            wrong.append(f"counts {event}")
    day_a, day_b = users("a", {TODAY}), users("b", {TODAY})
    got = out["set days"]
    if got[:2] != (len(day_a), sorted(day_a)) or got[4] != len(day_a & day_b):
        wrong.append("set days")
    if got[3] != [u in day_a for u in (0, 1, 7, 63, 5000, 6000)]:
        wrong.append("set days in")
    if got[6] != sorted(day_a ^ day_b) or got[7] != sorted(day_a - day_b):
        wrong.append("set days operators")
    return wrong


def compare(client, layout):
    write_marks(Store(client, layout), [Mark(e, u, datetime(d.year, d.month, d.day, 12, tzinfo=UTC), False, True, 1) for e, u, d in marks], set())
    client.set("review:sentinel", b"1")
    size = client.dbsize()
    answers, scripts, engines, page_answers = {}, {}, {}, {}
    for engine in ("client", "auto", "redis"):
        store = Counting(client, layout, engine=engine)
        engines[engine] = store.engine
        answers[engine] = reports(store)
        scripts[engine] = store.scripts
        page_answers[engine] = pages(store)
    # Threads sharing one store: the same answers as one at a time.
    store = Store(client, layout)
    threaded = []
    def run():
        threaded.append(reports(store)["cohort first_time 30x30"])
    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if client.dbsize() != size or client.get("review:sentinel") != b"1":
        return None  # another session emptied the db: try again
    expected = answers["redis"]
    return {
        "engines": engines,
        "client scripts": scripts["client"],
        "auto scripts": scripts["auto"],
        "redis ran scripts": scripts["redis"] > 0,
        "client differs": [name for name in expected if answers["client"][name] != expected[name]],
        "auto differs": [name for name in expected if answers["auto"][name] != expected[name]],
        "pages differ": [engine for engine in page_answers if page_answers[engine] != page_answers["redis"]],
        "model differs": model(expected) + model(answers["client"]),
        "threads agree": threaded == [expected["cohort first_time 30x30"]] * 4,
        "some counts": [expected["counts"]["a"].month, len(expected["set months"][1]) > 10],
    }


client = redis.Redis.from_url(URL)
summary = {}
for name, layout in (("bitmapist", BITMAPIST), ("sharded", ShardedLayout(3))):
    for _ in range(5):
        client.flushdb()
        result = compare(client, layout)
        if result is not None:
            break
    summary[name] = result
summary["numpy imported"] = sys.modules.get("numpy") is not None
print(json.dumps(summary))
"""


def test_every_report_without_numpy_is_the_redis_engines_and_the_models(
    redis_url: str,
) -> None:
    """In a process where numpy cannot be imported, "client" and "auto" run
    every report on ints with no script (the users lists page in Redis, as
    documented), and answer as the Redis engine does and as a model of the
    marks does, in bitmapist's layout and the sharded one; threads sharing
    a store too."""
    output = subprocess.run(
        [sys.executable, "-c", REPORTS_CODE, redis_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    summary = json.loads(output)
    per_layout = {
        "engines": {"client": "client", "auto": "client", "redis": "redis"},
        "client scripts": 0,
        "auto scripts": 0,
        "redis ran scripts": True,
        "client differs": [],
        "auto differs": [],
        "pages differ": [],
        "model differs": [],
        "threads agree": True,
        # Event a's users in March 2026 (the model agrees), and more than ten
        # users listed for the month.
        "some counts": [39, True],
    }
    assert summary == {
        "bitmapist": per_layout,
        "sharded": per_layout,
        "numpy imported": False,
    }


DASHBOARD_CODE = r"""
import sys
sys.modules["numpy"] = None
import json
import random
from datetime import datetime, timedelta, timezone

import redis
from flask import Flask

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.writer import Mark, write_marks

URL = sys.argv[1]
now = datetime.now(timezone.utc)
rng = random.Random(3)
marks = [
    Mark(rng.choice("ab"), rng.randrange(40), now - timedelta(days=rng.randrange(20)), False, True, 1)
    for _ in range(400)
]
apps = {}
for engine in ("client", "redis"):
    app = Flask(f"dashboard_{engine}")
    app.config.update(TESTING=True, BITMAPIST_REDIS_URL=URL, BITMAPIST_QUERY_ENGINE=engine)
    FlaskBitmapist(app)
    apps[engine] = app
PAGES = [
    "/bitmapist/",
    "/bitmapist/event/a",
    "/bitmapist/cohort?primary_event=a&secondary_event=b&num_rows=8&num_cols=8&format=json",
    "/bitmapist/cohort?primary_event=a&secondary_event=b&num_rows=8&num_cols=8&cohort=first_time&retention=on_or_after",
    "/bitmapist/funnel?steps=a&steps=b&num_periods=7&within=2&format=json",
    "/bitmapist/funnel?steps=a&steps=b&num_periods=7&within=2",
    "/bitmapist/users/event/a?format=csv",
    "/bitmapist/users/cohort?primary_event=a&secondary_event=b&num_rows=8&num_cols=8&row=7&column=0&format=csv",
]
CLI = [
    ["bitmapist", "lifecycle", "a", "--json"],
    ["bitmapist", "stickiness", "a", "--json"],
    ["bitmapist", "cohort", "a", "b", "--format", "json", "--first-time"],
    ["bitmapist", "cohort", "a", "b", "--with-replacement", "--on-or-after"],
    ["bitmapist", "funnel", "a", "b", "--json"],
]
client = redis.Redis.from_url(URL)
for _ in range(5):
    client.flushdb()
    write_marks(Store(client), marks, set())
    size = client.dbsize()
    day = datetime.now(timezone.utc).date()
    answers = {}
    for engine, app in apps.items():
        http = app.test_client()
        pages = [(http.get(page).status_code, http.get(page).text) for page in PAGES]
        runner = app.test_cli_runner()
        commands = [(result.exit_code, result.output) for result in (runner.invoke(args=args) for args in CLI)]
        answers[engine] = (pages, commands)
    if client.dbsize() == size and datetime.now(timezone.utc).date() == day:
        break
pages, commands = answers["client"]
print(json.dumps({
    "same pages": [page for page, got, expected in zip(PAGES, pages, answers["redis"][0]) if got != expected],
    "same commands": [" ".join(args) for args, got, expected in zip(CLI, commands, answers["redis"][1]) if got != expected],
    "statuses": [status for status, _ in pages] + [code for code, _ in commands],
    "cohort users": sorted(int(line) for line in pages[7][1].split()[1:]) == sorted(
        {m.user_id for m in marks if m.event_name == "a" and m.when.date() == day}
        & {m.user_id for m in marks if m.event_name == "b" and m.when.date() == day}
    ),
    "numpy imported": sys.modules.get("numpy") is not None,
}))
"""


def test_the_dashboard_and_the_cli_without_numpy_answer_as_the_redis_engine(
    redis_url: str,
) -> None:
    """Without numpy, the dashboard's pages (overview, event page with its
    lifecycle and stickiness, cohort and funnel as HTML and JSON, users as
    CSV) and the report commands answer 200 / exit 0, byte for byte what
    they answer with the Redis engine."""
    output = subprocess.run(
        [sys.executable, "-c", DASHBOARD_CODE, redis_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert json.loads(output) == {
        "same pages": [],
        "same commands": [],
        "statuses": [200] * 8 + [0] * 5,
        "cohort users": True,
        "numpy imported": False,
    }


# --- The engine setting --------------------------------------------------------


@pytest.mark.parametrize("engine", ["gpu", "CLIENT", "numpy", "", None, 1])
def test_an_unknown_engine_is_refused_by_the_store_and_the_config(
    client: redis.Redis, engine: Any
) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"The query engine must be one of auto, client, redis, got {engine!r}."
        ),
    ):
        Store(client, engine=engine)
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "BITMAPIST_QUERY_ENGINE must be one of auto, client, redis, "
            f"got {engine!r}."
        ),
    ):
        Settings.from_mapping({"BITMAPIST_QUERY_ENGINE": engine}, testing=True)


def test_the_engine_is_resolved_when_the_store_is_made(
    client: redis.Redis, make_app: Callable[..., Flask]
) -> None:
    """ "auto" and "client" are the client, "redis" Redis; the repr shows the
    one chosen; the config takes each."""
    layout = ShardedLayout(3)
    for engine, resolved in (
        ("auto", "client"),
        ("client", "client"),
        ("redis", "redis"),
    ):
        store = Store(client, layout, engine=engine)
        assert store.engine == resolved
        assert repr(store) == f"Store({client!r}, {layout!r}, None, {resolved!r})"
        assert (
            Settings.from_mapping(
                {"BITMAPIST_QUERY_ENGINE": engine}, testing=True
            ).query_engine
            == engine
        )
        app = make_app(query_engine=engine, name=engine)
        assert app.extensions["bitmapist"].state(app).store.engine == resolved
    assert Store(client).engine == "client"
    assert repr(Store(client)).endswith(f"{BITMAPIST!r}, None, 'client')")


def test_without_numpy_client_and_auto_are_accepted_and_run_on_ints(
    redis_url: str,
) -> None:
    """In a process without numpy, the config takes "client" (it raised
    ConfigError before), a store of each engine says where it runs, and the
    client runs on intbits, not clientside (never imported)."""
    code = f"""
import sys
sys.modules["numpy"] = None
import redis
from flask_bitmapist import Settings
from flask_bitmapist.store import backend
from flask_bitmapist.store.backend import Store
client = redis.Redis.from_url({redis_url!r})
print(Settings.from_mapping({{"BITMAPIST_QUERY_ENGINE": "client"}}, testing=True).query_engine)
print([Store(client, engine=engine).engine for engine in ("auto", "client", "redis")])
print(backend._client_runner().__module__)
print("flask_bitmapist.store.clientside" in sys.modules)
"""
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert output == [
        "client",
        "['client', 'client', 'redis']",
        "flask_bitmapist.store.intbits",
        "False",
    ]


# --- What the docs say of the engine --------------------------------------------


def test_the_config_comment_of_the_engines_says_auto_is_always_the_client() -> None:
    """The ``#:`` comment above QUERY_ENGINES (flask_bitmapist/config.py)
    still says "client" computes with numpy and "auto" is the client only
    when numpy is installed: both stale since this commit."""
    source = (ROOT / "flask_bitmapist" / "config.py").read_text()
    above = source.split("\nQueryEngine = Literal")[0].splitlines()
    lines: list[str] = []
    while above and above[-1].startswith("#:"):
        lines.insert(0, above.pop())
    comment = "\n".join(lines)
    assert "when numpy is installed" not in comment, comment
    assert "computes with numpy" not in comment, comment


def test_the_scaling_guide_does_not_say_every_query_runs_as_a_lua_script() -> None:
    """docs/scaling.md, "How queries run": "Every query ... runs as one Lua
    script per shard", the client engine an aside; since this commit the
    default ("auto") is the client for everyone, and only "redis" runs
    scripts."""
    text = (ROOT / "docs" / "scaling.md").read_text()
    section = text.split("## How queries run", 1)[1].split("\n## ", 1)[0]
    flat = " ".join(section.split())
    assert not re.search(
        r"Every query \(.*?\) is written once .*? runs as one Lua script", flat
    ), flat[:600]


def _milliseconds(readme: str, row: str) -> float:
    match = re.search(rf"^\| {re.escape(row)} \| ([\d,]+) ms \|", readme, re.M)
    assert match, row
    return float(match.group(1).replace(",", ""))


def test_the_stated_slowdowns_of_python_ints_match_the_readmes_measures() -> None:
    """docs/reports.md and docs/changes.md say the ints engine is "1.6 to 3
    times as slow" as the Redis engine; the README's own table (part (i))
    has the 90-day lifecycle at 301 ms against 54 ms (5.6 times) and the
    cohort with replacement at 1,760 against 559 ms (3.1 times)."""
    readme = (ROOT / "README.md").read_text()
    ratios = {
        query: _milliseconds(readme, f"{query}, client (Python ints)")
        / _milliseconds(readme, f"{query}, Redis")
        for query in ("cohort", "cohort without replacement", "90-day lifecycle")
    }
    for doc in ("docs/reports.md", "docs/changes.md"):
        flat = " ".join((ROOT / doc).read_text().split())
        match = re.search(r"([\d.]+) to ([\d.]+) times as slow as the", flat)
        assert match, doc
        low, high = float(match.group(1)), float(match.group(2))
        assert all(low * 0.95 <= ratio <= high * 1.05 for ratio in ratios.values()), (
            doc,
            (low, high),
            ratios,
        )


def test_the_ints_module_states_numpys_speedup_as_the_readme_measures() -> None:
    """store/intbits.py says how much faster numpy does the same (it said
    "three to four times as fast"); the README's table has 514 / 1,760, 386 / 910 and 105 / 301 ms
    (3.4, 2.4 and 2.9 times) and part (e) 5.1 against 11.2 ms (2.2 times),
    which the README calls "two to four times as slow"."""
    readme = (ROOT / "README.md").read_text()
    ratios = [
        _milliseconds(readme, f"{query}, client (Python ints)")
        / _milliseconds(readme, f"{query}, client (numpy)")
        for query in ("cohort", "cohort without replacement", "90-day lifecycle")
    ]
    words = {"two": 2, "three": 3, "four": 4, "five": 5}
    docstring = " ".join((intbits.__doc__ or "").split())
    match = re.search(r"(\w+) to (\w+)( and a half)? times as fast", docstring)
    assert match, docstring
    low = words[match.group(1)]
    high = words[match.group(2)] + (0.5 if match.group(3) else 0)
    assert all(low * 0.95 <= ratio <= high * 1.05 for ratio in ratios), (
        (low, high),
        ratios,
    )

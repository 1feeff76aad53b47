"""The two query engines give the same results: random programs of every
instruction the client runs, on random bitmaps (missing, all zero, of different
lengths; never the empty string, which no mark leaves and the client reads
as missing), run as a Redis script, on the client with numpy, and on the
client with Python's ints (without numpy); and the choice of engine from
``BITMAPIST_QUERY_ENGINE``."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from programs import INSTRUCTIONS, build

from flask_bitmapist import ConfigError, count_events, get_cohort, mark_event
from flask_bitmapist.report import cohort as cohort_module
from flask_bitmapist.report import events as events_module
from flask_bitmapist.store import intbits
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.program import NamedKey, Program, Scratch

KEYS = [f"engines:{letter}" for letter in "abcdef"]

bitmaps = st.lists(
    st.one_of(st.none(), st.binary(min_size=1, max_size=24)),
    min_size=len(KEYS),
    max_size=len(KEYS),
)

#: One step of a program: an instruction and the positions (among the named
#: keys and the scratch keys built so far) of its operands.
steps = st.lists(
    st.tuples(
        st.sampled_from(INSTRUCTIONS),
        st.lists(st.integers(min_value=0, max_value=63), min_size=1, max_size=5),
        st.integers(min_value=0, max_value=24 * 8 + 8),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=bitmaps, plan=steps)
def test_a_program_gives_the_same_results_on_the_client_and_in_redis(
    client: redis.Redis, values: list[bytes | None], plan: Any
) -> None:
    client.delete(*KEYS)
    for key, value in zip(KEYS, values, strict=True):
        if value is not None:
            client.set(key, value)
    program = Program()
    build(program, plan, KEYS)
    assert program.runs_on_client
    in_redis = Store(client, engine="redis").run([(program, 0)], 60)
    on_client = Store(client, engine="client").run([(program, 0)], 60)
    assert on_client == in_redis
    # And without numpy, on Python's ints.
    store = Store(client, engine="client")
    plans = [(program.stored_keys(store.layout, 0), program.words)]
    assert intbits.run_programs(plans, store.read) == in_redis
    assert sorted(client.keys("*")) == sorted(
        key.encode()
        for key, value in zip(KEYS, values, strict=True)
        if value is not None
    )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    operation=st.sampled_from(["AND", "OR", "XOR", "NOT"]),
    values=st.lists(
        st.one_of(st.none(), st.binary(min_size=1, max_size=40)),
        min_size=1,
        max_size=3,
    ),
    offsets=st.lists(st.integers(0, 40 * 8 + 16), min_size=1, max_size=4),
)
def test_each_bitop_and_read_on_the_client_is_redis_own(
    client: redis.Redis,
    operation: str,
    values: list[bytes | None],
    offsets: list[int],
) -> None:
    """One BITOP of up to three bitmaps (missing ones too), then every read
    of its result, by Redis and by each client implementation (numpy's and
    Python's ints)."""
    from flask_bitmapist.store import clientside

    sources = values[:1] if operation == "NOT" else values
    client.delete(*KEYS)
    names = []
    for key, value in zip(KEYS, sources, strict=False):
        names.append(key)
        if value is not None:
            client.set(key, value)
    client.bitop(operation, "engines:result", *names)
    stored = client.get("engines:result")
    expected = [
        client.bitcount("engines:result"),
        stored or b"",
        [client.getbit("engines:result", offset) for offset in offsets],
        client.bitpos("engines:result", 1),
    ]
    client.delete("engines:result")
    for bitop, of, getbit, first_bit in [
        (clientside.bitop, clientside.Bits.of, clientside._getbit,
         clientside._first_bit),
        (intbits.bitop, intbits.IntBits.of, intbits._getbit, intbits._first_bit),
    ]:  # fmt: skip
        result = bitop(operation, [None if v is None else of(v) for v in sources])
        assert (result is None) == (stored is None)
        assert [
            0 if result is None else result.count(),
            b"" if result is None else result.value(),
            [getbit(result, offset) for offset in offsets],
            first_bit(result),
        ] == expected


def test_programs_that_keep_or_page_a_key_run_in_redis(client: redis.Redis) -> None:
    client.set(KEYS[0], b"\xf0")
    kept = Program()
    union = kept.bitop("OR", [NamedKey(KEYS[0])])
    kept.count(union)
    kept.keep(union)
    paged = Program()
    paged.page(NamedKey(KEYS[0]), 0, 10)
    timed = Program()
    timed.ttl(NamedKey(KEYS[0]))
    assert not kept.runs_on_client
    assert not paged.runs_on_client
    assert not timed.runs_on_client
    store = Store(client, engine="client")
    assert store.run([(kept, 0), (paged, 0), (timed, 0)], 60) == [
        [4],
        [[0, b"\xf0"]],
        [-1],
    ]
    # The kept scratch key is in Redis, with its TTL.
    assert [key for key in client.keys("*") if key != KEYS[0].encode()] != []


def test_a_wrong_type_key_fails_the_client_run_with_redis_error(
    client: redis.Redis,
) -> None:
    client.rpush(KEYS[0], "x")
    program = Program()
    program.count(NamedKey(KEYS[0]))
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        Store(client, engine="client").run([(program, 0)], 60)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        Store(client, engine="redis").run([(program, 0)], 60)


def test_counts_on_the_client_are_exact_up_to_redis_largest_bitmap() -> None:
    """The client sums word counts in 32 bits below 2**32 bits and in 64 at
    Redis's largest bitmap (512 MB, every bit set: a count of 2**32), here
    one word repeated without 512 MB of memory."""
    import numpy

    from flask_bitmapist.store.clientside import Bits

    largest = 1 << 26
    for words, expected in [(largest - 1, (1 << 32) - 64), (largest, 1 << 32)]:
        every_bit = numpy.broadcast_to(numpy.uint64(~numpy.uint64(0)), (words,))
        assert Bits(every_bit, words * 8).count() == expected


def test_reads_go_in_chunks_of_bounded_bytes(
    client: redis.Redis, round_trips: Any
) -> None:
    """Five keys of 6 MB: a first round trip reads the sizes and a fifth of
    READ_CHUNK_BYTES (8 MB) of each key, then each key's remaining 4.4 MB
    takes a round trip of its own, as two would pass the 8 MB, so Redis
    serves others between them. Every byte arrives, in order."""
    size = 6 << 20
    values = [random.Random(number).randbytes(size) for number in range(5)]
    for key, value in zip(KEYS, values, strict=False):
        client.set(key, value)
    store = Store(client, engine="client")
    before = round_trips.count
    assert store.read(KEYS[:5]) == values
    assert round_trips.count - before == 1 + 5
    client.set(KEYS[5], values[0][:1000])
    before = round_trips.count
    assert store.read([KEYS[5], "engines:missing"]) == [values[0][:1000], None]
    assert round_trips.count - before == 1


def test_small_reads_take_one_round_trip(client: redis.Redis, round_trips: Any) -> None:
    client.set(KEYS[0], b"\x01" * 1000)
    client.set(KEYS[1], b"")
    program = Program()
    for key in KEYS:
        program.count(NamedKey(key))
    before = round_trips.count
    assert Store(client, engine="client").run([(program, 0)], 60) == [
        [1000, 0, 0, 0, 0, 0]
    ]
    assert round_trips.count - before == 1


def test_scratch_keys_are_never_read_and_nothing_is_written(
    client: redis.Redis, round_trips: Any
) -> None:
    client.set(KEYS[0], b"\x0f")
    program = Program()
    scratch = program.bitop("NOT", [NamedKey(KEYS[0])])
    assert isinstance(scratch, Scratch)
    program.get(scratch)
    assert Store(client, engine="client").run([(program, 0)], 60) == [[b"\xf0"]]
    assert client.keys("*") == [KEYS[0].encode()]


def test_the_engine_setting_is_checked(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigError, match="BITMAPIST_QUERY_ENGINE must be one of"):
        make_app(query_engine="gpu")
    for engine, resolved in (("redis", "redis"), ("auto", "client")):
        app = make_app(query_engine=engine, name=engine)
        assert app.extensions["bitmapist"].state(app).store.engine == resolved


@pytest.mark.parametrize("script_bytes", [8 << 20, 3000, 1])
def test_a_cohort_is_the_same_on_both_engines(
    make_app: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    script_bytes: int,
) -> None:
    """Also when the Redis engine's scripts hold three cells (keys of about
    1 KB, a budget of 3,000 bytes) or one (1 byte), splitting rows where it
    may (with replacement, "on"), whole rows over the budget elsewhere."""
    monkeypatch.setattr(cohort_module, "_SCRIPT_CELL_BYTES", script_bytes)
    now = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)
    apps = [
        make_app(query_engine=engine, name=engine) for engine in ("redis", "client")
    ]
    with apps[0].app_context():
        for user in range(300):
            mark_event("signup", user * 29 % 8000, now=now - timedelta(days=user % 9))
            mark_event("active", user * 31 % 8000, now=now - timedelta(days=user % 6))
    tables = []
    for app in apps:
        with app.app_context():
            tables.append(
                [
                    get_cohort(
                        "signup",
                        "active",
                        num_rows=9,
                        num_cols=7,
                        now=now,
                        cohort=cohort,
                        retention=retention,
                        with_replacement=replace,
                    )
                    for cohort in ("recurring", "first_time")
                    for retention in ("on", "on_or_after")
                    for replace in (False, True)
                ]
            )
    assert tables[0] == tables[1]
    assert any(cell for table, _, _ in tables[0] for row in table for cell in row)


def test_without_numpy_the_client_runs_programs_on_python_ints(
    redis_url: str,
) -> None:
    """In a process where numpy cannot be imported (``sys.modules`` holds
    ``None`` for it), ``"auto"`` and ``"client"`` still run every program of
    counts on the client (on Python's ints: no script reaches Redis), and
    answer as the Redis engine does."""
    code = f"""
import sys
sys.modules["numpy"] = None
from datetime import datetime, timedelta, timezone
import redis
from flask import Flask
from flask_bitmapist import FlaskBitmapist, get_cohort, get_lifecycle, mark_event
from flask_bitmapist.store.backend import Store

class ScriptCountingStore(Store):
    scripts = 0

    def execute(self, scripts, attempts=2):
        self.scripts += len(scripts)
        return super().execute(scripts, attempts)

client = redis.Redis.from_url({redis_url!r})
now = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)
for user in range(300):
    mark_event("signup", user * 7, now=now - timedelta(days=user % 9), system=client)
    mark_event("active", user * 5, now=now - timedelta(days=user % 4), system=client)
answers = []
for engine in ("auto", "client", "redis"):
    store = ScriptCountingStore(client, engine=engine)
    answers.append(
        (
            get_cohort("signup", "active", num_rows=6, num_cols=6, now=now,
                       system=store),
            get_cohort("signup", "active", num_rows=6, num_cols=6, now=now,
                       system=store, cohort="first_time", retention="on_or_after"),
            get_lifecycle("active", "days", 8, now, store),
        )
    )
    print(engine, store.engine, store.scripts > 0)
print(answers[0] == answers[1] == answers[2])
print(answers[0][0][2])
print("numpy" in sys.modules and sys.modules["numpy"] is not None)
app = Flask("no_numpy")
app.config.update(TESTING=True, BITMAPIST_QUERY_ENGINE="client",
                  BITMAPIST_REDIS_URL={redis_url!r})
FlaskBitmapist(app)
print(app.extensions["bitmapist"].state(app).store.engine)
"""
    redis.Redis.from_url(redis_url).flushdb()
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert output == [
        "auto client False",
        "client client False",
        "redis redis True",
        "True",
        # Each row's total, oldest first: the users u of signup 5 to 0 days
        # ago, u % 9 days ago for u below 300 (34 for 0 to 2 days, 33 else).
        str([33, 33, 33, 34, 34, 34]),
        "False",
        "client",
    ]


def test_the_redis_engine_sends_heavy_scripts_apart(
    make_app: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    round_trips: Any,
) -> None:
    """A script per cell (a budget of 1 byte), each in a round trip of its
    own, after the one that reads the newest keys' sizes: Redis serves other
    clients between them."""
    monkeypatch.setattr(cohort_module, "_SCRIPT_CELL_BYTES", 1)
    now = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)
    app = make_app(query_engine="redis")
    with app.app_context():
        for user in range(50):
            mark_event("signup", user, now=now - timedelta(days=user % 4))
            mark_event("active", user, now=now - timedelta(days=user % 3))
        before = round_trips.count
        table, _, totals = get_cohort(
            "signup", "active", num_rows=4, num_cols=4, now=now, with_replacement=True
        )
    assert round_trips.count - before == 1 + (1 + 2 + 3 + 4)
    assert totals == [12, 12, 13, 13]
    # signup: users u % 4 days ago; active: u % 3 days ago.
    assert table == [
        [0, 4, 4, 4],
        [4, 4, 4, None],
        [5, 4, None, None],
        [5, None, None, None],
    ]


def test_the_redis_engines_overview_scripts_are_bounded_by_bytes(
    make_app: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    round_trips: Any,
) -> None:
    """With a budget of 1 byte, an event a script, each in a round trip of
    its own, after the one that reads the first event's sizes; the counts
    are the client engine's."""
    monkeypatch.setattr(events_module, "_SCRIPT_BYTES", 1)
    now = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)
    apps = [
        make_app(query_engine=engine, name=engine) for engine in ("redis", "client")
    ]
    names = ["a", "b", "c"]
    with apps[0].app_context():
        for user in range(30):
            for number, name in enumerate(names):
                mark_event(name, user * (number + 1), now=now - timedelta(days=user))
    counts = []
    for app in apps:
        with app.app_context():
            before = round_trips.count
            counts.append(count_events(names, now=now))
            if app is apps[0]:
                assert round_trips.count - before == 1 + len(names)
    assert counts[0] == counts[1]
    assert [counts[0][name].year for name in names] == [30, 30, 30]
    assert [counts[0][name].day for name in names] == [1, 1, 1]


def test_init_app_does_not_import_numpy_until_a_query(redis_url: str) -> None:
    """numpy is imported at the first query the client runs, not at
    init_app: importing it (54 ms) is not paid by an app, or a `flask`
    command, that reads no report."""
    code = f"""
import sys
from flask import Flask
from flask_bitmapist import FlaskBitmapist, count_events
app = Flask("lazy")
app.config.update(TESTING=True, BITMAPIST_REDIS_URL={redis_url!r})
FlaskBitmapist(app)
store = app.extensions["bitmapist"].state(app).store
print(store.engine, "numpy" in sys.modules)
with app.app_context():
    count_events(["signup"])
print("numpy" in sys.modules)
"""
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert output == ["client False", "True"]

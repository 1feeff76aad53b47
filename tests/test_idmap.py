"""The id map (``BITMAPIST_ID_MAP``): canonical ids, marks of any id read back
exactly on each of conftest.STORES, the map's keys in Redis, processes and
threads racing to map the same new ids, a full map, the id cache and its
round trips, and the map's stats."""

from __future__ import annotations

import logging
import multiprocessing
import random
import re
import string
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from conftest import AppFactory
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from idmap_workers import EVENT as RACE_EVENT
from idmap_workers import WHEN as RACE_WHEN
from idmap_workers import mark_all

from flask_bitmapist import (
    IdMapStats,
    canonical_id,
    flush,
    get_event_data,
    mark_event,
    to_user_id,
)
from flask_bitmapist.store.backend import Client, Store
from flask_bitmapist.store.idmap import (
    ALLOCATE_SCRIPT,
    MAP_AND_SETBITS_SCRIPT,
    IdMap,
    IdMapFull,
)
from flask_bitmapist.store.writer import SETBITS_SCRIPT, Mark

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
LATER = datetime(2026, 3, 20, 10, tzinfo=timezone.utc)
U = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
V = uuid.UUID("6fa459ea-ee8a-3ca4-894e-db77e160355e")
BIG = 2**40 + 7
HUGE = 2**64 + 1
#: The buckets of a sharded layout's map, and so of a cluster's.
BUCKETS = 64


# -- Canonical ids -----------------------------------------------------------


def both_ways(value: Any) -> str | int | None:
    """The canonical id of ``value``, checking that ``canonical_id`` and
    ``to_user_id`` with the map agree on it."""
    canonical = canonical_id(value)
    assert to_user_id("e", value, id_map=True) == canonical
    return canonical


def mixed_case(data: st.DataObject, text: str) -> str:
    flips = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(
        char.upper() if flip else char.lower()
        for char, flip in zip(text, flips, strict=True)
    )


@given(st.uuids(), st.data())
def test_a_uuid_and_its_spellings_are_one_id(
    value: uuid.UUID, data: st.DataObject
) -> None:
    canonical = str(value)
    spellings: list[Any] = [
        value,
        canonical,
        canonical.upper(),
        mixed_case(data, canonical),
        f"{{{mixed_case(data, canonical)}}}",
        f"{{{mixed_case(data, value.hex)}}}",
    ]
    for spelling in spellings:
        assert both_ways(spelling) == canonical, spelling
    hyphenless = mixed_case(data, value.hex)
    if value.hex.isdecimal():
        # 32 decimal digits are an int, whatever else they could be.
        assert both_ways(hyphenless) == str(int(value.hex))
    else:
        assert both_ways(hyphenless) == canonical


def test_32_decimal_digits_are_an_int_not_a_uuid() -> None:
    assert both_ways("12345678901234567890123456789012") == (
        "12345678901234567890123456789012"
    )
    assert both_ways("00000000000000000000000000000042") == "42"
    assert both_ways(uuid.UUID(int=0x42).hex) == "42"
    # Hyphenated or braced, the same digits are a UUID.
    assert both_ways(str(uuid.UUID(int=0x42))) == "00000000-0000-0000-0000-000000000042"
    assert both_ways("{00000000000000000000000000000042}") == (
        "00000000-0000-0000-0000-000000000042"
    )


@given(
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.integers(-(10**249), 10**249),
    ),
    st.integers(0, 5),
)
def test_an_int_and_its_decimal_strings_are_one_id(number: int, zeros: int) -> None:
    sign = "-" if number < 0 else ""
    spellings: list[Any] = [
        number,
        str(number),
        f"{sign}{'0' * zeros}{abs(number)}",
    ]
    for spelling in spellings:
        assert both_ways(spelling) == str(number), spelling


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [
        ([42, "42", "042", "0000042"], "42"),
        ([-42, "-42", "-042"], "-42"),
        ([0, "0", "-0", "000", "-000"], "0"),
        ([2**32, "4294967296", "04294967296"], "4294967296"),
        ([2**64, "18446744073709551616"], "18446744073709551616"),
        ([-(2**64), "-18446744073709551616"], "-18446744073709551616"),
        ([10**256 - 1, "9" * 256], "9" * 256),
        ([-(10**255 - 1), "-" + "9" * 255], "-" + "9" * 255),
    ],
)
def test_ints_up_to_256_characters_are_their_decimal_form(
    spellings: list[Any], canonical: str
) -> None:
    assert [both_ways(spelling) for spelling in spellings] == [canonical] * len(
        spellings
    )


def is_ordinary(text: str) -> bool:
    """Neither decimal (with an optional leading ``-``) nor holding the 32
    hex digits that any spelling of a UUID has."""
    hex_digits = sum(char in string.hexdigits for char in text)
    return not re.fullmatch(r"-?[0-9]+", text) and hex_digits < 32


@given(
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=256
    ).filter(is_ordinary)
)
def test_other_strings_are_themselves(text: str) -> None:
    assert both_ways(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "alice",
        "Alice",
        " alice ",
        "alice@example.com",
        "Ünïcødé 用户",
        "+42",
        " 42",
        "42 ",
        "4_2",
        "1.5",
        "-",
        "--1",
        "١٢",
        "x" * 256,
        "1b4e28ba-2fa1-11d2-883f-0016d3cca42",
        "1b4e28ba2fa1-11d2-883f-0016d3cca427",
        "{1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427}",
        "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "1b4e28ba-2fa1-11d2-883f-0016d3cca42g",
    ],
)
def test_strings_that_are_no_int_nor_uuid_are_themselves(text: str) -> None:
    assert both_ways(text) == text


def test_anonymous_is_none_with_the_map() -> None:
    assert to_user_id("login", None, id_map=True) is None


WRONG_TYPE = "User id for event 'login' must be an int, a uuid.UUID or a str, got {}."


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, WRONG_TYPE.format("True")),
        (False, WRONG_TYPE.format("False")),
        (1.0, WRONG_TYPE.format("1.0")),
        (b"42", WRONG_TYPE.format("b'42'")),
        ([1], WRONG_TYPE.format("[1]")),
        ("", "User id for event 'login' is an empty string, got ''."),
        ("a" * 257, "User id for event 'login' has over 256 characters, got '" + "a" * 59 + "... (257 characters)."),
        ("1" * 257, "User id for event 'login' has over 256 characters, got '" + "1" * 59 + "... (257 characters)."),
        ("-" + "1" * 256, "User id for event 'login' has over 256 characters, got '-" + "1" * 58 + "... (257 characters)."),
        ("\x00", "User id for event 'login' holds a control character, got '\\x00'."),
        ("line\nbreak", "User id for event 'login' holds a control character, got 'line\\nbreak'."),
        ("\x7f", "User id for event 'login' holds a control character, got '\\x7f'."),
        ("\x85", "User id for event 'login' holds a control character, got '\\x85'."),
        ("user\ud800", "User id for event 'login' holds a control character, got 'user\\ud800'."),
        (10**256, "User id for event 'login' has over 256 characters in decimal, got 1" + "0" * 59 + "...."),
        (-(10**255), "User id for event 'login' has over 256 characters in decimal, got -1" + "0" * 58 + "...."),
    ],
)  # fmt: skip
def test_bad_ids_with_the_map_name_the_event_and_the_value(
    value: object, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        to_user_id("login", value, id_map=True)
    assert str(raised.value) == message


def test_an_int_too_long_for_str_is_refused_without_showing_it() -> None:
    # str() refuses ints of over 4,300 digits: the check must not need it.
    with pytest.raises(ValueError) as raised:
        to_user_id("login", 10**5000, id_map=True)
    assert str(raised.value).startswith(
        "User id for event 'login' has over 256 characters in decimal, got a"
    )
    assert str(raised.value).endswith(" too long to show.")


def test_mark_event_refuses_a_bad_id_and_writes_nothing(
    make_app: AppFactory, client: redis.Redis
) -> None:
    app = make_app(id_map=True)
    with app.app_context(), pytest.raises(ValueError) as raised:
        mark_event("login", "tab\there", now=NOW)
    assert str(raised.value) == (
        "User id for event 'login' holds a control character, got 'tab\\there'."
    )
    assert client.keys("*") == []


# -- Marks read back, and the map's keys --------------------------------------

# (what is marked, its canonical id), in the order marked.
MARKED: list[tuple[Any, str]] = [
    (U, str(U)),
    ("alice", "alice"),
    (str(U).upper(), str(U)),
    (BIG, str(BIG)),
    ("alice@example.com", "alice@example.com"),
    (U.hex, str(U)),
    (-17, "-17"),
    ("Alice", "Alice"),
    (str(BIG), str(BIG)),
    (V.hex.upper(), str(V)),
    (HUGE, str(HUGE)),
    ("-017", "-17"),
    (f"{{{V}}}", str(V)),
    (-(2**70), str(-(2**70))),
]
#: The canonical ids in order of first appearance.
USERS = list(dict.fromkeys(canonical for _, canonical in MARKED))
#: More spellings of the users, never marked as such.
OTHER_SPELLINGS: list[tuple[Any, str]] = [
    (f"{{{U.hex.upper()}}}", str(U)),
    (str(V), str(V)),
    (V, str(V)),
    ("0" + str(BIG), str(BIG)),
    (str(HUGE), str(HUGE)),
    (-17, "-17"),
    (str(-(2**70)), str(-(2**70))),
]
NEVER_MARKED: list[Any] = [
    "ALICE",
    "bob",
    uuid.UUID(int=7),
    BIG + 1,
    17,
    True,
    1.0,
    "",
    "\x00",
]


def expected_dense_ids(users: list[str], buckets: int) -> dict[str, int]:
    """The dense id that the map hands each of ``users``, met in that order:
    the n-th id (from 0) of a bucket ``b`` is ``n * buckets + b``, and an
    id's bucket the CRC-32 of its UTF-8 modulo the buckets."""
    met: Counter[int] = Counter()
    dense: dict[str, int] = {}
    for user in users:
        bucket = zlib.crc32(user.encode()) % buckets
        dense[user] = met[bucket] * buckets + bucket
        met[bucket] += 1
    return dense


def bucket_keys(bucket: int, buckets: int) -> tuple[str, str, str]:
    """The counter, forward and reverse keys of a bucket, as the key format
    names them."""
    prefix = "trackist:ids:" if buckets == 1 else f"trackist:ids{buckets}{{{bucket}}}:"
    return f"{prefix}next", f"{prefix}fwd", f"{prefix}rev"


class MapContents:
    """Every bucket of a map, as read from Redis.

    :ivar forward: each canonical id's dense id.
    :ivar reverse: each dense id's canonical id.
    :ivar counters: each bucket's counter (0 for a missing one).
    :ivar bucket_of: the bucket whose forward hash holds each id.
    :ivar repeats: ids or dense ids that more than one bucket holds.
    """

    def __init__(self, client: Client, buckets: int) -> None:
        self.forward: dict[str, int] = {}
        self.reverse: dict[int, str] = {}
        self.counters: list[int] = []
        self.bucket_of: dict[str, int] = {}
        self.repeats: list[object] = []
        for bucket in range(buckets):
            counter, forward, reverse = bucket_keys(bucket, buckets)
            self.counters.append(int(client.get(counter) or 0))  # type: ignore[arg-type]
            fields: dict[bytes, bytes] = client.hgetall(forward)  # type: ignore[assignment]
            for name, value in fields.items():
                user = name.decode()
                if user in self.forward:
                    self.repeats.append(user)
                self.forward[user] = int(value)
                self.bucket_of[user] = bucket
            back: dict[bytes, bytes] = client.hgetall(reverse)  # type: ignore[assignment]
            for name, value in back.items():
                if int(name) in self.reverse:
                    self.repeats.append(int(name))
                self.reverse[int(name)] = value.decode()


def store_of(app: Flask) -> Store:
    store: Store = app.extensions["bitmapist"].state(app).store
    return store


def buckets_of(store_config: dict[str, Any]) -> int:
    """One bucket for bitmapist's layout (no config), else the sharded
    layout's."""
    return BUCKETS if store_config else 1


@pytest.mark.parametrize("write_mode", ["sync", "background"])
def test_marks_of_any_id_read_back_exactly(
    make_store_app: AppFactory,
    store_config: dict[str, Any],
    write_mode: str,
) -> None:
    app = make_store_app(id_map=True, write_mode=write_mode, flush_interval=30)
    buckets = buckets_of(store_config)
    with app.app_context():
        for value, _ in MARKED:
            mark_event("song:played", value, now=NOW)
        assert flush(timeout=30) is True
        stats = app.extensions["bitmapist"].stats()
        events = get_event_data("song:played", "day", NOW)
        listed = list(events)
        size = len(events)
        found = {repr(value): value in events for value, _ in MARKED + OTHER_SPELLINGS}
        strangers = {repr(value): value in events for value in NEVER_MARKED}
        week = list(get_event_data("song:played", "week", NOW))
    contents = MapContents(store_of(app).client, buckets)
    expected = expected_dense_ids(USERS, buckets)
    assert (stats.queued, stats.written, stats.dropped) == (len(MARKED),) * 2 + (0,)
    assert size == len(USERS) == 9
    assert found == {repr(value): True for value, _ in MARKED + OTHER_SPELLINGS}
    assert strangers == {repr(value): False for value in NEVER_MARKED}
    assert contents.forward == expected
    assert contents.reverse == {dense: user for user, dense in expected.items()}
    assert contents.repeats == []
    if buckets == 1:
        assert listed == week == USERS
        assert contents.counters == [len(USERS)]
    else:
        assert set(listed) == set(USERS)
        assert (
            listed
            == week
            == sorted(listed, key=lambda user: contents.forward[str(user)])
        )
        for user in USERS:
            bucket = zlib.crc32(user.encode()) % BUCKETS
            assert contents.bucket_of[user] == bucket
            assert contents.forward[user] % BUCKETS == bucket
        assert contents.counters == [
            list(contents.bucket_of.values()).count(bucket) for bucket in range(BUCKETS)
        ]


def test_the_map_of_bitmapists_layout_is_three_keys(
    make_app: AppFactory, client: redis.Redis
) -> None:
    app = make_app(id_map=True)
    with app.app_context():
        for value, _ in MARKED:
            mark_event("song:played", value, now=NOW)
    assert sorted(client.keys("trackist:*")) == [  # type: ignore[arg-type]
        b"trackist:ids:fwd",
        b"trackist:ids:next",
        b"trackist:ids:rev",
    ]
    assert client.get("trackist:ids:next") == b"9"
    assert client.hgetall("trackist:ids:fwd") == {
        user.encode(): str(dense).encode() for dense, user in enumerate(USERS)
    }
    assert client.hgetall("trackist:ids:rev") == {
        str(dense).encode(): user.encode() for dense, user in enumerate(USERS)
    }
    # The bits are the dense ids: 0 to 8.
    assert client.get("trackist_song:played_2026-3-14") == b"\xff\x80"


# -- Processes and threads racing for the same new ids ------------------------

RACE_IDS = 20_000
RACE_PROCESSES = 2
RACE_THREADS = 8


def race_ids() -> list[str]:
    """20,000 canonical ids of every kind: UUIDs, usernames, big ints."""
    rng = random.Random(14)
    ids: list[str] = []
    for number in range(RACE_IDS):
        kind = number % 3
        if kind == 0:
            ids.append(str(uuid.UUID(int=rng.getrandbits(128))))
        elif kind == 1:
            ids.append(f"user-{number}@example.com")
        else:
            ids.append(str(rng.randrange(-(2**80), 2**80)))
    assert len(set(ids)) == RACE_IDS
    return ids


@pytest.fixture
def started() -> Iterator[list[multiprocessing.process.BaseProcess]]:
    """The processes a test starts, terminated when it ends if still alive."""
    processes: list[multiprocessing.process.BaseProcess] = []
    yield processes
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(10)


def test_processes_and_threads_meeting_the_same_new_ids_map_each_once(
    make_app: AppFactory,
    redis_url: str,
    store_config: dict[str, Any],
    started: list[multiprocessing.process.BaseProcess],
) -> None:
    """2 processes of 8 threads each mark the same 20,000 new ids, each
    thread in its own order, all at once: every id gets one dense id, and
    every mark lands on it."""
    # 16 writer threads and a cluster's 6 nodes on a machine of few CPUs may
    # take longer than the default 0.25 s to answer: no timeout is tested
    # here.
    config = {**store_config, "id_map": True, "socket_timeout": 10}
    if "shard_bits" in config:
        # Shards of 4,096 ids: the bits spread over a few slots, not thousands.
        config["shard_bits"] = 12
    settings = {f"BITMAPIST_{key.upper()}": value for key, value in config.items()}
    settings.setdefault("BITMAPIST_REDIS_URL", redis_url)
    ids = race_ids()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACE_PROCESSES * RACE_THREADS)
    for number in range(RACE_PROCESSES):
        # The first process keeps the ids it met in its cache, the second
        # none: every one of its batches asks the map.
        cache = {"BITMAPIST_ID_CACHE_SIZE": 0} if number else {}
        worker = context.Process(
            target=mark_all,
            args=({**settings, **cache}, ids, number, RACE_THREADS, barrier),
        )
        started.append(worker)
        worker.start()
    for process in started:
        process.join(90)
    assert [process.exitcode for process in started] == [0] * RACE_PROCESSES

    app = make_app(**config)
    buckets = buckets_of(store_config)
    contents = MapContents(store_of(app).client, buckets)
    assert len(contents.forward) == RACE_IDS
    assert set(contents.forward) == set(ids)
    assert contents.repeats == []
    assert len(set(contents.forward.values())) == RACE_IDS
    assert contents.reverse == {dense: user for user, dense in contents.forward.items()}
    assert sum(contents.counters) == RACE_IDS
    # Each bucket handed out its first dense ids, each once, none skipped.
    dense_by_bucket: dict[int, list[int]] = {}
    for user, dense in contents.forward.items():
        dense_by_bucket.setdefault(contents.bucket_of[user], []).append(dense)
    for bucket, dense_ids in dense_by_bucket.items():
        assert sorted(dense_ids) == [
            bucket + buckets * n for n in range(contents.counters[bucket])
        ]
    if buckets > 1:
        assert all(
            contents.bucket_of[user] == zlib.crc32(user.encode()) % buckets
            for user in ids
        )
    with app.app_context():
        events = get_event_data(RACE_EVENT, "day", RACE_WHEN)
        assert len(events) == RACE_IDS
        assert sorted(events, key=str) == sorted(ids)


# -- A full map ---------------------------------------------------------------

FIRST_TEN = [f"user{number}" for number in range(10)]
FULL_MESSAGE = (
    "The id map is full: {} new ids would get dense ids above "
    "BITMAPIST_MAX_USER_ID (9)."
)


def test_a_full_map_refuses_the_11th_new_id_in_sync_mode(
    make_app: AppFactory, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(id_map=True, max_user_id=9)
    writer = app.extensions["bitmapist"].state(app).writer
    with app.app_context(), caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        for user in FIRST_TEN:
            mark_event("song", user, now=NOW)
        assert flush() is True
        mark_event("song", "user10", now=NOW)
        after_one = app.extensions["bitmapist"].stats()
        assert flush() is False
        # Known ids and new ones in one write: the known ones are written.
        written = writer.submit_many(
            [
                Mark("song", "user3", LATER, False, False),
                Mark("song", "user11", LATER, False, False),
                Mark("song", "user5", LATER, False, False),
                Mark("song", "user12", LATER, False, False),
                Mark("song", "user11", LATER, False, False),
            ]
        )
        stats = app.extensions["bitmapist"].stats()
        assert flush() is False
        day = list(get_event_data("song", "day", NOW))
        later = list(get_event_data("song", "day", LATER))
    assert (after_one.queued, after_one.written, after_one.dropped) == (11, 10, 1)
    assert [mark.user_id for mark in written] == ["user3", "user5"]
    assert (stats.queued, stats.written, stats.dropped) == (16, 12, 4)
    assert stats.last_error == FULL_MESSAGE.format(2)
    assert caplog.messages == [
        f"Redis refused mark 'song', dropped 1: {FULL_MESSAGE.format(1)}",
        f"Redis refused mark 'song', dropped 3: {FULL_MESSAGE.format(2)}",
    ]
    assert day == FIRST_TEN
    assert later == ["user3", "user5"]
    assert client.get("trackist:ids:next") == b"10"
    assert client.hgetall("trackist:ids:fwd") == {
        user.encode(): str(dense).encode() for dense, user in enumerate(FIRST_TEN)
    }


def test_a_full_map_refuses_the_11th_new_id_in_background_mode(
    make_app: AppFactory, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        id_map=True, max_user_id=9, write_mode="background", flush_interval=30
    )
    with app.app_context(), caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        for user in FIRST_TEN:
            mark_event("song", user, now=NOW)
        mark_event("song", "user10", now=NOW)
        mark_event("song", "user4", now=LATER)
        assert flush(timeout=30) is False
        stats = app.extensions["bitmapist"].stats()
        mark_event("song", "user7", now=LATER)
        assert flush(timeout=30) is True
        day = list(get_event_data("song", "day", NOW))
        later = list(get_event_data("song", "day", LATER))
    assert (stats.queued, stats.written, stats.dropped, stats.pending) == (12, 11, 1, 0)
    assert stats.last_error == FULL_MESSAGE.format(1)
    assert caplog.messages == [
        f"Redis refused 1 marks of a batch: {FULL_MESSAGE.format(1)}"
    ]
    assert day == FIRST_TEN
    assert later == ["user4", "user7"]
    assert client.get("trackist:ids:next") == b"10"


def test_a_full_map_raises_when_asked_to(make_app: AppFactory) -> None:
    app = make_app(id_map=True, max_user_id=9, raise_errors=True)
    with app.app_context():
        for user in FIRST_TEN:
            mark_event("song", user, now=NOW)
        with pytest.raises(IdMapFull) as raised:
            mark_event("song", "user10", now=NOW)
        stats = app.extensions["bitmapist"].stats()
    assert str(raised.value) == FULL_MESSAGE.format(1)
    assert (stats.queued, stats.written, stats.dropped) == (11, 10, 1)


def ids_in_bucket(bucket: int, count: int) -> list[str]:
    """The first ``count`` ids ``user<n>`` whose bucket in a sharded map is
    ``bucket``."""
    found: list[str] = []
    number = 0
    while len(found) < count:
        user = f"user{number}"
        if zlib.crc32(user.encode()) % BUCKETS == bucket:
            found.append(user)
        number += 1
    return found


def test_a_sharded_map_fills_bucket_by_bucket(make_app: AppFactory) -> None:
    """Bucket ``b`` hands out ``b``, ``b + 64``...: with a maximum of 9, each
    of buckets 0 to 9 has one dense id, and the others none."""
    app = make_app(id_map=True, max_user_id=9, key_layout="sharded", shard_bits=3)
    first, second = ids_in_bucket(3, 2)
    (far,) = ids_in_bucket(40, 1)
    with app.app_context():
        mark_event("song", first, now=NOW)
        mark_event("song", second, now=NOW)
        mark_event("song", far, now=NOW)
        stats = app.extensions["bitmapist"].stats()
        assert list(get_event_data("song", "day", NOW)) == [first]
    assert (stats.written, stats.dropped) == (1, 2)
    assert stats.last_error == FULL_MESSAGE.format(1)
    contents = MapContents(store_of(app).client, BUCKETS)
    assert contents.forward == {first: 3}


# -- The id cache and its round trips ------------------------------------------

SCRIPT_NAMES = {
    SETBITS_SCRIPT: "setbits",
    MAP_AND_SETBITS_SCRIPT: "map+setbits",
    ALLOCATE_SCRIPT: "allocate",
}


def parse_commands(packed: Any) -> list[str]:
    """The commands of a packed request (a pipeline's are several), each
    named by its command, and an EVAL by its script."""
    data = (
        bytes(packed)
        if isinstance(packed, (bytes, memoryview))
        else b"".join(bytes(chunk) for chunk in packed)
    )
    commands = []
    at = 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        arguments = []
        for _ in range(int(data[at + 1 : end])):
            at = end + 2
            end = data.index(b"\r\n", at)
            size = int(data[at + 1 : end])
            arguments.append(data[end + 2 : end + 2 + size])
            end = end + 2 + size
        at = end + 2
        name = arguments[0].decode().upper()
        if name == "EVAL":
            name = f"EVAL {SCRIPT_NAMES.get(arguments[1].decode(), 'other')}"
        commands.append(name)
    return commands


class Requests:
    """What reached Redis: each round trip's commands."""

    def __init__(self) -> None:
        self.trips: list[list[str]] = []


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Requests:
    """Record every request sent to Redis; a pipeline is one."""
    requests = Requests()
    original = redis.connection.AbstractConnection.send_packed_command

    def recording(self: Any, command: Any, check_health: bool = True) -> None:
        requests.trips.append(parse_commands(command))
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", recording
    )
    return requests


def marks_of(users: list[str], when: datetime = NOW) -> list[Mark]:
    return [Mark("song", user, when, False, False) for user in users]


ONE_NODE_STORES = {
    "bitmapist": {},
    "sharded": {"key_layout": "sharded", "shard_bits": 3},
}


@pytest.mark.parametrize("layout", list(ONE_NODE_STORES))
def test_new_ids_cost_at_most_one_more_round_trip_and_known_ids_none(
    make_app: AppFactory, sent: Requests, layout: str
) -> None:
    """In bitmapist's layout the script that sets the bits maps the new ids
    too; in a sharded one the map's buckets go first, in one round trip.
    Ids met before are in the cache: one EVAL that sets bits, as without the
    map."""
    app = make_app(id_map=True, **ONE_NODE_STORES[layout])
    state = app.extensions["bitmapist"].state(app)
    users = [f"user{number}" for number in range(50)]
    state.store.client.ping()  # the connection's handshake, out of the count
    sent.trips.clear()
    assert len(state.writer.submit_many(marks_of(users))) == 50
    new = sent.trips[:]
    sent.trips.clear()
    assert len(state.writer.submit_many(marks_of(users[::-1], LATER))) == 50
    known = sent.trips[:]
    sent.trips.clear()
    assert len(state.writer.submit_many(marks_of(["newcomer", *users[:10]]))) == 11
    mixed = sent.trips[:]
    with app.app_context():
        now = list(get_event_data("song", "day", NOW))
        later = list(get_event_data("song", "day", LATER))
    assert sorted(now) == sorted([*users, "newcomer"])
    assert later == [user for user in now if user != "newcomer"]
    if layout == "bitmapist":
        assert new == mixed == [["EVAL map+setbits"]]
    else:
        assert new == mixed == [["EVAL allocate"], ["EVAL setbits"]]
    assert known == [["EVAL setbits"]]


def test_the_cache_keeps_the_ids_met_last(
    make_app: AppFactory, client: redis.Redis, sent: Requests
) -> None:
    app = make_app(id_map=True, id_cache_size=3)
    client.ping()
    store_of(app).client.ping()

    def trips_of(user: str) -> list[list[str]]:
        sent.trips.clear()
        with app.app_context():
            mark_event("song", user, now=NOW)
        return sent.trips[:]

    assert [trips_of(user) for user in ("a", "b", "c")] == [[["EVAL map+setbits"]]] * 3
    # a is met again: b is now the least recently met, and d pushes it out.
    assert trips_of("a") == [["EVAL setbits"]]
    assert trips_of("d") == [["EVAL map+setbits"]]
    assert trips_of("c") == [["EVAL setbits"]]
    assert trips_of("a") == [["EVAL setbits"]]
    assert trips_of("b") == [["EVAL map+setbits"]]
    # b came back in, pushing out d, the least recently met.
    assert trips_of("d") == [["EVAL map+setbits"]]
    # Met again through the map, each kept its dense id.
    assert client.hgetall("trackist:ids:fwd") == {
        b"a": b"0",
        b"b": b"1",
        b"c": b"2",
        b"d": b"3",
    }
    assert client.get("trackist:ids:next") == b"4"


@pytest.mark.parametrize("layout", list(ONE_NODE_STORES))
def test_a_cache_of_0_asks_the_map_every_time(
    make_app: AppFactory, client: redis.Redis, sent: Requests, layout: str
) -> None:
    app = make_app(id_map=True, id_cache_size=0, **ONE_NODE_STORES[layout])
    store = store_of(app)
    with app.app_context():
        mark_event("song", "alice", now=NOW)
        store.client.ping()
        sent.trips.clear()
        mark_event("song", "alice", now=LATER)
        trips = sent.trips[:]
        assert list(get_event_data("song", "day", LATER)) == ["alice"]
    assert store.id_map is not None
    assert store.id_map.cached("alice") is None
    if layout == "bitmapist":
        assert trips == [["EVAL map+setbits"]]
    else:
        assert trips == [["EVAL allocate"], ["EVAL setbits"]]
    assert MapContents(client, buckets_of(ONE_NODE_STORES[layout])).forward == {
        "alice": expected_dense_ids(["alice"], buckets_of(ONE_NODE_STORES[layout]))[
            "alice"
        ]
    }


def test_the_cache_drops_the_least_recently_met_first() -> None:
    id_map = IdMap(cache_size=2)
    id_map.remember([("a", 0), ("b", 1)])
    assert id_map.cached("a") == 0
    id_map.remember([("c", 2)])
    assert [id_map.cached(user) for user in ("b", "a", "c")] == [None, 0, 2]
    id_map.remember([("d", 3)])
    assert [id_map.cached(user) for user in ("a", "c", "d")] == [None, 2, 3]
    empty = IdMap(cache_size=0)
    empty.remember([("a", 0)])
    assert empty.cached("a") is None


# -- Stats ----------------------------------------------------------------------


def test_stats_count_the_ids_and_the_memory_of_the_maps_keys(
    make_store_app: AppFactory, store_config: dict[str, Any]
) -> None:
    app = make_store_app(id_map=True)
    store = store_of(app)
    assert store.id_map is not None
    buckets = buckets_of(store_config)
    empty = store.id_map.stats(store)
    with app.app_context():
        for value, _ in MARKED:
            mark_event("song", value, now=NOW)
    stats = store.id_map.stats(store)
    keys = [key for bucket in range(buckets) for key in bucket_keys(bucket, buckets)]
    memory = sum(
        store.client.memory_usage(key) or 0  # type: ignore[misc]
        for key in keys
    )
    assert empty == IdMapStats(ids=0, memory=0, buckets=buckets)
    assert empty.bytes_per_id is None
    assert stats == IdMapStats(ids=len(USERS), memory=memory, buckets=buckets)
    assert memory > 0
    assert stats.bytes_per_id == memory / len(USERS)

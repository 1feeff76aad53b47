"""A batch's bits go in scripts of at most SCRIPT_SETBITS SETBITs, sent in
one round trip: Redis ends with the same bits as with one script (on
bitmapist's layout, the sharded one, with the id map and on a cluster, with
bitmaps, cleared bits and new ids among them), each script keeps the
bound, and a failure among them is raised as one script's would be."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from conftest import RoundTrips
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_bulk import contents, empty
from test_bulk import stores as stores  # the fixture: the four kinds of store

from flask_bitmapist.store import writer
from flask_bitmapist.store.backend import Script, Store
from flask_bitmapist.store.layout import BITMAPIST
from flask_bitmapist.store.writer import (
    SCRIPT_SETBITS,
    Mark,
    PartialWrite,
    mark_periods,
    write_marks,
)

UTC = timezone.utc
NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)


class Sent:
    """Each script ``_scripts`` made: the SETBITs it sends (a bitmap counts
    as DENSE_MARKS), and its keys."""

    def __init__(self) -> None:
        self.setbits: list[int] = []
        self.keys: list[int] = []

    def within(self, bound: int) -> bool:
        """Whether each script sends at most ``bound`` SETBITs, or is one
        key's bitmap (which cannot be cut)."""
        return all(
            setbits <= bound or keys == 1
            for setbits, keys in zip(self.setbits, self.keys, strict=True)
        )


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    found = Sent()
    make = writer._scripts

    def recording(*args: Any) -> list[Script]:
        scripts = make(*args)
        for text, keys, words in scripts:
            if text == writer.SETBITS_SCRIPT:
                found.keys.append(len(keys))
                offsets = words
            else:  # pieces: a piece counts DENSE_MARKS, its words are bytes
                found.keys.append(len(keys) - 2)
                triples = [words[at : at + 3] for at in range(0, len(words), 3)]
                offsets = [w for t in triples if t[0] == "s" for w in t[1:]]
                offsets += (
                    ["0"] * writer.DENSE_MARKS * sum(t[0] == "p" for t in triples)
                )
            found.setbits.append(sum(len(str(word).split()) for word in offsets))
        return scripts

    monkeypatch.setattr(writer, "_scripts", recording)
    return found


def marks_strategy(id_map: bool) -> st.SearchStrategy[list[Mark]]:
    """Marks of two events over two days, some hourly, some clearing; ids
    close together (so that some keys go as bitmaps) and far apart."""
    user = (
        st.integers(0, 300).map(lambda number: f"user{number}")
        if id_map
        else st.one_of(st.integers(0, 300), st.integers(0, 1 << 20))
    )
    return st.lists(
        st.builds(
            Mark,
            st.sampled_from(["song", "login"]),
            user,
            st.sampled_from([NOW, NOW + timedelta(days=1, hours=3)]),
            st.booleans(),
            st.booleans(),
            st.sampled_from([1, 1, 1, 0]),
        ),
        max_size=120,
    )


def reference(store: Store, marks: list[Mark]) -> dict[bytes, bytes]:
    """The bitmaps of ``marks``, a SETBIT each in their order (the last
    mark of a key and user wins), as ``contents`` reads them."""
    bits: dict[str, dict[int, int]] = {}
    for mark in marks:
        shard, offset = store.layout.split(int(mark.user_id))
        for period in mark_periods(mark):
            bits.setdefault(store.layout.key(mark.event_name, period, shard), {})[
                offset
            ] = mark.value
    found: dict[bytes, bytes] = {}
    for key, values in bits.items():
        data = bytearray((max(values) >> 3) + 1)
        for offset, value in values.items():
            if value:
                data[offset >> 3] |= 0x80 >> (offset & 7)
        found[key.encode()] = bytes(data)
    return found


@pytest.mark.parametrize("kind", ["bitmapist", "sharded", "id map", "cluster"])
def test_split_scripts_leave_redis_as_one_script_does(
    stores: dict[str, Store],
    monkeypatch: pytest.MonkeyPatch,
    sent: Sent,
    kind: str,
) -> None:
    """With a bound of 7 SETBITs (and bitmaps from 20 marks), every batch
    goes as many scripts: Redis ends as with the bound of 1,500 (one script
    for these batches) and, without the id map, as SETBITs one by one."""
    store = stores[kind]

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(batches=st.lists(marks_strategy(kind == "id map"), max_size=3))
    @example(batches=[[Mark("song", user, NOW, False, False) for user in range(40)]])
    def check(batches: list[list[Mark]]) -> None:
        results = []
        for bound, dense_marks in ((SCRIPT_SETBITS, 256), (7, 20)):
            empty(store.client)
            if store.id_map is not None:
                store.id_map.clear_cache()
            monkeypatch.setattr(writer, "SCRIPT_SETBITS", bound)
            monkeypatch.setattr(writer, "DENSE_MARKS", dense_marks)
            sent.setbits.clear()
            sent.keys.clear()
            for batch in batches:
                write_marks(store, batch, set())
            results.append(contents(store.client))
            assert sent.within(bound), (sent.setbits, sent.keys)
        assert results[1] == results[0]
        if store.id_map is None:
            written = {
                key: value.rstrip(b"\0")
                for key, value in results[1].items()
                if key.decode() != store.layout.registry_key
            }
            marks = [mark for batch in batches for mark in batch]
            expected = {
                key: value.rstrip(b"\0")
                for key, value in reference(store, marks).items()
            }
            # A key whose bits were all cleared stays, empty.
            assert {k: v for k, v in written.items() if v} == {
                k: v for k, v in expected.items() if v
            }

    check()


def test_a_batch_of_2000_sparse_marks_goes_as_four_scripts_in_one_round_trip(
    stores: dict[str, Store], sent: Sent, round_trips: RoundTrips
) -> None:
    store = stores["bitmapist"]
    store.client.ping()
    users = [number * 7919 for number in range(2000)]
    round_trips.count = 0
    write_marks(store, [Mark("song", user, NOW, False, False) for user in users])
    assert round_trips.count == 1
    assert sent.setbits == [1500, 1500, 1500, 1500]
    for period in ("month", "week", "day"):
        key = BITMAPIST.key("song", writer.Period.of(period, NOW), 0)
        assert store.client.bitcount(key) == 2000
    assert store.client.getbit(key, 1999 * 7919) == 1
    assert store.client.getbit(key, 1999 * 7919 + 1) == 0


def test_a_batch_of_new_ids_past_the_bound_maps_them_first(
    stores: dict[str, Store], sent: Sent, round_trips: RoundTrips
) -> None:
    """Up to 500 marks, the script that sets the bits maps the new ids; past
    it the ids are mapped in a round trip of their own, and the bits go in
    scripts within the bound."""
    store = stores["id map"]
    assert store.id_map is not None
    known = [f"known{number}" for number in range(500)]
    store.client.ping()  # the connection's handshake, out of the count
    round_trips.count = 0
    write_marks(store, [Mark("song", user, NOW, False, False) for user in known])
    assert round_trips.count == 1
    assert sent.setbits == []  # the map's script, not _scripts
    store.id_map.clear_cache()
    new = [f"new{number}" for number in range(200)]
    later = NOW + timedelta(days=1)
    round_trips.count = 0
    write_marks(
        store, [Mark("song", user, later, False, False) for user in [*known, *new]]
    )
    assert round_trips.count == 2
    # Dense ids 0 to 699: the month, week and day go as bitmaps.
    assert sent.setbits == [3 * writer.DENSE_MARKS]
    key = BITMAPIST.key("song", writer.Period.of("day", later), 0)
    assert store.client.bitcount(key) == 700
    dense = store.id_map.lookup(store, [*known, *new])
    assert sorted(dense) == list(range(700))  # type: ignore[type-var]


def test_a_key_of_another_type_fails_its_script_and_the_others_run(
    stores: dict[str, Store],
) -> None:
    """As with one script: the keys before it in its script are written, and
    the batch's error is Redis's refusal; the other scripts run."""
    store = stores["bitmapist"]
    day = writer.Period.of("day", NOW)
    store.client.hset(BITMAPIST.key("login", day, 0), "a", "hash")
    users = [number * 7919 for number in range(1000)]
    marks = [Mark("song", user, NOW, False, False) for user in users] + [
        Mark("login", user, NOW, False, False) for user in users
    ]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        write_marks(store, marks)
    assert store.client.bitcount(BITMAPIST.key("song", day, 0)) == 1000
    assert (
        store.client.bitcount(BITMAPIST.key("login", writer.Period.of("month", NOW), 0))
        == 1000
    )
    assert store.client.hgetall(BITMAPIST.key("login", day, 0)) == {b"a": b"hash"}


def test_an_outage_among_the_errors_is_the_one_raised(
    stores: dict[str, Store],
) -> None:
    """The writer retries a batch that met an outage, even when another of
    its scripts was refused for good."""
    store = stores["bitmapist"]
    refused = ("return redis.error_reply('WRONGTYPE a key of another type')", [], [])
    outage = ("return redis.error_reply('READONLY a replica')", [], [])
    with pytest.raises(redis.ReadOnlyError):
        writer._run_scripts(store, [refused, outage, ("return 1", [], [])])
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        writer._run_scripts(store, [("return 1", [], []), refused, refused])
    # Without an error, every script runs.
    setting = "return redis.call('SET', KEYS[1], ARGV[1])"
    writer._run_scripts(
        store, [(setting, ["ran:a"], ["1"]), (setting, ["ran:b"], ["2"])]
    )
    assert store.client.mget("ran:a", "ran:b") == [b"1", b"2"]


def test_a_cluster_shard_with_one_failed_script_is_refused_and_the_others_written(
    stores: dict[str, Store], monkeypatch: pytest.MonkeyPatch, sent: Sent
) -> None:
    """With a bound of 8 SETBITs each shard's month, week and day keys go as
    three scripts; shard 1's day key holds a hash, so its third script
    fails: shard 1's marks are refused, shard 0's written."""
    monkeypatch.setattr(writer, "SCRIPT_SETBITS", 8)
    store = stores["cluster"]
    layout = store.layout
    day = writer.Period.of("day", NOW)
    store.client.hset(layout.key("song", day, 1), "a", "hash")
    marks = [Mark("song", user, NOW, False, False) for user in range(16)]
    with pytest.raises(PartialWrite) as failed:
        write_marks(store, marks)
    assert sent.setbits == [8, 8, 8, 8, 8, 8]
    assert sorted(mark.user_id for mark in failed.value.refused) == list(range(8, 16))
    assert failed.value.unwritten == []
    assert "WRONGTYPE" in str(failed.value.error)
    assert store.client.bitcount(layout.key("song", day, 0)) == 8
    month = writer.Period.of("month", NOW)
    assert store.client.bitcount(layout.key("song", month, 1)) == 8

"""Review of the split of a batch's bits into scripts of at most
SCRIPT_SETBITS SETBITs (``_entries``, ``_scripts``, ``_run_scripts`` and
``_write_shards`` in flask_bitmapist/store/writer.py), of the id map's
``together`` flag (new ids mapped in their own round trip past 500 marks),
and of BITMAPIST_FLUSH_AT's new default (2000; the unset default's fit
with a smaller queue is in tests/test_extension.py).

Every batch is compared, byte for byte, with the same marks sent as one
SETBIT each, in order, to a second db (the last mark of a (key, user) pair
wins): sets and clears across chunk boundaries, keys of more offsets than a
chunk, bitmap pieces among SETBIT keys, hourly and unique keys, on one node
(bitmapist's layout and the sharded one) and on a cluster. With the id map,
batches just below and above 500 marks are compared with the same marks
written one by one. Also checked: no scratch key is left, TTLs are kept, the
registry of the sharded layout and ``known_shards``, what a key of another
type raises and what the writers count, and that each script keeps the
bound."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from conftest import TEST_SHARD_BITS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bulk import contents, empty

from flask_bitmapist.config import Settings
from flask_bitmapist.store import writer
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.idmap import IdMap
from flask_bitmapist.store.layout import BITMAPIST, Period, ShardedLayout
from flask_bitmapist.store.writer import (
    SCRIPT_SETBITS,
    BackgroundWriter,
    Mark,
    PartialWrite,
    SyncWriter,
    is_outage,
    mark_periods,
    write_marks,
)
from flask_bitmapist.testing import ClusterProcess

UTC = timezone.utc
NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=1, hours=5)


# --- Fixtures and helpers -------------------------------------------------


@pytest.fixture
def reference_db(other_redis_url: str) -> Iterator[redis.Redis]:
    """The db below the test db, where the reference SETBITs go."""
    client = redis.Redis.from_url(other_redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def single(client: redis.Redis) -> Iterator[redis.Redis]:
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def cluster(redis_cluster: ClusterProcess) -> Iterator[redis.RedisCluster]:
    redis_cluster.flushall()
    host, port = redis_cluster.startup_nodes[0]
    connection = redis.RedisCluster(host=host, port=port)
    yield connection
    connection.close()


def make_store(kind: str, single: redis.Redis, request: pytest.FixtureRequest) -> Store:
    if kind == "bitmapist":
        return Store(single, BITMAPIST)
    if kind == "sharded":
        return Store(single, ShardedLayout(TEST_SHARD_BITS))
    connection: redis.RedisCluster = request.getfixturevalue("cluster")
    return Store(connection, ShardedLayout(TEST_SHARD_BITS))


def setbit_reference(store: Store, reference: redis.Redis, marks: list[Mark]) -> None:
    """Each mark as one SETBIT per key, in order, into ``reference``."""
    pipeline = reference.pipeline(transaction=False)
    for mark in marks:
        shard, offset = store.layout.split(int(mark.user_id))
        for period in mark_periods(mark):
            key = store.layout.key(mark.event_name, period, shard)
            pipeline.setbit(key, offset, mark.value)
    pipeline.execute()


def without_registry(store: Store, found: dict[bytes, Any]) -> dict[bytes, Any]:
    registry = store.layout.registry_key
    return {
        key: value
        for key, value in found.items()
        if registry is None or key != registry.encode()
    }


def registry_shards(store: Store) -> set[int]:
    registry = store.layout.registry_key
    assert registry is not None
    value = store.client.get(registry) or b""
    return {
        8 * index + bit
        for index, byte in enumerate(value)
        for bit in range(8)
        if byte & (0x80 >> bit)
    }


def script_calls(client: redis.Redis) -> tuple[int, int]:
    """How many EVAL/EVALSHA and SETBIT calls the server ran so far."""
    stats = client.info("commandstats")

    def count(name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    return count("eval") + count("evalsha"), count("setbit")


def mixed_marks(seed: int, count: int, *, dense: bool = False) -> list[Mark]:
    """``count`` marks over two events and two days: ids sparse (or 0 to
    1,999 with ``dense``), a quarter clearing, some users repeated (set then
    cleared, cleared then set), some hourly, some unique."""
    rng = random.Random(seed)
    users = list(range(2000)) if dense else [rng.randrange(1 << 22) for _ in range(700)]
    marks = []
    for _ in range(count):
        marks.append(
            Mark(
                rng.choice(["song", "login"]),
                rng.choice(users),
                rng.choice([NOW, LATER]),
                rng.random() < 0.3,
                rng.random() < 0.3,
                0 if rng.random() < 0.25 else 1,
            )
        )
    return marks


# --- Bits exactly as SETBITs one by one ------------------------------------


@pytest.mark.parametrize("kind", ["bitmapist", "sharded", "cluster"])
@pytest.mark.parametrize("seed", [1, 2])
def test_sets_and_clears_across_chunks_match_setbits_one_by_one(
    kind: str,
    seed: int,
    single: redis.Redis,
    reference_db: redis.Redis,
    request: pytest.FixtureRequest,
) -> None:
    """5,000 sparse marks (a batch of many scripts, keys of more offsets
    than a chunk of 500), a quarter clearing, users set then cleared in the
    batch: Redis holds exactly the bytes of one SETBIT per mark and key;
    the sharded registry holds exactly the shards written; no other key."""
    store = make_store(kind, single, request)
    marks = mixed_marks(seed, 5000)
    known: set[int] = set()
    write_marks(store, marks, known)
    setbit_reference(store, reference_db, marks)
    assert without_registry(store, contents(store.client)) == contents(reference_db)
    if store.layout.registry_key is not None:
        shards = {store.layout.split(int(mark.user_id))[0] for mark in marks}
        assert registry_shards(store) == shards
        assert known == shards


@pytest.mark.parametrize("kind", ["bitmapist", "sharded"])
def test_pieces_among_setbit_keys_across_scripts_match_setbits_and_keep_ttls(
    kind: str,
    single: redis.Redis,
    reference_db: redis.Redis,
    request: pytest.FixtureRequest,
) -> None:
    """Dense ids 0 to 1,999 of seven events (their month, week and day go
    as bitmaps: over five pieces, so several scripts of pieces), among
    sparse SETBIT keys with clears, into keys that already hold bits and a
    TTL: the bytes match the SETBITs, every TTL is kept, no scratch key is
    left (the keys are exactly the reference's)."""
    store = make_store(kind, single, request)
    rng = random.Random(7)
    dense = [
        Mark(f"dense{event}", user, NOW, event == 0, event == 1)
        for event in range(7)
        for user in rng.sample(range(2000), 600)
    ]
    sparse = mixed_marks(3, 1500)
    marks = dense[:2000] + sparse + dense[2000:]
    rng.shuffle(marks)
    # Bits already there, with a TTL on the writer's side.
    before = [
        Mark(f"dense{e}", u, NOW, True, True) for e in range(7) for u in (5, 9999)
    ]
    setbit_reference(store, single, before)
    setbit_reference(store, reference_db, before)
    for key in single.keys("*"):
        single.expire(key, 10_000)
    write_marks(store, marks, set())
    setbit_reference(store, reference_db, marks)
    assert without_registry(store, contents(single)) == contents(reference_db)
    ttls = {
        key: single.ttl(key)
        for key in single.keys("*")
        if key.decode() != store.layout.registry_key
    }
    pre_existing = {
        store.layout.key(m.event_name, p, store.layout.split(int(m.user_id))[0])
        for m in before
        for p in mark_periods(m)
    }
    for key, ttl in ttls.items():
        if key.decode() in pre_existing:
            assert 9_000 < ttl <= 10_000, key
        else:
            assert ttl == -1, key


# --- Hypothesis: small bounds, exact bytes ---------------------------------


@pytest.mark.parametrize("kind", ["bitmapist", "sharded", "cluster"])
def test_any_batch_at_small_bounds_matches_setbits_exactly(
    kind: str,
    single: redis.Redis,
    reference_db: redis.Redis,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a bound of 12 SETBITs (chunks of 4) and pieces from 8 marks,
    any batch of sets and clears, close and far ids, hourly and unique,
    ends with exactly the bytes of SETBITs one by one (empty keys too), and
    leaves no scratch key."""
    store = make_store(kind, single, request)
    monkeypatch.setattr(writer, "SCRIPT_SETBITS", 12)
    monkeypatch.setattr(writer, "DENSE_MARKS", 8)
    user = st.one_of(st.integers(0, 40), st.integers(0, 1 << 16))
    mark = st.builds(
        Mark,
        st.sampled_from(["a", "b"]),
        user,
        st.sampled_from([NOW, LATER]),
        st.booleans(),
        st.booleans(),
        st.sampled_from([1, 1, 1, 0]),
    )

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(batches=st.lists(st.lists(mark, max_size=80), min_size=1, max_size=3))
    def check(batches: list[list[Mark]]) -> None:
        empty(store.client)
        reference_db.flushdb()
        for batch in batches:
            write_marks(store, batch, set())
            setbit_reference(store, reference_db, batch)
        assert without_registry(store, contents(store.client)) == contents(reference_db)

    check()


# --- The id map around 500 marks -------------------------------------------


def id_map_state(store: Store) -> tuple[dict[str, set[str]], dict[str, int]]:
    """Each event key's set canonical ids, and the map (canonical -> dense)."""
    assert store.id_map is not None
    counter, forward, reverse = store.id_map.keys(0)
    mapping = {k.decode(): int(v) for k, v in store.client.hgetall(forward).items()}
    back = {int(k): v.decode() for k, v in store.client.hgetall(reverse).items()}
    assert {dense: canonical for canonical, dense in mapping.items()} == back
    # Dense ids handed out once each, none skipped.
    assert sorted(mapping.values()) == list(range(len(mapping)))
    assert int(store.client.get(counter) or 0) == len(mapping)
    bits: dict[str, set[str]] = {}
    for key in store.client.keys("*"):
        name = key.decode()
        if name in (counter, forward, reverse):
            continue
        value = store.client.get(key) or b""
        bits[name] = {
            back[8 * index + bit]
            for index, byte in enumerate(value)
            for bit in range(8)
            if byte & (0x80 >> bit)
        }
    return bits, mapping


def id_marks(seed: int, count: int, hourly: bool) -> list[Mark]:
    rng = random.Random(seed)
    ids = [f"known{n}" for n in range(300)] + [f"new{n}" for n in range(900)]
    return [
        Mark(
            rng.choice(["song", "login"]),
            rng.choice(ids),
            rng.choice([NOW, LATER]),
            hourly and rng.random() < 0.5,
            hourly and rng.random() < 0.5,
            0 if rng.random() < 0.2 else 1,
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("count", [499, 500, 501, 502, 1800])
@pytest.mark.parametrize("cached", [True, False])
def test_id_map_batch_around_500_marks_matches_marks_one_by_one(
    count: int,
    cached: bool,
    single: redis.Redis,
    reference_db: redis.Redis,
) -> None:
    """Known ids (cached or not) and new ones, some set then cleared, some
    only cleared: the batch maps each id set once, to dense ids without a
    gap, and each key holds the same canonical ids as the same marks
    written one by one."""
    batch_store = Store(single, BITMAPIST, IdMap())
    one_store = Store(reference_db, BITMAPIST, IdMap())
    known = [Mark("song", f"known{n}", NOW, False, False) for n in range(300)]
    for store in (batch_store, one_store):
        write_marks(store, known)
    if not cached:
        assert batch_store.id_map is not None
        batch_store.id_map.clear_cache()
    marks = id_marks(count, count, hourly=True)
    write_marks(batch_store, marks)
    for mark in marks:
        write_marks(one_store, [mark])
    batch_bits, batch_map = id_map_state(batch_store)
    one_bits, one_map = id_map_state(one_store)
    assert batch_bits == one_bits
    assert set(batch_map) == set(one_map)


def test_id_map_batch_of_500_hourly_unique_marks_keeps_each_script_within_bound(
    single: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of 500 marks of new ids, hourly and unique (5 keys a mark):
    2,500 SETBITs (no bitmaps here, so that each bit is a SETBIT). The
    review found ``together`` counting 3 keys a mark, so one
    MAP_AND_SETBITS_SCRIPT sent all 2,500, past SCRIPT_SETBITS; it now
    counts each mark's keys, and the same marks of int ids and of new ids
    go as scripts within the bound."""
    monkeypatch.setattr(writer, "DENSE_MARKS", 10**9)
    plain = Store(single, BITMAPIST)
    ints = [Mark("song", n * 7919, NOW, True, True) for n in range(500)]
    evals, setbits = script_calls(single)
    write_marks(plain, ints)
    evals_after, setbits_after = script_calls(single)
    assert setbits_after - setbits == 2500
    assert setbits_after - setbits <= SCRIPT_SETBITS * (evals_after - evals)

    single.flushdb()
    mapped = Store(single, BITMAPIST, IdMap())
    marks = [Mark("song", f"user{n}", NOW, True, True) for n in range(500)]
    evals, setbits = script_calls(single)
    write_marks(mapped, marks)
    evals_after, setbits_after = script_calls(single)
    assert setbits_after - setbits == 2500
    assert setbits_after - setbits <= SCRIPT_SETBITS * (evals_after - evals), (
        f"{setbits_after - setbits} SETBITs in {evals_after - evals} script(s)"
    )


def test_id_map_full_refuses_the_same_marks_below_and_above_500(
    single: redis.Redis, reference_db: redis.Redis
) -> None:
    """A map of 100 dense ids at most: 500 marks (ids mapped in the bits'
    script) and 501 marks (mapped first) refuse the marks of the same ids,
    as IdMapFull in a PartialWrite, and write the others' bits."""
    refused = []
    for db, count in ((single, 500), (reference_db, 501)):
        store = Store(db, BITMAPIST, IdMap(limit=99))
        marks = [Mark("song", f"u{n % 150}", NOW, False, False) for n in range(count)]
        with pytest.raises(PartialWrite) as failed:
            write_marks(store, marks)
        assert type(failed.value.error).__name__ == "IdMapFull"
        refused.append({mark.user_id for mark in failed.value.refused})
        day = BITMAPIST.key("song", Period.of("day", NOW), 0)
        assert db.bitcount(day) == 100
    assert refused[0] == refused[1] == {f"u{n}" for n in range(100, 150)}


# --- Errors: what is raised, written and counted ---------------------------


def wrongtype_batch(store: Store) -> list[Mark]:
    """1,000 marks of "song" and 1,000 of "login" (sparse: four scripts),
    "login"'s day key a hash."""
    store.client.hset(store.layout.key("login", Period.of("day", NOW), 0), "a", "hash")
    users = [n * 7919 for n in range(1000)]
    return [Mark("song", u, NOW, False, False) for u in users] + [
        Mark("login", u, NOW, False, False) for u in users
    ]


def test_a_hash_in_one_script_is_a_refusal_and_the_sync_writer_drops_the_batch(
    single: redis.Redis,
) -> None:
    """Probe: WRONGTYPE is raised (no outage, no retry); the sync writer
    counts the whole batch dropped, though "song"'s 1,000 marks were
    written in full by the other scripts."""
    store = Store(single, BITMAPIST)
    marks = wrongtype_batch(store)
    sync = SyncWriter(store, Settings(raise_errors=True))
    with pytest.raises(redis.ResponseError, match="WRONGTYPE") as error:
        sync.submit_many(marks)
    assert not is_outage(error.value)
    stats = sync.stats()
    assert (stats.queued, stats.written, stats.dropped) == (2000, 0, 2000)
    assert sync.flush() is False
    day = Period.of("day", NOW)
    assert single.bitcount(BITMAPIST.key("song", day, 0)) == 1000
    assert single.type(BITMAPIST.key("login", day, 0)) == b"hash"


def test_a_hash_in_one_script_the_background_writer_drops_without_retry(
    single: redis.Redis,
) -> None:
    """Probe: the background writer drops the batch once (not retried),
    and goes on with the next batch."""
    store = Store(single, BITMAPIST)
    marks = wrongtype_batch(store)
    background = BackgroundWriter(store, Settings(flush_interval=30, exit_timeout=0))
    background.submit_many(marks)
    assert background.flush(10) is False
    after = [Mark("song", n, LATER, False, False) for n in range(3000)]
    background.submit_many(after)
    assert background.flush(10) is True
    stats = background.stats()
    assert (stats.written, stats.dropped, stats.retried, stats.pending) == (
        3000,
        2000,
        0,
        0,
    )
    assert single.bitcount(BITMAPIST.key("song", Period.of("day", LATER), 0)) == 3000


def test_sharded_registry_goes_in_the_first_script_and_known_shards_on_success(
    single: redis.Redis,
) -> None:
    """One node, sharded: 2,000 marks over 1,000 shards, the first event
    key a hash. WRONGTYPE is raised; the registry, first in the first
    script, holds every shard; ``known_shards`` stays empty until a write
    succeeds."""
    layout = ShardedLayout(TEST_SHARD_BITS)
    store = Store(single, layout)
    marks = [Mark("a", n * 8 + 1, NOW, False, False) for n in range(1000)] + [
        Mark("b", n * 8 + 2, NOW, False, False) for n in range(1000)
    ]
    first = layout.key("a", Period.of("month", NOW), 0)
    single.hset(first, "a", "hash")
    known: set[int] = set()
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        write_marks(store, marks, known)
    assert known == set()
    assert registry_shards(store) == set(range(1000))
    single.delete(first)
    write_marks(store, marks, known)
    assert known == set(range(1000))
    assert single.bitcount(layout.key("b", Period.of("day", NOW), 999)) == 1


def test_cluster_refused_shard_keeps_known_shards_and_writes_the_rest(
    single: redis.Redis, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cluster, bound of 30 SETBITs: shard 2's day key is a hash. The
    PartialWrite refuses exactly shard 2's marks (none unwritten); the
    other shards' bits are written, the registry holds all shards, and
    ``known_shards`` stays empty; the sync writer counts shard 2's marks
    dropped, the others written."""
    monkeypatch.setattr(writer, "SCRIPT_SETBITS", 30)
    store = make_store("cluster", single, request)
    layout = store.layout
    store.client.hset(layout.key("song", Period.of("day", NOW), 2), "a", "hash")
    marks = [Mark("song", user, NOW, True, True) for user in range(40)]
    known: set[int] = set()
    with pytest.raises(PartialWrite) as failed:
        write_marks(store, marks, known)
    assert failed.value.unwritten == []
    assert sorted(m.user_id for m in failed.value.refused) == list(range(16, 24))
    assert known == set()
    assert registry_shards(store) == set(range(5))
    for shard in (0, 1, 3, 4):
        for period in mark_periods(marks[0]):
            assert store.client.bitcount(layout.key("song", period, shard)) == 8
    sync = SyncWriter(store, Settings())
    sync.submit_many(marks)
    stats = sync.stats()
    assert (stats.written, stats.dropped) == (32, 8)


# --- The background writer at its new default -------------------------------


def test_background_writer_default_batches_write_every_mark(
    single: redis.Redis, reference_db: redis.Redis
) -> None:
    """Probe: 12,000 marks through a background writer at the default
    FLUSH_AT (2000): all written, as SETBITs one by one would."""
    store = Store(single, BITMAPIST)
    settings_ = Settings(exit_timeout=0)
    assert settings_.flush_at == 2000
    background = BackgroundWriter(store, settings_)
    marks = mixed_marks(11, 12_000)
    for start in range(0, len(marks), 300):
        background.submit_many(marks[start : start + 300])
    assert background.flush(20) is True
    stats = background.stats()
    assert (stats.written, stats.dropped, stats.pending) == (12_000, 0, 0)
    setbit_reference(store, reference_db, marks)
    assert contents(single) == contents(reference_db)


def test_marks_outside_the_years_in_a_batch_of_many_scripts(
    single: redis.Redis, reference_db: redis.Redis
) -> None:
    """Probe: 3,000 marks over many scripts with 10 of them dated 1969:
    those 10 are refused (MarkOutsideYears in a PartialWrite), the others
    written exactly as SETBITs."""
    store = Store(single, BITMAPIST)
    marks = mixed_marks(5, 3000)
    old = [
        Mark("song", n, datetime(1969, 12, 31, tzinfo=UTC), False, False)
        for n in range(10)
    ]
    batch = marks[:1500] + old + marks[1500:]
    with pytest.raises(PartialWrite) as failed:
        write_marks(store, batch)
    assert type(failed.value.error).__name__ == "MarkOutsideYears"
    assert failed.value.refused == old
    setbit_reference(store, reference_db, marks)
    assert contents(single) == contents(reference_db)


def test_pieces_batch_really_splits_into_several_piece_scripts(
    single: redis.Redis,
) -> None:
    """Probe of the pieces test's premise: 7 events of 600 dense marks
    (21 pieces, 256 each) go as at least 4 scripts, each ORing pieces."""
    store = Store(single, BITMAPIST)
    marks = [
        Mark(f"dense{event}", user, NOW, False, False)
        for event in range(7)
        for user in range(600)
    ]
    stats = single.info("commandstats")
    evals = stats.get("cmdstat_eval", {}).get("calls", 0)
    bitops = stats.get("cmdstat_bitop", {}).get("calls", 0)
    write_marks(store, marks)
    stats = single.info("commandstats")
    assert stats["cmdstat_eval"]["calls"] - evals >= 4
    assert stats["cmdstat_bitop"]["calls"] - bitops == 21
    assert single.keys("*bitop*") == []

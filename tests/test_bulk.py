"""The import's bulk write (store/bulk.py) leaves Redis as writing the same
marks one by one with write_marks does: on bitmapist's layout and the sharded
one, on one node and on a real cluster, with and without the id map; bitmaps
split into pages and scripts of bounded size; a key's TTL kept; a key of
another type refused with no scratch key left."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from conftest import TEST_SHARD_BITS
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flask_bitmapist.store import bulk, writer
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.bulk import write_user_ids
from flask_bitmapist.store.idmap import IdMap
from flask_bitmapist.store.layout import BITMAPIST, Period, ShardedLayout
from flask_bitmapist.store.writer import Mark, mark_periods, write_marks
from flask_bitmapist.testing import ClusterProcess

UTC = timezone.utc
NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)


@pytest.fixture
def stores(redis_url: str, redis_cluster: ClusterProcess) -> Iterator[dict[str, Store]]:
    redis_cluster.flushall()
    single = redis.Redis.from_url(redis_url)
    host, port = redis_cluster.startup_nodes[0]
    cluster = redis.RedisCluster(host=host, port=port)
    yield {
        "bitmapist": Store(single, BITMAPIST),
        "sharded": Store(single, ShardedLayout(TEST_SHARD_BITS)),
        "id map": Store(single, BITMAPIST, IdMap()),
        "cluster": Store(cluster, ShardedLayout(TEST_SHARD_BITS)),
    }
    single.close()
    cluster.close()


def empty(client: Any) -> None:
    if isinstance(client, redis.RedisCluster):
        client.flushall()
    else:
        client.flushdb()


def contents(client: Any) -> dict[bytes, bytes]:
    """Every key and its value (bitmaps, and the id map's hashes as lists)."""
    if isinstance(client, redis.RedisCluster):
        keys = client.keys(target_nodes=redis.RedisCluster.PRIMARIES)
    else:
        keys = client.keys("*")
    found = {}
    for key in keys:
        kind = client.type(key)
        found[key] = (
            client.get(key)
            if kind == b"string"
            else sorted(client.hgetall(key).items())
        )
    return found


def script_words(monkeypatch: pytest.MonkeyPatch, client: Any) -> list[Any]:
    """The ARGV of every script ``client`` runs from now on, in one list."""
    sent: list[Any] = []
    evaluate = client.eval

    def recording(script: str, keys: int, *args: Any) -> Any:
        sent.extend(args[keys:])
        return evaluate(script, keys, *args)

    monkeypatch.setattr(client, "eval", recording)
    return sent


def as_marks(
    ids_by_group: dict[tuple[str, datetime], list[int]], hourly: bool, unique: bool
) -> list[Mark]:
    return [
        Mark(event, user_id, when, hourly, unique)
        for (event, when), user_ids in ids_by_group.items()
        for user_id in user_ids
    ]


groups_strategy = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 40), st.integers(0, 23)),
    st.lists(
        st.one_of(
            st.integers(0, 300),  # close together: bitmaps
            st.integers(0, 1 << 16),  # far apart: SETBITs, pages
        ),
        min_size=1,
        max_size=400,
    ),
    max_size=6,
)


@pytest.mark.parametrize("name", ["bitmapist", "sharded", "id map", "cluster"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(groups=groups_strategy, hourly=st.booleans(), unique=st.booleans())
def test_bulk_writes_what_write_marks_writes(
    stores: dict[str, Store],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    groups: dict[tuple[str, int, int], list[int]],
    hourly: bool,
    unique: bool,
) -> None:
    # Small scripts and pages, so that a few hundred ids split into several.
    monkeypatch.setattr(bulk, "SCRIPT_BYTES", 64)
    monkeypatch.setattr(bulk, "MAX_BATCH", 7)
    monkeypatch.setattr(bulk, "SCRIPT_SETBITS", 7)
    store = stores[name]
    ids_by_group = {
        (event, (NOW - timedelta(days=days)).replace(hour=hour if hourly else 0)): ids
        for (event, days, hour), ids in groups.items()
    }
    empty(store.client)
    write_user_ids(store, ids_by_group, hourly, unique, set())
    written = contents(store.client)
    empty(store.client)
    if store.id_map is not None:
        store.id_map = IdMap()  # a cache as empty as the map
    write_marks(store, as_marks(ids_by_group, hourly, unique))
    assert written == contents(store.client)


def test_the_registry_takes_each_new_shard_once(stores: dict[str, Store]) -> None:
    store = stores["sharded"]
    empty(store.client)
    known: set[int] = set()
    write_user_ids(store, {("a", NOW): [1, 9, 17]}, False, False, known)
    assert known == {0, 1, 2}
    store.client.delete(store.layout.registry_key)
    write_user_ids(store, {("a", NOW): [2, 25]}, False, False, known)
    assert known == {0, 1, 2, 3}
    # Shards 0 to 2 were known: only shard 3 was recorded again.
    assert store.shards() == [3]


def test_scripts_stay_within_their_bytes(
    stores: dict[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A million ids up to 2**24 (2 MiB keys): no script carries more than
    SCRIPT_BYTES of bitmaps, and the bits are all there."""
    store = stores["bitmapist"]
    empty(store.client)
    sizes: list[int] = []
    evaluate = store.client.eval

    def counting(script: str, keys: int, *args: Any) -> Any:
        sizes.append(sum(len(arg) for arg in args if isinstance(arg, bytes)))
        return evaluate(script, keys, *args)

    monkeypatch.setattr(store.client, "eval", counting)
    ids = list(range(0, 1 << 24, 17))
    write_user_ids(store, {("a", NOW): ids}, False, False, set())
    assert max(sizes) <= bulk.SCRIPT_BYTES
    assert sum(sizes) >= 3 * (1 << 21) - 3 * 3  # month, week and day, whole
    day = store.layout.key("a", Period.of("day", NOW))
    assert store.client.bitcount(day) == len(ids)
    assert [store.client.getbit(day, offset) for offset in (0, 16, 17, 34)] == [
        1,
        0,
        1,
        1,
    ]


@pytest.mark.parametrize("ids", [list(range(0, 4096, 3)), [5, 1 << 20]])
def test_a_keys_ttl_is_kept(stores: dict[str, Store], ids: list[int]) -> None:
    """As a bitmap ORed in (which writes the key anew) and as SETBITs."""
    store = stores["bitmapist"]
    empty(store.client)
    day = store.layout.key("a", Period.of("day", NOW))
    store.client.setbit(day, 1, 1)
    store.client.expire(day, 1000)
    write_user_ids(store, {("a", NOW): ids}, False, False, set())
    assert 990_000 < store.client.pttl(day) <= 1_000_000
    assert store.client.bitcount(day) == len(set(ids) | {1})


@pytest.mark.parametrize("ids", [list(range(0, 4096, 3)), [5, 1 << 20]])
def test_a_key_of_another_type_is_refused_and_no_scratch_key_is_left(
    stores: dict[str, Store], ids: list[int]
) -> None:
    store = stores["bitmapist"]
    empty(store.client)
    day = store.layout.key("a", Period.of("day", NOW))
    store.client.rpush(day, "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        write_user_ids(store, {("a", NOW): ids}, False, False, set())
    month = store.layout.key("a", Period.of("month", NOW))
    # The month comes before the day, in the same script: written.
    assert store.client.bitcount(month) == len(set(ids))
    assert sorted(store.client.keys("*")) == sorted(
        [
            day.encode(),
            month.encode(),
            store.layout.key("a", Period.of("week", NOW)).encode(),
        ]
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(offsets=st.lists(st.integers(0, 1 << 14), min_size=1, max_size=200))
def test_a_piece_is_the_bitmap_redis_builds(
    client: redis.Redis, offsets: list[int]
) -> None:
    """With numpy and without it, bitmap_piece gives the bytes Redis holds
    after a SETBIT at each offset, from the byte of the first one."""
    client.delete("piece")
    for offset in offsets:
        client.setbit("piece", offset, 1)
    first = min(offsets) >> 3
    want = (first, client.getrange("piece", first, -1))
    assert writer.bitmap_piece(offsets) == want
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writer, "numpy_installed", lambda: False)
        assert writer.bitmap_piece(offsets) == want


def test_a_key_longer_than_script_bytes_takes_setbits(
    stores: dict[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dense ids at the start of a key that some id made long: a bitmap
    would cost Redis a pass over the whole key, so they go as SETBITs; and a
    key that is short takes the same ids as a bitmap."""
    store = stores["bitmapist"]
    empty(store.client)
    sent = script_words(monkeypatch, store.client)
    day = store.layout.key("a", Period.of("day", NOW))
    store.client.setbit(day, 8 * bulk.SCRIPT_BYTES, 1)
    ids = list(range(1000))
    write_user_ids(store, {("a", NOW): ids}, False, False, set())
    assert store.client.bitcount(day) == 1001
    # The month and the week are short: bitmaps; the day: SETBITs.
    assert sent.count("p") == 2
    assert sent.count("s") == 1


# --- The writer's bitmaps: never a pass over a long key ---------------------


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name: stats.get(f"cmdstat_{name}", {}).get("calls", 0)
        for name in ("bitop", "setbit", "setrange")
    }


def test_the_writer_sends_no_bitmap_that_ends_past_piece_key_bytes(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 new users with ids past 8 x PIECE_KEY_BYTES: close together, but
    a bitmap would have Redis lay and OR a key longer than PIECE_KEY_BYTES,
    so they go as SETBITs."""
    sent = script_words(monkeypatch, client)
    first = 8 * writer.PIECE_KEY_BYTES
    marks = [Mark("a", first + user, NOW, False, False) for user in range(300)]
    write_marks(client, marks)
    assert "p" not in sent
    day = BITMAPIST.key("a", Period.of("day", NOW))
    assert client.bitcount(day) == 300
    assert client.getbit(day, first) == 1


def test_a_bitmap_for_a_long_key_is_ored_into_the_bytes_it_covers(
    private_redis: Any,
) -> None:
    """Keys some id made longer than PIECE_KEY_BYTES: the script ORs the
    bitmaps the writer sent for them into the bytes they cover (a BITOP of
    the bitmap's length and a SETRANGE each, no SETBIT), and keeps their
    length, their TTL and no scratch key."""
    client = redis.Redis.from_url(private_redis.url)
    high = 8 * writer.PIECE_KEY_BYTES
    keys = [
        BITMAPIST.key("a", period)
        for period in mark_periods(Mark("a", 0, NOW, False, False))
    ]
    for key in keys:
        client.setbit(key, high, 1)
        client.expire(key, 1000)
    users = list(range(0, 3000, 7))
    before = command_calls(client)
    write_marks(client, [Mark("a", user, NOW, False, False) for user in users])
    after = command_calls(client)
    assert after["bitop"] - before["bitop"] == 3
    assert after["setrange"] - before["setrange"] == 3
    assert after["setbit"] - before["setbit"] == 0
    for key in keys:
        assert client.bitcount(key) == len(users) + 1
        assert [client.getbit(key, offset) for offset in (0, 1, 7, 2997)] == [
            1,
            0,
            1,
            0,
        ]
        assert client.strlen(key) == writer.PIECE_KEY_BYTES + 1
        assert 990 < client.ttl(key) <= 1000
    assert sorted(client.keys("*")) == sorted(key.encode() for key in keys)
    client.close()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    offsets=st.lists(st.integers(0, 4000), min_size=256, max_size=600, unique=True),
    existing=st.lists(st.integers(0, 4100), max_size=50),
    long_key=st.booleans(),
)
# Bits the key had in the first and the last byte the bitmap covers.
@example(offsets=list(range(8, 4096, 8)), existing=[9, 4089], long_key=True)
@example(offsets=list(range(8, 4096, 8)), existing=[9, 4089], long_key=False)
def test_the_scripts_two_ways_set_the_same_bits(
    client: redis.Redis, offsets: list[int], existing: list[int], long_key: bool
) -> None:
    """A bitmap ORed into a short key and into the bytes it covers of a long
    one leave the bits a SETBIT each leaves, and keep the bits the key had,
    within those bytes and around them."""
    client.flushdb()
    day = BITMAPIST.key("a", Period.of("day", NOW))
    for key in (day, "reference"):
        client.setbit(key, 8 * writer.PIECE_KEY_BYTES if long_key else 0, int(long_key))
        for offset in existing:
            client.setbit(key, offset, 1)
    write_marks(client, [Mark("a", user, NOW, False, False) for user in offsets])
    for offset in offsets:
        client.setbit("reference", offset, 1)
    assert client.getrange(day, 0, 600) == client.getrange("reference", 0, 600)
    assert client.bitcount(day) == client.bitcount("reference")
    assert client.strlen(day) == client.strlen("reference")

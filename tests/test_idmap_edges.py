"""The id map's edge cases a review found: refusals that meet a node's
failure, str and int subclasses as ids, pages across dense ids no user owns,
and the cache forgotten after an outage."""

from __future__ import annotations

import enum
import logging
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from flask_bitmapist import canonical_id, to_user_id
from flask_bitmapist.config import Settings
from flask_bitmapist.report.events import EventSet, period_of
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.idmap import SHARDED_BUCKETS, IdMap
from flask_bitmapist.store.layout import BITMAPIST, KeyLayout, ShardedLayout
from flask_bitmapist.store.writer import Mark, SyncWriter, write_marks
from flask_bitmapist.testing import ClusterProcess, RedisProcess

WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)
DAY = period_of("days", WHEN)


def in_bucket(bucket: int, skip: int = 0) -> str:
    """The ``skip``-th id ``u<n>`` of ``bucket`` among 64."""
    found = (
        f"u{n}"
        for n in range(10**6)
        if zlib.crc32(f"u{n}".encode()) % SHARDED_BUCKETS == bucket
    )
    for _ in range(skip):
        next(found)
    return next(found)


def test_refusals_of_a_full_map_stay_refused_when_a_node_refuses_too(
    redis_cluster: ClusterProcess, caplog: pytest.LogCaptureFixture
) -> None:
    redis_cluster.flushall()
    host, port = redis_cluster.startup_nodes[0]
    client = RedisCluster(host=host, port=port)
    layout = ShardedLayout(3)
    store = Store(client, layout, IdMap(SHARDED_BUCKETS, limit=10))
    # Dense ids 1 (shard 0), none (bucket 20: 20 > 10) and 9 (shard 1).
    written_id, full_id, shard_one_id = in_bucket(1), in_bucket(20), in_bucket(9)
    # Shard 1's day key holds another type: that shard is refused for good.
    client.hset(layout.key("e", DAY, 1), "x", "1")
    writer = SyncWriter(store, Settings())
    marks = [Mark("e", user, WHEN, False, False) for user in (written_id, full_id)]
    marks.append(Mark("e", shard_one_id, WHEN, False, False))
    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        written = writer.submit_many(marks)
    client.close()
    assert [mark.user_id for mark in written] == [written_id]
    stats = writer.stats()
    assert (stats.queued, stats.written, stats.dropped) == (3, 1, 2)
    assert len(caplog.records) == 1
    assert (
        caplog.records[0].getMessage().startswith("Redis refused mark 'e', dropped 2: ")
    )


class Handle(str):
    """A str subclass, as markupsafe's Markup or numpy's str_ are."""

    def __str__(self) -> str:
        return f"<{str.__str__(self)}>"


class Number(enum.IntEnum):
    SEVEN = 7


@pytest.mark.parametrize(
    "layout", [BITMAPIST, ShardedLayout(3)], ids=["bitmapist", "sharded"]
)
def test_str_and_int_subclasses_are_their_plain_values(
    client: redis.Redis, layout: KeyLayout
) -> None:
    assert canonical_id(Handle("user42")).__class__ is str
    assert canonical_id(Handle("user42")) == "user42"
    assert canonical_id(Number.SEVEN) == "7"
    assert to_user_id("e", Number.SEVEN).__class__ is int
    buckets = 1 if layout is BITMAPIST else SHARDED_BUCKETS
    store = Store(client, layout, IdMap(buckets))
    users = [canonical_id(Handle("user42")), canonical_id(Number.SEVEN)]
    write_marks(store, [Mark("e", user, WHEN, False, False) for user in users])
    assert sorted(EventSet.of_period("e", DAY, store)) == ["7", "user42"]


def test_a_page_reads_past_dense_ids_that_no_user_owns(client: redis.Redis) -> None:
    store = Store(client, ShardedLayout(3), IdMap(SHARDED_BUCKETS))
    # In one batch, each bucket hands out its ids in order: dense ids 0 and
    # 64 (bucket 0), 5 (bucket 5), 7 and 71 (bucket 7).
    first_of_0, second_of_0 = in_bucket(0), in_bucket(0, skip=1)
    other, later = in_bucket(7), in_bucket(7, skip=1)
    write_marks(
        store,
        [
            Mark("e", first_of_0, WHEN, False, False),
            Mark("e", in_bucket(5), WHEN, False, False),
            Mark("f", other, WHEN, False, False),
            Mark("e", second_of_0, WHEN, False, False),
            Mark("f", later, WHEN, False, False),
        ],
    )
    assert store.id_map is not None
    assert [store.id_map.cached(user) for user in (second_of_0, later)] == [64, 71]
    # ~e: dense ids 1-4, 6, 7 of shard 0 and 65-71 of shard 8, of which only
    # 7 and 71 are users.
    outside = ~EventSet.of_period("e", DAY, store)
    assert len(outside) == 13
    assert list(outside) == [other, later]
    first = outside.page(1)
    assert first.users == [other]
    assert first.next_after == other
    rest = outside.page(1, first.next_after)
    assert rest.users == [later]
    assert rest.next_after is None
    assert outside.page(5).users == [other, later]


def test_an_outage_empties_the_cache_of_dense_ids(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        store = Store(redis.Redis.from_url(server.url), BITMAPIST, IdMap())
        writer = SyncWriter(store, Settings())
        assert len(writer.submit_many([Mark("e", "alice", WHEN, False, False)])) == 1
        assert store.id_map is not None
        assert store.id_map.cached("alice") == 0
        server.kill()
        # A failover may lose the last allocations: the process asks again.
        assert not writer.submit_many([Mark("e", "alice", WHEN, False, False)])
        assert store.id_map.cached("alice") is None
    finally:
        server.stop()


def test_clearing_an_id_the_map_never_met_allocates_nothing(
    client: redis.Redis,
) -> None:
    store = Store(client, BITMAPIST, IdMap())
    write_marks(store, [Mark("e", "alice", WHEN, False, False)])
    write_marks(store, [Mark("e", "nobody", WHEN, False, False, value=0)])
    assert client.hgetall("trackist:ids:fwd") == {b"alice": b"0"}
    assert client.get("trackist:ids:next") == b"1"
    # A known id is cleared as any other.
    write_marks(store, [Mark("e", "alice", WHEN, False, False, value=0)])
    assert list(EventSet.of_period("e", DAY, store)) == []

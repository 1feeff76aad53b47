"""``flask bitmapist migrate``: one node to a real cluster and back, between
layouts, with TTLs; running it again converges; the final count check; dry
runs and bad targets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from conftest import TEST_SHARD_BITS, AppFactory
from flask import Flask
from test_sharded_differential import EVENTS, NOW, queries

from flask_bitmapist import get_event_data, mark_event
from flask_bitmapist.store.layout import Period
from flask_bitmapist.store.migrate import compare_period, migrate
from flask_bitmapist.testing import ClusterProcess

UTC = timezone.utc


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["bitmapist", "migrate", *args])


def fill(app: Flask) -> None:
    """Marks of three events over 40 days, sparse ids among them (one past
    2**20, the default shard size), hourly and unique keys too."""
    with app.app_context():
        for index in range(150):
            user = (index * 37) % 900 + (2**20 + 5 if index % 50 == 0 else 0)
            when = NOW - timedelta(days=index % 40, hours=index % 7)
            mark_event(EVENTS[index % 3], user, now=when, track_hourly=True)
            mark_event("visit", user, now=when, track_unique=True)


def key_periods(client: redis.Redis) -> list[bytes]:
    """The event keys of one node's bitmapist layout."""
    return [key for key in client.keys("trackist_*") if b"_bitop_" not in key]


def store_keys(cluster: ClusterProcess) -> int:
    """The event keys of a cluster's sharded layout, on every primary."""
    client = redis.RedisCluster(
        startup_nodes=[
            redis.cluster.ClusterNode(host, port)
            for host, port in cluster.startup_nodes
        ]
    )
    keys = client.keys("trackist3{*", target_nodes="primaries")
    client.close()
    return len(keys)


def store_of(app: Flask) -> Any:
    return app.extensions["bitmapist"].state(app).store


def test_one_node_to_a_cluster_and_back(
    make_app: AppFactory,
    other_redis_url: str,
    redis_cluster: ClusterProcess,
    client: redis.Redis,
) -> None:
    redis_cluster.flushall()
    source = make_app(max_user_id=2**21)
    fill(source)
    client.expire("trackist_visit_u", 3600)
    expected = queries(store_of(source))

    result = run(
        source, "--to", redis_cluster.url, "--shard-bits", str(TEST_SHARD_BITS)
    )
    assert result.exit_code == 0, result.output
    periods = len(set(key_periods(client)))
    assert result.stdout == (
        f"Copied {periods} event periods ({periods} keys) into "
        f"{store_keys(redis_cluster)} keys of {redis_cluster.url} "
        "(ShardedLayout(shard_bits=3)); every user of every event period is "
        "there.\n"
    )
    on_cluster = make_app(
        name="cluster", redis_url=redis_cluster.url, shard_bits=TEST_SHARD_BITS
    )
    assert queries(store_of(on_cluster)) == expected
    cluster_client = store_of(on_cluster).client
    ttls = [
        cluster_client.pttl(key)
        for key in cluster_client.keys("trackist3{*}_visit_u", target_nodes="primaries")
    ]
    assert ttls and all(0 < ttl <= 3_600_000 for ttl in ttls)

    # And back, into bitmapist's layout on another db: bitmapist's keys again.
    back = run(on_cluster, "--to", other_redis_url)
    assert back.exit_code == 0, back.output
    returned = make_app(name="back", redis_url=other_redis_url, max_user_id=2**21)
    assert queries(store_of(returned)) == expected
    other = redis.Redis.from_url(other_redis_url)
    assert sorted(other.keys("*")) == sorted(
        key for key in client.keys("*") if not key.startswith(b"trackist_bitop_")
    )
    assert 0 < other.pttl("trackist_visit_u") <= 3_600_000
    other.close()


def test_running_it_again_converges_and_keeps_the_targets_own_marks(
    make_app: AppFactory, redis_cluster: ClusterProcess
) -> None:
    redis_cluster.flushall()
    source = make_app(max_user_id=2**21)
    fill(source)
    args = ("--to", redis_cluster.url, "--shard-bits", "3")
    assert run(source, *args).exit_code == 0
    target = make_app(name="target", redis_url=redis_cluster.url, shard_bits=3)
    # A copy cut short: some of the target's keys are gone.
    cluster_client = store_of(target).client
    doomed = cluster_client.keys("trackist3{*}_a_*", target_nodes="primaries")
    assert doomed
    for key in doomed:
        cluster_client.delete(key)
    again = run(source, *args)
    assert again.exit_code == 0, again.output
    assert queries(store_of(target)) == queries(store_of(source))

    # A mark the app wrote to the target meanwhile stays; the check wants
    # only the source's users there.
    with target.app_context():
        mark_event("a", 899, now=NOW)
    with source.app_context():
        mark_event("b", 1, now=NOW)
    assert run(source, *args).exit_code == 0
    assert 899 in queries(store_of(target))["a days"][1]
    assert 1 in queries(store_of(target))["b days"][1]

    # A period whose users are not all there is one line each, and exit 1.
    day = Period.of("day", NOW)
    assert compare_period(store_of(source), store_of(target), "b", day) is None
    for key in cluster_client.keys("trackist3{*}_b_*", target_nodes="primaries"):
        cluster_client.delete(key)
    mismatch = compare_period(store_of(source), store_of(target), "b", day)
    assert mismatch is not None
    expected = len(queries(store_of(source))["b days"][1])
    assert (mismatch.source, mismatch.target, mismatch.missing) == (
        expected,
        0,
        expected,
    )


def test_dry_run_writes_nothing(
    make_app: AppFactory, redis_cluster: ClusterProcess
) -> None:
    redis_cluster.flushall()
    source = make_app()
    with source.app_context():
        mark_event("a", 1, now=datetime(2026, 3, 14, tzinfo=UTC))
    result = run(source, "--to", redis_cluster.url, "--dry-run")
    assert result.exit_code == 0
    assert result.output == (
        f"Would copy 3 event periods (3 keys) into {redis_cluster.url} "
        "(ShardedLayout(shard_bits=20)).\n"
    )
    cluster = redis.RedisCluster(
        startup_nodes=[
            redis.cluster.ClusterNode(host, port)
            for host, port in redis_cluster.startup_nodes
        ]
    )
    assert cluster.keys("*", target_nodes="primaries") == []
    cluster.close()


def test_a_bad_target_is_one_line_and_exit_1(
    app: Flask, redis_cluster: ClusterProcess
) -> None:
    result = run(app, "--to", "localhost:6379")
    assert result.exit_code == 1
    assert result.output.startswith("Error: --to, --layout or --shard-bits: ")
    assert len(result.output.splitlines()) == 1
    refused = run(app, "--to", redis_cluster.url, "--layout", "bitmapist")
    assert refused.exit_code == 1
    assert "BITMAPIST_KEY_LAYOUT must be 'sharded' with a Redis Cluster" in (
        refused.output
    )
    bits = run(app, "--to", redis_cluster.url, "--shard-bits", "2")
    assert bits.exit_code == 1
    assert "BITMAPIST_SHARD_BITS must be an int from 3 to 32, got 2." in bits.output


def as_sets(answers: dict[str, Any]) -> dict[str, Any]:
    """``queries``' answers with each list of members sorted: with the id
    map, members come in dense order, which the target's map hands out its
    own way."""
    return {
        name: (value[0], sorted(value[1]), value[2])
        if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], list)
        else value
        for name, value in answers.items()
    }


def test_the_id_map_moves_users_not_dense_ids(
    make_app: AppFactory,
    other_redis_url: str,
    redis_cluster: ClusterProcess,
    client: redis.Redis,
) -> None:
    redis_cluster.flushall()
    source = make_app(id_map=True)
    fill(source)
    with source.app_context():
        for name in ("Zoë", "{1B4E28BA-2FA1-11D2-883F-0016D3CCA427}", "a b"):
            mark_event("a", name, now=NOW)
    expected = as_sets(queries(store_of(source)))
    assert "1b4e28ba-2fa1-11d2-883f-0016d3cca427" in expected["a days"][1]
    users = store_of(source).id_map.stats(store_of(source)).ids

    result = run(source, "--to", redis_cluster.url, "--shard-bits", "3")
    assert result.exit_code == 0, result.output
    on_cluster = make_app(
        name="cluster", redis_url=redis_cluster.url, shard_bits=3, id_map=True
    )
    target = store_of(on_cluster)
    assert target.id_map.buckets == 64
    assert target.id_map.stats(target).ids == users
    assert as_sets(queries(target)) == expected

    back = run(on_cluster, "--to", other_redis_url)
    assert back.exit_code == 0, back.output
    returned = make_app(name="back", redis_url=other_redis_url, id_map=True)
    assert as_sets(queries(store_of(returned))) == as_sets(queries(target))


def test_bits_no_id_of_the_map_owns_are_counted_and_left_behind(
    make_app: AppFactory, other_redis_url: str, client: redis.Redis
) -> None:
    source = make_app(id_map=True)
    with source.app_context():
        mark_event("a", "alice", now=NOW)
    # Marked before the map was turned on: no id owns bit 5000.
    (day_key,) = client.keys("trackist_a_*-*-*")
    client.setbit(day_key, 5000, 1)
    result = run(source, "--to", other_redis_url)
    assert result.exit_code == 0, result.output
    assert result.stderr.endswith(
        "1 users here have bits but no id in the id map (marked without "
        "BITMAPIST_ID_MAP): they were not copied.\n"
    )
    target = make_app(name="target", redis_url=other_redis_url, id_map=True)
    with target.app_context():
        assert list(get_event_data("a", now=NOW)) == ["alice"]


def test_one_store_with_the_id_map_and_one_without_is_refused(
    make_app: AppFactory, other_redis_url: str
) -> None:
    mapped = make_app(id_map=True)
    plain = make_app(name="plain", redis_url=other_redis_url)
    with pytest.raises(ValueError) as error:
        migrate(store_of(mapped), store_of(plain))
    assert str(error.value) == (
        "Both stores need the id map, or neither: the source has "
        "IdMap(buckets=1, limit=16777215), the target None."
    )

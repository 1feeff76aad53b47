"""The sharded layout, on one node and on a real Redis Cluster, answers every
query as bitmapist's layout does on the same marks (hypothesis: random users,
events and days), and as the plain-Python model of tests/model.py does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from conftest import TEST_SHARD_BITS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_bitmapist.report.cohort import get_cohort
from flask_bitmapist.report.events import (
    chain_events,
    count_events,
    event_history,
    get_event_data,
    list_event_names,
)
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.layout import BITMAPIST, ShardedLayout
from flask_bitmapist.store.writer import Mark, write_marks
from flask_bitmapist.testing import ClusterProcess

UTC = timezone.utc
NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
EVENTS = ("a", "b", "c")


@pytest.fixture
def stores(
    redis_url: str, other_redis_url: str, redis_cluster: ClusterProcess
) -> Iterator[dict[str, Store]]:
    """bitmapist's layout on one node, the sharded layout on another db of
    it, and on the cluster; all three empty."""
    redis_cluster.flushall()
    single = redis.Redis.from_url(redis_url)
    other = redis.Redis.from_url(other_redis_url)
    cluster = redis.RedisCluster(
        startup_nodes=[
            redis.cluster.ClusterNode(host, port)
            for host, port in redis_cluster.startup_nodes
        ]
    )
    yield {
        "bitmapist": Store(single, BITMAPIST),
        "sharded": Store(other, ShardedLayout(TEST_SHARD_BITS)),
        "cluster": Store(cluster, ShardedLayout(TEST_SHARD_BITS)),
    }
    for client in (single, other, cluster):
        client.close()


def empty(stores: dict[str, Store]) -> None:
    for store in stores.values():
        client = store.client
        if isinstance(client, redis.RedisCluster):
            client.flushall()  # every primary
        else:
            client.flushdb()


marks_strategy = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        # Ids over many shards of 8, some far apart.
        st.one_of(st.integers(0, 200), st.integers(0, 5000)),
        st.integers(0, 40),  # days before NOW
        st.booleans(),  # set, or clear
    ),
    max_size=120,
)


def queries(store: Store) -> dict[str, Any]:
    """Every query's answer on ``store``."""
    answers: dict[str, Any] = {}
    for group in ("days", "weeks", "months", "years"):
        for event in EVENTS:
            found = get_event_data(event, group, now=NOW, system=store)
            members = list(found)
            answers[f"{event} {group}"] = (len(found), members, bool(found))
            answers[f"{event} {group} in"] = [
                user in found for user in ([*members[:3], 1, 9, 4999])
            ]
        chained = chain_events(
            "a", [{"name": "b", "op": "and"}, {"name": "c", "op": "or"}], NOW, group,
            system=store,
        )  # fmt: skip
        answers[f"chain {group}"] = sorted(chained)
        a, b, c = (
            get_event_data(name, group, now=NOW, system=store) for name in EVENTS
        )
        answers[f"operators {group}"] = [
            sorted(a - b), sorted(a ^ c), len(a | b | c), sorted((a & b) - c)
        ]  # fmt: skip
    for replace in (False, True):
        for group, rows in (("days", 8), ("weeks", 4), ("months", 2)):
            answers[f"cohort {group} {replace}"] = get_cohort(
                "a", "b", [{"name": "c", "op": "or"}], time_group=group,
                num_rows=rows, num_cols=rows, with_replacement=replace, now=NOW,
                system=store,
            )  # fmt: skip
    answers["counts"] = count_events(EVENTS, now=NOW, system=store)
    answers["history"] = event_history(
        "a", now=NOW, days=10, weeks=3, months=2, system=store
    )  # fmt: skip
    answers["names"] = list_event_names(system=store)
    return answers


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(marks=marks_strategy)
def test_every_query_answers_the_same_in_every_layout_and_store(
    stores: dict[str, Store], marks: list[tuple[str, int, int, bool]]
) -> None:
    empty(stores)
    batch = [
        Mark(event, user, NOW - timedelta(days=days), False, True, int(value))
        for event, user, days, value in marks
    ]
    for store in stores.values():
        write_marks(store, batch, set())
    expected = queries(stores["bitmapist"])
    assert queries(stores["sharded"]) == expected
    assert queries(stores["cluster"]) == expected

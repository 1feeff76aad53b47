"""redis+sentinel:// against a real master and a real Redis Sentinel (both
redis-server processes of the test's own, started by ``start_sentinel``):
marks reach the master, reads come back from it, and a URL the sentinels
cannot serve fails at init_app, never in a request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from conftest import AppFactory, StartSentinel
from flask import Flask

from flask_bitmapist import (
    ConfigError,
    flush,
    get_event_data,
    mark,
    mark_event,
)
from flask_bitmapist.testing import free_port

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
DAY, WEEK, MONTH = (
    "trackist_song:played_2026-3-14",
    "trackist_song:played_W2026-11",
    "trackist_song:played_2026-3",
)


def master_client(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(port=port, password=password, socket_timeout=5)


def day_bit_on_master(port: int, user_id: int, password: str | None = None) -> int:
    """The user's bit in the day's key, read on the master itself."""
    master = master_client(port, password)
    try:
        return int(master.getbit(DAY, user_id))
    finally:
        master.close()


@pytest.mark.parametrize("write_mode", ["sync", "background"])
def test_marks_reach_the_master_and_reads_come_back_from_it(
    make_app: AppFactory, start_sentinel: StartSentinel, write_mode: str
) -> None:
    sentinel = start_sentinel()
    app = make_app(redis_url=sentinel.url, write_mode=write_mode)
    with app.app_context():
        for user in (3, 5, 8):
            mark_event("song:played", user, now=NOW)
        assert flush(timeout=10) is True
        day = get_event_data("song:played", "days", now=NOW)
        assert (len(day), 5 in day, 4 in day) == (3, True, False)
        assert len(get_event_data("song:played", "weeks", now=NOW)) == 3
        assert len(get_event_data("song:played", "months", now=NOW)) == 3
    master = master_client(sentinel.master_port)
    try:
        assert sorted(master.keys()) == sorted(
            key.encode() for key in (DAY, WEEK, MONTH)
        )
        for key in (DAY, WEEK, MONTH):
            assert [master.getbit(key, user) for user in range(10)] == [
                0, 0, 0, 1, 0, 1, 0, 0, 1, 0,
            ]  # fmt: skip
    finally:
        master.close()


def test_the_urls_password_opens_the_sentinel_and_the_master(
    make_app: AppFactory, start_sentinel: StartSentinel
) -> None:
    sentinel = start_sentinel(password="s3cret", master_password="s3cret")
    app = make_app(redis_url=sentinel.url.replace("://", "://:s3cret@"))
    with app.app_context():
        mark_event("song:played", 7, now=NOW)
        assert flush() is True
    assert day_bit_on_master(sentinel.master_port, 7, password="s3cret") == 1


def test_sentinel_kwargs_give_the_sentinels_a_password_of_their_own(
    make_app: AppFactory, start_sentinel: StartSentinel
) -> None:
    sentinel = start_sentinel(password="watcher", master_password="m4ster")
    url = sentinel.url.replace("://", "://:m4ster@")
    with pytest.raises(ConfigError) as error:
        make_app(redis_url=url)
    assert str(error.value) == (
        f"BITMAPIST_REDIS_URL 'redis+sentinel://***@127.0.0.1:{sentinel.port}/"
        "mymaster' cannot be used: the sentinel at "
        f"127.0.0.1:{sentinel.port} refused the credentials (invalid "
        "username-password pair or user is disabled.); its own go in "
        "BITMAPIST_REDIS_OPTIONS['sentinel_kwargs']."
    )
    app = make_app(
        name="own",
        redis_url=url,
        redis_options={"sentinel_kwargs": {"password": "watcher"}},
    )
    with app.app_context():
        mark_event("song:played", 2, now=NOW)
        assert flush() is True
    assert day_bit_on_master(sentinel.master_port, 2, password="m4ster") == 1


def test_sentinel_kwargs_can_drop_the_password_for_open_sentinels(
    make_app: AppFactory, start_sentinel: StartSentinel
) -> None:
    sentinel = start_sentinel(master_password="m4ster")
    app = make_app(
        redis_url=sentinel.url.replace("://", "://:m4ster@"),
        redis_options={"sentinel_kwargs": {"password": None}},
    )
    with app.app_context():
        mark_event("song:played", 4, now=NOW)
        assert flush() is True
    assert day_bit_on_master(sentinel.master_port, 4, password="m4ster") == 1


def test_a_service_the_sentinels_do_not_monitor_fails_at_init_app(
    make_app: AppFactory, start_sentinel: StartSentinel
) -> None:
    sentinel = start_sentinel()
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{sentinel.port}/nope"
    with pytest.raises(ConfigError) as error:
        make_app(redis_url=url)
    # The sentinel that does not answer is skipped; the one that does decides.
    assert str(error.value) == (
        f"BITMAPIST_REDIS_URL {url!r} cannot be used: the sentinels that answered "
        f"(127.0.0.1:{sentinel.port}) monitor no service 'nope', only 'mymaster'."
    )


def test_a_plain_redis_given_as_a_sentinel_fails_at_init_app(
    make_app: AppFactory, start_sentinel: StartSentinel
) -> None:
    sentinel = start_sentinel()
    url = f"redis+sentinel://127.0.0.1:{sentinel.master_port}/mymaster"
    with pytest.raises(ConfigError) as error:
        make_app(redis_url=url)
    assert str(error.value) == (
        f"BITMAPIST_REDIS_URL {url!r} cannot be used: "
        f"127.0.0.1:{sentinel.master_port} is not a sentinel (it does not know "
        "the SENTINEL command)."
    )


def test_unreachable_sentinels_never_fail_a_request(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # As with a Redis that is down at init_app: the app starts, and its
    # writes are dropped, counted and logged until the sentinels are back.
    app: Flask = make_app(redis_url=f"redis+sentinel://127.0.0.1:{free_port()}/m")

    @app.route("/")
    @mark("home", 1)
    def home() -> str:
        return "still here"

    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        response = app.test_client().get("/")
    with app.app_context():
        assert flush() is False
        stats = app.extensions["bitmapist"].stats()
    assert (response.status_code, response.text) == (200, "still here")
    assert (stats.queued, stats.written, stats.dropped) == (1, 0, 1)
    assert (stats.last_error or "").startswith("No master found for 'm'")
    assert len(caplog.messages) == 1


def test_a_background_writer_keeps_marks_until_the_sentinel_is_back(
    make_app: AppFactory, start_sentinel: StartSentinel
) -> None:
    sentinel = start_sentinel()
    sentinel.stop()
    app = make_app(redis_url=sentinel.url, write_mode="background")
    with app.app_context():
        mark_event("song:played", 6, now=NOW)
        assert flush(timeout=0.5) is False
        sentinel.start()
        assert flush(timeout=20) is True
        stats: Any = app.extensions["bitmapist"].stats()
    assert (stats.written, stats.retried, stats.dropped) == (1, 1, 0)
    assert day_bit_on_master(sentinel.master_port, 6) == 1


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def failover(watcher: redis.Redis) -> bool:
    """Ask the sentinel for a failover; False while it finds no replica to
    promote yet (it learns their state from INFO, once a second or so)."""
    try:
        watcher.execute_command("SENTINEL FAILOVER", "mymaster")
    except redis.ResponseError as error:
        if str(error).startswith("NOGOODSLAVE"):
            return False
        raise
    return True


def test_writes_follow_the_master_through_a_failover(
    make_app: AppFactory, start_sentinel: StartSentinel
) -> None:
    sentinel = start_sentinel(replica=True)
    watcher = redis.Redis(port=sentinel.port, socket_timeout=5)
    try:
        # The sentinel learns of replicas from the master's INFO, just after
        # it starts.
        wait_for(
            lambda: bool(watcher.sentinel_slaves("mymaster")),
            "the sentinel to find the replica",
        )
        [replica] = watcher.sentinel_slaves("mymaster")
        app = make_app(redis_url=sentinel.url, write_mode="background")
        with app.app_context():
            mark_event("song:played", 1, now=NOW)
            assert flush(timeout=10) is True
            wait_for(lambda: failover(watcher), "a replica the sentinel can promote")
            # The end of the failover: SENTINEL MASTERS, which redis-py asks,
            # names the new master from then on.
            wait_for(
                lambda: watcher.sentinel_master("mymaster")["port"] == replica["port"],
                "the failover",
            )
            # Until the old master is a replica of the new one, it still takes
            # writes, lost in its resync (Redis replicates asynchronously).
            # The sentinel demotes it at its next INFO of it, some 10 s on:
            # demote it now. The sentinel would also drop the clients'
            # connections; here the app's connection to the old master stays,
            # and the client must leave it on its own.
            old_master = master_client(sentinel.master_port)
            try:
                old_master.replicaof("127.0.0.1", replica["port"])
            finally:
                old_master.close()
            # The write is refused there, READONLY wrapped in the script's
            # error: the connection is dropped, and the background writer
            # retries on a new one, to the master the sentinels name now.
            mark_event("song:played", 2, now=NOW)
            assert flush(timeout=20) is True, app.extensions["bitmapist"].stats()
            assert len(get_event_data("song:played", "days", now=NOW)) == 2
        new_master = master_client(replica["port"])
        try:
            assert new_master.info("replication")["role"] == "master"
            assert [new_master.getbit(DAY, user) for user in range(4)] == [0, 1, 1, 0]
        finally:
            new_master.close()
    finally:
        watcher.close()

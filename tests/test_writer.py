"""The write path: sync and background writers, failures, drops, fork and exit."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from flask_bitmapist import DayEvents, flush, mark, mark_event
from flask_bitmapist.testing import RedisProcess, free_port
from flask_bitmapist.writer import Mark

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
DAY_KEY = "trackist_played_2026-3-14"


def bits(client: redis.Redis, key: str, ids: range) -> list[int]:
    pipeline = client.pipeline()
    for user_id in ids:
        pipeline.getbit(key, user_id)
    return [
        user_id for user_id, bit in zip(ids, pipeline.execute(), strict=True) if bit
    ]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hung_redis() -> Iterator[int]:
    """A port that accepts connections and never answers, like a hung server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def test_sync_writer_counts_what_it_wrote(app: Flask, client: redis.Redis) -> None:
    with app.app_context():
        mark_event("played", 1, now=NOW)
        mark_event("played", 2, now=NOW)
        stats = app.extensions["bitmapist"].stats()
    assert (stats.mode, stats.queued, stats.written, stats.dropped) == ("sync", 2, 2, 0)
    assert bits(client, DAY_KEY, range(4)) == [1, 2]


def test_sync_writer_logs_a_dead_redis_and_never_raises(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}")

    @app.route("/")
    @mark("home", 1)
    def home() -> str:
        return "still here"

    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        response = app.test_client().get("/")
        with app.app_context():
            mark_event("played", 1, now=NOW)
            stats = app.extensions["bitmapist"].stats()
    assert (response.status_code, response.text) == (200, "still here")
    assert (stats.queued, stats.written, stats.dropped) == (2, 0, 2)
    assert "Connection refused" in (stats.last_error or "")
    assert stats.last_error_at is not None
    assert "Could not write mark 'home'" in caplog.text


def test_sync_writer_raises_when_asked_to(make_app: Any) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}", raise_errors=True)
    with app.app_context(), pytest.raises(redis.ConnectionError):
        mark_event("played", 1, now=NOW)


def test_a_hung_redis_times_out_instead_of_hanging(
    make_app: Any, hung_redis: int
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{hung_redis}", socket_timeout=0.1)
    with app.app_context():
        mark_event("played", 1, now=NOW)
        stats = app.extensions["bitmapist"].stats()
    assert stats.dropped == 1
    assert "Timeout" in (stats.last_error or "")


def test_background_writer_writes_on_flush(make_app: Any, client: redis.Redis) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    with app.app_context():
        for user_id in range(10):
            mark_event("played", user_id, now=NOW)
        assert app.extensions["bitmapist"].stats().queued == 10
        assert flush(timeout=10) is True
        stats = app.extensions["bitmapist"].stats()
    assert (stats.mode, stats.queued, stats.written, stats.pending) == (
        "background",
        10,
        10,
        0,
    )
    assert bits(client, DAY_KEY, range(12)) == list(range(10))


def test_background_writer_takes_the_time_at_mark_time(make_app: Any) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    with app.app_context():
        before = datetime.now(timezone.utc)
        mark_event("played", 1)
        after = datetime.now(timezone.utc)
        queued = app.extensions["bitmapist"].state().writer._queue[0]
        flush(timeout=10)
    assert before <= queued.when <= after


def test_background_writer_sends_a_full_batch_in_one_round_trip(
    make_app: Any, client: redis.Redis, round_trips: Any
) -> None:
    app = make_app(write_mode="background", flush_interval=30, flush_at=200)
    with app.app_context():
        app.extensions["bitmapist"].redis.ping()
        round_trips.count = 0
        for user_id in range(200):
            mark_event("played", user_id, now=NOW)
        assert flush(timeout=10)
    assert round_trips.count == 1
    assert len(bits(client, DAY_KEY, range(201))) == 200


def test_background_writer_writes_every_interval_without_flush(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=0.05, flush_at=10_000)
    with app.app_context():
        mark_event("played", 5, now=NOW)
    deadline = time.monotonic() + 10
    while not client.getbit(DAY_KEY, 5) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.getbit(DAY_KEY, 5) == 1


def test_flush_outside_an_app_flushes_every_writer(
    make_app: Any, client: redis.Redis, other_redis_url: str
) -> None:
    first = make_app(name="first", write_mode="background", flush_interval=30)
    second = make_app(
        name="second",
        write_mode="background",
        flush_interval=30,
        redis_url=other_redis_url,
    )
    for app, user_id in ((first, 1), (second, 2)):
        with app.app_context():
            mark_event("played", user_id, now=NOW)
    assert flush(timeout=10) is True
    assert client.getbit(DAY_KEY, 1) == 1
    assert redis.Redis.from_url(other_redis_url).getbit(DAY_KEY, 2) == 1


def test_flush_times_out_while_redis_is_down_and_succeeds_after(
    make_app: Any, private_redis: RedisProcess
) -> None:
    app = make_app(write_mode="background", redis_url=private_redis.url)
    private_redis.kill()
    with app.app_context():
        mark_event("played", 1, now=NOW)
        assert flush(timeout=0.3) is False
        down = app.extensions["bitmapist"].stats()
        private_redis.start()
        assert flush(timeout=30) is True
        up = app.extensions["bitmapist"].stats()
    assert (down.pending, up.pending, up.written) == (1, 0, 1)
    assert down.retried >= 1
    assert "Connection refused" in (down.last_error or "")
    assert redis.Redis(port=private_redis.port).getbit(DAY_KEY, 1) == 1


def test_a_batch_that_cannot_be_written_is_dropped_and_the_writer_lives_on(
    make_app: Any, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    writer = app.extensions["bitmapist"].state(app).writer
    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        writer.submit(Mark("played", 1, None, False, False))  # type: ignore[arg-type]
        assert writer.flush(timeout=10) is False
    with app.app_context():
        mark_event("played", 3, now=NOW)
        assert flush(timeout=10) is True
        stats = app.extensions["bitmapist"].stats()
    assert (stats.queued, stats.written, stats.dropped, stats.pending) == (2, 1, 1, 0)
    assert "Dropped 1 marks that could not be written" in caplog.text
    assert bits(client, DAY_KEY, range(5)) == [3]


def test_a_batch_redis_refuses_is_dropped_not_retried_forever(
    make_app: Any, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    client.lpush(DAY_KEY, "not a bitmap")
    app = make_app(write_mode="background", flush_interval=30)
    with app.app_context(), caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        mark_event("played", 1, now=NOW)
        assert flush(timeout=10) is False
        mark_event("other", 2, now=NOW)
        assert flush(timeout=10) is True
        stats = app.extensions["bitmapist"].stats()
    assert (stats.queued, stats.written, stats.dropped, stats.retried) == (2, 1, 1, 0)
    assert "WRONGTYPE" in (stats.last_error or "")
    assert "Redis refused a batch of 1 marks" in caplog.text
    assert client.getbit("trackist_other_2026-3-14", 2) == 1


def test_sync_writer_logs_a_refused_write(make_app: Any, client: redis.Redis) -> None:
    client.lpush(DAY_KEY, "not a bitmap")
    app = make_app()
    with app.app_context():
        mark_event("played", 1, now=NOW)
        stats = app.extensions["bitmapist"].stats()
    assert (stats.written, stats.dropped) == (0, 1)
    assert "WRONGTYPE" in (stats.last_error or "")


def test_overfilled_queue_drops_exactly_the_counted_marks(
    make_app: Any, private_redis: RedisProcess
) -> None:
    app = make_app(
        write_mode="background",
        redis_url=private_redis.url,
        queue_size=50,
        flush_interval=0.05,
    )
    private_redis.kill()
    ids = range(1, 201)
    with app.app_context():
        for user_id in ids:
            mark_event("played", user_id, now=NOW)
        during = app.extensions["bitmapist"].stats()
        private_redis.start()
        assert flush(timeout=30) is True
        stats = app.extensions["bitmapist"].stats()
    assert during.dropped >= 150
    assert stats.dropped == during.dropped
    assert stats.queued + stats.dropped == len(ids)
    written = bits(redis.Redis(port=private_redis.port), DAY_KEY, ids)
    assert len(written) == stats.written == stats.queued
    assert len(ids) - len(written) == stats.dropped


def test_a_forked_child_gets_its_own_working_writer(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    with app.app_context():
        mark_event("played", 1, now=NOW)  # the parent's thread is running now
        flush(timeout=10)
    pid = os.fork()
    if pid == 0:
        try:
            with app.app_context():
                mark_event("played", 2, now=NOW)
                written = flush(timeout=10)
                stats = app.extensions["bitmapist"].stats()
            os._exit(0 if written and stats.written == 1 else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with app.app_context():
        mark_event("played", 3, now=NOW)
        assert flush(timeout=10)
    assert bits(client, DAY_KEY, range(5)) == [1, 2, 3]


def test_a_child_forked_before_any_mark_starts_its_writer(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    pid = os.fork()
    if pid == 0:
        try:
            with app.app_context():
                mark_event("played", 4, now=NOW)
                os._exit(0 if flush(timeout=10) else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.getbit(DAY_KEY, 4) == 1


def test_queued_marks_are_written_at_interpreter_exit(
    redis_url: str, client: redis.Redis
) -> None:
    script = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from flask import Flask
        from flask_bitmapist import FlaskBitmapist, mark_event

        app = Flask("exiting")
        app.config.update(
            BITMAPIST_REDIS_URL={redis_url!r},
            BITMAPIST_WRITE_MODE="background",
            BITMAPIST_FLUSH_INTERVAL=60,
        )
        FlaskBitmapist(app)
        with app.app_context():
            for user_id in range(100):
                mark_event("played", user_id, now=datetime(2026, 3, 14, tzinfo=timezone.utc))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert bits(client, DAY_KEY, range(101)) == list(range(100))


def test_marks_from_many_threads_all_arrive(make_app: Any, client: redis.Redis) -> None:
    app = make_app(write_mode="background", flush_interval=0.01, flush_at=50)

    def worker(offset: int) -> None:
        with app.app_context():
            for user_id in range(offset, offset + 500):
                mark_event("played", user_id, now=NOW)

    threads = [threading.Thread(target=worker, args=(n * 500,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        assert flush(timeout=30)
        assert app.extensions["bitmapist"].stats().written == 2000
    assert client.bitcount(DAY_KEY) == 2000
    assert DayEvents("played", 2026, 3, 14, system=client).get_count() == 2000  # type: ignore[arg-type]

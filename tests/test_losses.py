"""No mark is lost silently: every loss is counted, logged without flooding
(one line per episode, a reminder at most once a minute, one when it ends), and
reported by ``flush``; the time that exit waits is ``BITMAPIST_EXIT_TIMEOUT``.

The log lines' clock is injected, so the tests move time instead of waiting.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from flask import Flask
from processes import wait_until

from flask_bitmapist import ConfigError, flush, mark_event
from flask_bitmapist.config import Settings
from flask_bitmapist.store.episodes import Episode, Tally
from flask_bitmapist.store.writer import BackgroundWriter, Mark, SyncWriter
from flask_bitmapist.testing import RedisProcess, free_port

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
DAY_KEY = "trackist_played_2026-3-14"
WRITER_THREAD = "flask-bitmapist-writer"


class Clock:
    """The seconds a test says it is."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def marks(ids: range) -> list[Mark]:
    return [Mark("played", user_id, NOW, False, False) for user_id in ids]


def set_bits(server: RedisProcess, ids: range) -> list[int]:
    client = redis.Redis(port=server.port)
    return [user_id for user_id in ids if client.getbit(DAY_KEY, user_id)]


def wait_for_attempts(writer: BackgroundWriter, count: int) -> None:
    """Return after the writer thread failed ``count`` more attempts. With
    ``count`` 2, every line of the first one is logged (the thread logs
    before it tries again)."""
    for _ in range(count):
        before = writer.stats().last_error_at

        def attempted(before: datetime | None = before) -> bool:
            return writer.stats().last_error_at != before

        wait_until(attempted, "a failed attempt")


def lines(
    caplog: pytest.LogCaptureFixture, pattern: str
) -> list[tuple[str | None, str]]:
    """The thread and message of each flask_bitmapist record matching ``pattern``."""
    return [
        (record.threadName, record.getMessage())
        for record in caplog.records
        if record.name == "flask_bitmapist" and re.match(pattern, record.getMessage())
    ]


def test_an_episode_tallies_its_start_its_reminders_and_its_end() -> None:
    clock = Clock()
    episode = Episode(remind_every=60, clock=clock)
    assert episode.reminder() is None
    assert episode.end() is None
    assert episode.add(3) is True
    assert episode.add(2) is False
    clock.now = 59.9
    assert episode.reminder() is None
    clock.now = 60
    assert episode.reminder() == Tally(recent=2, total=5, seconds=60)
    assert episode.reminder() is None
    episode.add(1)
    clock.now = 119
    assert episode.reminder() is None
    clock.now = 200
    assert episode.reminder() == Tally(recent=1, total=6, seconds=200)
    clock.now = 500
    # Nothing failed since the last line: no reminder, however long ago it was.
    assert episode.reminder() is None
    episode.add(4)
    assert episode.end() == Tally(recent=4, total=10, seconds=500)
    assert episode.end() is None
    clock.now = 600
    assert episode.add(1) is True
    clock.now = 601
    assert episode.end() == Tally(recent=0, total=1, seconds=1)


def test_sync_writer_logs_an_outage_once_a_minute_at_most_and_its_end(
    private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    writer = SyncWriter(
        redis.Redis(port=private_redis.port, socket_timeout=1), Settings(), clock=clock
    )
    private_redis.kill()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        accepted = [len(writer.submit_many(marks(range(1, 2))))]
        error = writer.stats().last_error
        accepted.append(len(writer.submit_many(marks(range(2, 4)))))
        clock.now = 59
        accepted.append(len(writer.submit_many(marks(range(4, 5)))))
        clock.now = 61
        accepted.append(len(writer.submit_many(marks(range(5, 6)))))
        assert writer.flush() is False
        private_redis.start()
        accepted.append(len(writer.submit_many(marks(range(6, 8)))))
        accepted.append(len(writer.submit_many(marks(range(8, 9)))))
    assert accepted == [0, 0, 0, 0, 2, 1]
    assert caplog.messages == [
        "Could not write mark 'played', dropped 1 (while Redis fails, marks are "
        f"dropped and a reminder is logged at most once a minute): {error}",
        "Redis still failing after 61.0 s: 4 marks dropped since the last line, "
        f"5 in all: {error}",
        "Redis recovered after 61.0 s: 5 marks were dropped while it failed.",
    ]
    stats = writer.stats()
    assert (stats.queued, stats.written, stats.dropped) == (8, 3, 5)
    assert writer.flush() is True
    assert set_bits(private_redis, range(10)) == [6, 7, 8]


def outage_attempts(
    logged: list[tuple[str | None, str]], error: str, recovered_at: int
) -> tuple[int, int]:
    """Check that a 2-mark batch's outage logged exactly three lines from the
    writer thread: the first failure, a reminder at 60 s, and its recovery at
    ``recovered_at`` s. Return the failed attempts the reminder counts, and
    those the recovery counts (how many happen depends on real time)."""
    assert [thread for thread, _ in logged] == [WRITER_THREAD] * 3
    first, reminder_line, recovered_line = (message for _, message in logged)
    assert first == (
        "Could not write 2 marks, retrying until Redis takes them (a reminder is "
        f"logged at most once a minute): {error}"
    )
    reminder = re.fullmatch(
        r"Redis still failing after 60\.0 s: (\d+) attempts since the last line, "
        rf"2 marks waiting: {re.escape(error)}",
        reminder_line,
    )
    recovered = re.fullmatch(
        rf"Redis recovered after {recovered_at}\.0 s \((\d+) failed attempts\)\.",
        recovered_line,
    )
    assert reminder is not None and recovered is not None
    return int(reminder[1]), int(recovered[1])


def test_background_writer_logs_an_outage_once_a_minute_at_most_and_its_end(
    private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    writer = BackgroundWriter(
        redis.Redis(port=private_redis.port, socket_timeout=1),
        Settings(flush_at=2, flush_interval=30, exit_timeout=0),
        clock=clock,
    )
    private_redis.kill()
    outage = r"Could not write|Redis (still failing|recovered)"
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        writer.submit_many(marks(range(1, 3)))
        wait_until(lambda: bool(lines(caplog, outage)), "the first failure")
        error = writer.stats().last_error
        clock.now = 59
        wait_for_attempts(writer, 2)
        assert len(lines(caplog, outage)) == 1
        clock.now = 60
        wait_until(lambda: len(lines(caplog, outage)) == 2, "a reminder")
        clock.now = 119
        wait_for_attempts(writer, 2)
        private_redis.start()
        assert writer.flush(timeout=30) is True
    reminded, failed = outage_attempts(lines(caplog, outage), str(error), 119)
    # The first attempt, those of the reminder, and the two at 119 s at least.
    assert failed >= 1 + reminded + 2
    stats = writer.stats()
    assert (stats.queued, stats.written, stats.retried, stats.pending) == (2, 2, 2, 0)


def test_background_writer_retries_a_batch_while_redis_is_out_of_memory(
    private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.Redis(port=private_redis.port)
    # Redis answers, but takes no write until memory frees up: an outage, not
    # a refusal, so the batch waits instead of being dropped.
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    clock = Clock()
    writer = BackgroundWriter(
        redis.Redis(port=private_redis.port, socket_timeout=1),
        Settings(flush_at=2, flush_interval=30, exit_timeout=0),
        clock=clock,
    )
    outage = r"Could not write|Redis (still failing|recovered)|Redis refused"
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        writer.submit_many(marks(range(1, 3)))
        wait_until(lambda: bool(lines(caplog, outage)), "the first failure")
        error = writer.stats().last_error
        clock.now = 60
        wait_until(lambda: len(lines(caplog, outage)) == 2, "a reminder")
        during = writer.stats()
        clock.now = 90
        admin.config_set("maxmemory", 0)
        assert writer.flush(timeout=30) is True
    assert error is not None and "maxmemory" in error
    assert (during.written, during.retried, during.dropped, during.pending) == (
        0,
        2,
        0,
        2,
    )
    reminded, failed = outage_attempts(lines(caplog, outage), error, 90)
    assert failed >= 1 + reminded
    stats = writer.stats()
    assert (stats.queued, stats.written, stats.retried, stats.dropped) == (2, 2, 2, 0)
    assert set_bits(private_redis, range(5)) == [1, 2]


def test_sync_requests_failing_on_a_read_only_replica_log_one_outage(
    make_app: Any, private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    app: Flask = make_app(redis_url=private_redis.url)

    @app.post("/play/<int:user_id>")
    def play(user_id: int) -> str:
        mark_event("played", user_id, now=NOW)
        return "ok"

    admin = redis.Redis(port=private_redis.port)
    # A replica, as the old primary is during a failover: it refuses every
    # write with READONLY until it is a primary again.
    admin.replicaof("127.0.0.1", free_port())
    web = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        statuses = [web.post(f"/play/{user_id}").status_code for user_id in range(5)]
        with app.app_context():
            down = app.extensions["bitmapist"].stats()
            assert flush() is False
        admin.replicaof("NO", "ONE")
        statuses.append(web.post("/play/5").status_code)
        with app.app_context():
            up = app.extensions["bitmapist"].stats()
            assert flush() is True
    assert statuses == [200] * 6
    assert (down.queued, down.written, down.dropped) == (5, 0, 5)
    assert (up.queued, up.written, up.dropped) == (6, 1, 5)
    assert down.last_error is not None and "read only replica" in down.last_error
    # Five failing requests, one line: the outage's, not one per request.
    assert caplog.messages[0] == (
        "Could not write mark 'played', dropped 1 (while Redis fails, marks are "
        f"dropped and a reminder is logged at most once a minute): {down.last_error}"
    )
    assert re.fullmatch(
        r"Redis recovered after \d+\.\d s: 5 marks were dropped while it failed\.",
        caplog.messages[1],
    )
    assert len(caplog.messages) == 2
    assert set_bits(private_redis, range(8)) == [5]


def test_retried_counts_each_mark_once_however_many_attempts(
    make_app: Any, private_redis: RedisProcess
) -> None:
    app = make_app(write_mode="background", redis_url=private_redis.url)
    writer = app.extensions["bitmapist"].state(app).writer
    private_redis.kill()
    with app.app_context():
        for user_id in range(3):
            mark_event("played", user_id, now=NOW)
        assert flush(timeout=0) is False
        wait_for_attempts(writer, 3)
        private_redis.start()
        assert flush(timeout=30) is True
        stats = app.extensions["bitmapist"].stats()
    assert (stats.written, stats.retried, stats.dropped) == (3, 3, 0)
    assert set_bits(private_redis, range(5)) == [0, 1, 2]


def test_a_full_queue_logs_its_start_a_reminder_and_its_end_not_every_drop(
    private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    writer = BackgroundWriter(
        redis.Redis(port=private_redis.port, socket_timeout=1),
        Settings(queue_size=4, flush_at=4, flush_interval=30, exit_timeout=0),
        clock=clock,
    )
    private_redis.kill()
    queue = r"Dropped|Still dropping|The write queue"
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        # The thread takes these four and retries them while Redis is down.
        assert len(writer.submit_many(marks(range(0, 4)))) == 4
        wait_until(lambda: bool(lines(caplog, "Could not write")), "the first failure")
        accepted = [
            len(writer.submit_many(marks(range(4, 8)))),  # fills the queue
            len(writer.submit_many(marks(range(8, 11)))),
            len(writer.submit_many(marks(range(11, 13)))),
        ]
        assert len(lines(caplog, queue)) == 1
        clock.now = 61
        wait_until(lambda: len(lines(caplog, queue)) == 2, "a reminder")
        accepted.append(len(writer.submit_many(marks(range(13, 14)))))
        private_redis.start()
        # Taking the queued four, the thread finds the queue full: not the end.
        assert writer.flush(timeout=30) is False
        assert len(lines(caplog, queue)) == 2
        accepted.append(len(writer.submit_many(marks(range(14, 15)))))
        assert writer.flush(timeout=30) is True
    assert accepted == [4, 0, 0, 0, 1]
    assert lines(caplog, queue) == [
        (
            "MainThread",
            "Dropped 3 marks: the write queue is full (BITMAPIST_QUEUE_SIZE 4). "
            "New marks are dropped until it has room; a reminder is logged at "
            "most once a minute.",
        ),
        (
            WRITER_THREAD,
            "Still dropping marks, the write queue is full: 2 dropped since the "
            "last line, 5 in 61.0 s.",
        ),
        (
            WRITER_THREAD,
            "The write queue has room again: 6 marks were dropped in 61.0 s.",
        ),
    ]
    stats = writer.stats()
    assert (stats.queued, stats.written, stats.dropped, stats.retried) == (9, 9, 6, 4)
    assert set_bits(private_redis, range(16)) == [0, 1, 2, 3, 4, 5, 6, 7, 14]


def test_flush_is_false_once_after_a_failed_sync_write(make_app: Any) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}")
    extension = app.extensions["bitmapist"]
    with app.app_context():
        assert flush() is True
        mark_event("played", 1, now=NOW)
        assert flush() is False
        assert flush() is True
        mark_event("played", 2, now=NOW)
        assert extension.flush() is False
        assert extension.flush() is True


def test_flush_is_false_once_after_a_full_queue_dropped_marks(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", queue_size=2, flush_at=2, flush_interval=30)
    writer = app.extensions["bitmapist"].state(app).writer
    # One submission each, so the writer cannot take a batch halfway through.
    assert len(writer.submit_many(marks(range(0, 3)))) == 2
    with app.app_context():
        assert flush(timeout=10) is False
        assert flush(timeout=10) is True
    assert len(writer.submit_many(marks(range(3, 6)))) == 2
    # Outside an app context, flush covers every background writer.
    assert flush(timeout=10) is False
    assert flush(timeout=10) is True
    assert writer.stats().dropped == 2
    assert [user for user in range(7) if client.getbit(DAY_KEY, user)] == [0, 1, 3, 4]


def test_exit_with_redis_down_waits_exit_timeout_and_says_so() -> None:
    script = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from flask import Flask
        from flask_bitmapist import FlaskBitmapist, mark_event

        app = Flask("exiting")
        app.config.update(
            BITMAPIST_REDIS_URL="redis://127.0.0.1:{free_port()}",
            BITMAPIST_WRITE_MODE="background",
            BITMAPIST_FLUSH_INTERVAL=60,
            BITMAPIST_EXIT_TIMEOUT=0.5,
        )
        FlaskBitmapist(app)
        with app.app_context():
            for user_id in range(12):
                mark_event("played", user_id, now=datetime(2026, 3, 14, tzinfo=timezone.utc))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert (
        "12 marks were not written in the 0.5 s of BITMAPIST_EXIT_TIMEOUT before exit."
        in done.stderr.splitlines()
    )


def test_a_queue_smaller_than_a_batch_is_refused_at_init_app(make_app: Any) -> None:
    with pytest.raises(ConfigError) as error:
        make_app(write_mode="background", queue_size=10, flush_at=20)
    assert str(error.value) == (
        "BITMAPIST_QUEUE_SIZE (10) must be at least BITMAPIST_FLUSH_AT (20): a "
        "queue smaller than a batch drops marks while Redis is healthy."
    )

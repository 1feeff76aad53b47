"""The background writer's lock-free hand-off, and the grouping of a batch's
marks into keys: exact bits in Redis, exact counters, whatever the order of
marks and the threads that queue them."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from keys import day_key, month_key, users, week_key
from processes import wait_until

from flask_bitmapist import flush, mark_event
from flask_bitmapist.store.writer import Mark, write_marks

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
NEXT_DAY = NOW + timedelta(days=1)


def test_a_full_batch_wakes_the_writer_without_flush_or_interval(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=3600, flush_at=10)
    with app.app_context():
        # The first mark starts the thread; once it is written, the thread
        # goes back to waiting for the next 10.
        mark_event("played", 0, now=NOW)
        assert flush(timeout=10)
        time.sleep(0.2)
        for user_id in range(1, 11):
            mark_event("played", user_id, now=NOW)
    wait_until(
        lambda: client.bitcount(day_key("played", NOW)) == 11,
        "the writer to wake at flush_at",
    )
    assert users(client, day_key("played", NOW)) == list(range(11))


@pytest.mark.usefixtures("fast_switching")
def test_flushes_racing_with_threads_that_mark_each_see_their_own_marks(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=0.01, flush_at=7)
    failures: list[str] = []

    def worker(first: int) -> None:
        with app.app_context():
            for user_id in range(first, first + 300):
                mark_event("played", user_id, now=NOW)
                if user_id % 50 == 0:
                    # Everything this thread queued so far is written.
                    assert flush(timeout=30)
                    if not client.getbit(day_key("played", NOW), user_id):
                        failures.append(f"user {user_id} missing after flush")

    threads = [threading.Thread(target=worker, args=(n * 300,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        assert flush(timeout=30)
        stats = app.extensions["bitmapist"].stats()
    assert failures == []
    assert (stats.queued, stats.written, stats.dropped, stats.pending) == (
        1800,
        1800,
        0,
        0,
    )
    assert client.bitcount(day_key("played", NOW)) == 1800


def test_stats_count_queued_marks_before_the_writer_takes_them(
    make_app: Any,
) -> None:
    app = make_app(write_mode="background", flush_interval=3600, flush_at=1000)
    with app.app_context():
        for user_id in range(25):
            mark_event("played", user_id, now=NOW)
        waiting = app.extensions["bitmapist"].stats()
        assert flush(timeout=30)
        done = app.extensions["bitmapist"].stats()
    assert (waiting.queued, waiting.written, waiting.pending) == (25, 0, 25)
    assert (done.queued, done.written, done.pending) == (25, 25, 0)


def test_a_batch_of_many_days_and_events_writes_exactly_their_bits(
    client: redis.Redis,
) -> None:
    marks = [
        Mark(event, user_id, when, False, False)
        for user_id in range(0, 3000, 7)
        for event, when in (("played", NOW), ("paid", NEXT_DAY), ("played", NEXT_DAY))
        if (user_id + len(event) + when.day) % 3
    ]
    write_marks(client, marks)
    for event in ("played", "paid"):
        for when in (NOW, NEXT_DAY):
            expected = sorted(
                mark.user_id
                for mark in marks
                if mark.event_name == event and mark.when == when
            )
            assert users(client, day_key(event, when)) == expected
        in_month = sorted({mark.user_id for mark in marks if mark.event_name == event})
        assert users(client, month_key(event, NOW)) == in_month
        assert users(client, week_key(event, NOW)) == in_month


def test_the_last_mark_of_a_user_wins_across_the_groups_of_a_batch(
    client: redis.Redis,
) -> None:
    # The month and week keys are shared by the marks of both days: each
    # bit ends as the batch's last mark of that user left it.
    write_marks(
        client,
        [
            Mark("played", 1, NOW, False, False, 1),
            Mark("played", 1, NEXT_DAY, False, False, 0),
            Mark("played", 1, NOW, False, False, 1),
            Mark("played", 2, NOW, False, False, 1),
            Mark("played", 2, NEXT_DAY, False, False, 1),
            Mark("played", 2, NOW, False, False, 0),
        ],
    )
    assert users(client, month_key("played", NOW)) == [1]
    assert users(client, week_key("played", NOW)) == [1]
    assert users(client, day_key("played", NOW)) == [1]
    assert users(client, day_key("played", NEXT_DAY)) == [2]

"""event_marked is sent for every mark that went through (written in sync mode,
queued in background mode), from every source, per app."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis
from flask import Flask

from flask_bitmapist import mark, mark_event, unmark_event
from flask_bitmapist.store.writer import Mark
from flask_bitmapist.testing import RedisProcess
from flask_bitmapist.track.marking import submit_marks
from flask_bitmapist.track.signals import event_marked

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)


def record(app: Flask) -> list[tuple[Any, str, int, datetime]]:
    received: list[tuple[Any, str, int, datetime]] = []

    def receiver(
        sender: Flask, event_name: str, user_id: int, when: datetime, **extra: Any
    ) -> None:
        received.append((sender, event_name, user_id, when))

    event_marked.connect(receiver, app, weak=False)
    return received


def test_mark_event_and_the_decorator_send_event_marked(make_app: Any) -> None:
    app, other = make_app(name="a"), make_app(name="b")
    received, other_received = record(app), record(other)

    @mark("job:done", 8)
    def job() -> None:
        pass

    with app.app_context():
        mark_event("played", 3, now=NOW)
        unmark_event("played", 3, now=NOW)
        mark_event("played", None, now=NOW)
        job()
    assert received[0] == (app, "played", 3, NOW)
    assert [(event, user) for _, event, user, _ in received] == [
        ("played", 3),
        ("job:done", 8),
    ]
    assert other_received == []


def test_rules_send_event_marked(make_app: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'rules:\n  - event: "home:viewed"\n    endpoint: index\n    user: query:uid\n'
    )
    app = make_app(rules=str(rules))
    app.add_url_rule("/", "index", lambda: "home")
    received = record(app)
    app.test_client().get("/?uid=6")
    assert [(sender, event, user) for sender, event, user, _ in received] == [
        (app, "home:viewed", 6)
    ]


def test_marks_dropped_by_a_full_queue_are_not_announced(make_app: Any) -> None:
    app = make_app(write_mode="background", queue_size=2, flush_at=2, flush_interval=30)
    received = record(app)
    marks = [Mark("played", user_id, NOW, False, False) for user_id in range(5)]
    # One submission, so the writer cannot take a batch halfway through.
    submit_marks(app, app.extensions["bitmapist"].state(app), marks)
    stats = app.extensions["bitmapist"].state(app).writer.stats()
    with app.app_context():
        assert app.extensions["bitmapist"].flush(timeout=10) is False
    assert [user for _, _, user, _ in received] == [0, 1]
    assert (stats.queued, stats.dropped) == (2, 3)


def test_a_failed_sync_write_is_not_announced(
    make_app: Any, private_redis: RedisProcess
) -> None:
    app = make_app(redis_url=private_redis.url)
    received = record(app)
    with app.app_context():
        mark_event("played", 1, now=NOW)
        private_redis.kill()
        mark_event("played", 2, now=NOW)
        stats = app.extensions["bitmapist"].stats()
    assert [user for _, _, user, _ in received] == [1]
    assert (stats.queued, stats.written, stats.dropped) == (2, 1, 1)


def test_a_refused_sync_write_is_not_announced(
    make_app: Any, client: redis.Redis
) -> None:
    client.lpush("trackist_played_2026-3-14", "not a bitmap")
    app = make_app()
    received = record(app)
    with app.app_context():
        mark_event("played", 1, now=NOW)
        mark_event("other", 2, now=NOW)
    assert [(event, user) for _, event, user, _ in received] == [("other", 2)]


def test_background_mode_announces_marks_when_queued(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    received = record(app)
    with app.app_context():
        mark_event("played", 4, now=NOW)
        # Sent on the request thread, before the writer wrote the mark.
        assert [user for _, _, user, _ in received] == [4]
        assert client.getbit("trackist_played_2026-3-14", 4) == 0
        assert app.extensions["bitmapist"].flush(timeout=10) is True
    assert client.getbit("trackist_played_2026-3-14", 4) == 1

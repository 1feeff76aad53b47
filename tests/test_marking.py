"""Every mark path writes exactly the keys and bits that ``bitmapist.mark_event`` writes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import bitmapist
import pytest
import redis
from flask import Flask, request

from flask_bitmapist import (
    DayEvents,
    HourEvents,
    MonthEvents,
    UniqueEvents,
    WeekEvents,
    mark,
    mark_event,
    unmark_event,
)

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)


def snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    return {key: client.get(key) for key in client.keys("*")}  # type: ignore[misc]


@pytest.fixture
def reference(other_redis_url: str) -> redis.Redis:
    """A second db that plain bitmapist.mark_event writes to, for comparison."""
    return redis.Redis.from_url(other_redis_url)


@pytest.mark.parametrize(
    ("when", "hourly", "unique"),
    [
        (NOW, False, False),
        (NOW, True, False),
        (NOW, False, True),
        (NOW, True, True),
        (datetime(2020, 12, 31, 23, 30, tzinfo=timezone.utc), True, False),
        (datetime(2021, 1, 1, 0, 5, tzinfo=timezone.utc), True, False),
        (datetime(2024, 12, 31, 12, tzinfo=timezone.utc), False, False),
        (datetime(2027, 1, 3, 12, tzinfo=timezone.utc), False, False),
    ],
)
def test_mark_event_writes_the_keys_of_bitmapist(
    app: Flask,
    client: redis.Redis,
    reference: redis.Redis,
    when: datetime,
    hourly: bool,
    unique: bool,
) -> None:
    with app.app_context():
        for user_id in (0, 7, 1000):
            mark_event(
                "song:played",
                user_id,
                now=when,
                track_hourly=hourly,
                track_unique=unique,
            )
    for user_id in (0, 7, 1000):
        bitmapist.mark_event(
            "song:played",
            user_id,
            system=reference,  # type: ignore[arg-type]
            now=when,
            track_hourly=hourly,
            track_unique=unique,
        )
    assert snapshot(client) == snapshot(reference)
    assert len(snapshot(client)) == 3 + hourly + unique


def test_iso_week_53_and_the_turn_of_the_year(app: Flask, client: redis.Redis) -> None:
    with app.app_context():
        mark_event("e", 1, now=datetime(2021, 1, 1, 12))
        mark_event("e", 2, now=datetime(2024, 12, 31, 12))
    assert sorted(client.keys("*")) == sorted(
        [
            b"trackist_e_2021-1",
            b"trackist_e_W2020-53",
            b"trackist_e_2021-1-1",
            b"trackist_e_2024-12",
            b"trackist_e_W2025-1",
            b"trackist_e_2024-12-31",
        ]
    )
    assert list(WeekEvents("e", 2020, 53, system=client)) == [1]  # type: ignore[arg-type]
    assert list(WeekEvents("e", 2025, 1, system=client)) == [2]  # type: ignore[arg-type]


def test_naive_times_are_utc_and_aware_times_are_converted(
    app: Flask, client: redis.Redis
) -> None:
    plus_five = timezone(timedelta(hours=5))
    with app.app_context():
        mark_event("naive", 1, now=datetime(2026, 1, 1, 2, 0))
        mark_event("aware", 1, now=datetime(2026, 1, 1, 2, 0, tzinfo=plus_five))
    assert client.getbit("trackist_naive_2026-1-1", 1) == 1
    assert client.getbit("trackist_aware_2025-12-31", 1) == 1
    assert client.exists("trackist_aware_2026-1-1") == 0


def test_default_time_is_now_in_utc(app: Flask, client: redis.Redis) -> None:
    before = datetime.now(timezone.utc)
    with app.app_context():
        mark_event("now", 3)
    after = datetime.now(timezone.utc)
    days = {DayEvents.from_date("now", moment).redis_key for moment in (before, after)}
    assert any(client.getbit(key, 3) for key in days)


def test_string_ids_from_flask_login_are_converted(
    app: Flask, client: redis.Redis
) -> None:
    with app.app_context():
        mark_event("login", "42", now=NOW)
    assert list(DayEvents("login", 2026, 3, 14, system=client)) == [42]  # type: ignore[arg-type]


def test_anonymous_marks_nothing(app: Flask, client: redis.Redis) -> None:
    with app.app_context():
        mark_event("login", None, now=NOW)
    assert client.keys("*") == []


def test_config_turns_on_hourly_and_unique(make_app: Any, client: redis.Redis) -> None:
    app = make_app(track_hourly=True, track_unique=True)
    with app.app_context():
        mark_event("tracked", 5, now=NOW)
        mark_event("untracked", 5, now=NOW, track_hourly=False, track_unique=False)
    assert 5 in HourEvents("tracked", 2026, 3, 14, 15, system=client)  # type: ignore[arg-type]
    assert 5 in UniqueEvents("tracked", system=client)  # type: ignore[arg-type]
    assert client.exists(HourEvents("untracked", 2026, 3, 14, 15).redis_key) == 0
    assert client.exists(UniqueEvents("untracked").redis_key) == 0


def test_unmark_clears_the_same_bits(app: Flask, client: redis.Redis) -> None:
    with app.app_context():
        mark_event("liked", 4, now=NOW, track_hourly=True)
        mark_event("liked", 5, now=NOW, track_hourly=True)
        unmark_event("liked", 4, now=NOW, track_hourly=True)
    for events in (
        MonthEvents("liked", 2026, 3, system=client),  # type: ignore[arg-type]
        WeekEvents("liked", 2026, 11, system=client),  # type: ignore[arg-type]
        DayEvents("liked", 2026, 3, 14, system=client),  # type: ignore[arg-type]
        HourEvents("liked", 2026, 3, 14, 15, system=client),  # type: ignore[arg-type]
    ):
        assert list(events) == [5]


def test_a_mark_is_one_round_trip(
    app: Flask, client: redis.Redis, round_trips: Any
) -> None:
    with app.app_context():
        app.extensions["bitmapist"].redis.ping()
        round_trips.count = 0
        mark_event("cheap", 1, now=NOW, track_hourly=True, track_unique=True)
    assert round_trips.count == 1
    assert len(client.keys("*")) == 5


def test_outside_an_app_marks_go_to_bitmapist_default(
    default_system: redis.Redis,
) -> None:
    mark_event("script:ran", 11, now=NOW)
    unmark_event("script:ran", 12, now=NOW)
    assert list(MonthEvents("script:ran", 2026, 3)) == [11]


def test_outside_an_app_redis_errors_are_raised() -> None:
    bitmapist.SYSTEMS["default"] = redis.Redis(port=1, socket_connect_timeout=0.1)
    with pytest.raises(redis.ConnectionError):
        mark_event("lost", 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event_name": "two words", "uuid": 1}, "Event name must not contain whitespace"),
        ({"event_name": "ok", "uuid": -1}, "User id for event 'ok' must be from 0"),
        ({"event_name": "ok", "uuid": 1.5}, "User id for event 'ok' must be an int"),
        ({"event_name": "ok", "uuid": 1, "now": "2026-01-01"}, "now must be a datetime, got '2026-01-01'."),
    ],
)  # fmt: skip
def test_bad_input_raises_and_writes_nothing(
    app: Flask, client: redis.Redis, kwargs: dict[str, Any], message: str
) -> None:
    with app.app_context():
        for function in (mark_event, unmark_event):
            with pytest.raises(ValueError, match=message):
                function(**kwargs)
    assert client.keys("*") == []


def test_decorator_evaluates_a_callable_id_at_each_call(
    app: Flask, client: redis.Redis
) -> None:
    @app.route("/reports/<int:user_id>")
    @mark("report:downloaded", lambda: request.view_args["user_id"])  # type: ignore[index]
    def report(user_id: int) -> str:
        """Send a report."""
        return f"report {user_id}"

    web = app.test_client()
    assert web.get("/reports/3").text == "report 3"
    assert web.get("/reports/8").text == "report 8"
    assert report.__name__ == "report"
    assert report.__doc__ == "Send a report."
    assert app.view_functions["report"] is report
    assert sorted(MonthEvents.from_date("report:downloaded", system=client)) == [3, 8]  # type: ignore[arg-type]


def test_decorator_with_a_fixed_id_and_options(app: Flask, client: redis.Redis) -> None:
    @mark("job:done", 99, track_unique=True)
    def job() -> int:
        return 1

    with app.app_context():
        assert job() == 1
    assert 99 in UniqueEvents("job:done", system=client)  # type: ignore[arg-type]


def test_decorator_marks_nothing_when_the_function_raises(
    app: Flask, client: redis.Redis
) -> None:
    @mark("failed", 1)
    def explode() -> None:
        raise KeyError("boom")

    with app.app_context(), pytest.raises(KeyError):
        explode()
    assert client.keys("*") == []


def test_decorator_on_async_views(app: Flask, client: redis.Redis) -> None:
    @app.route("/async")
    @mark("async:viewed", 12)
    async def view() -> str:
        return "async"

    assert app.test_client().get("/async").text == "async"
    assert client.getbit(DayEvents.from_date("async:viewed").redis_key, 12) == 1


def test_decorator_rejects_a_bad_event_name_at_import_time() -> None:
    with pytest.raises(ValueError, match=r"Event name must not be empty\."):
        mark("", 1)


def test_decorator_logs_a_bad_id_and_keeps_the_response(
    app: Flask, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    @app.route("/")
    @mark("home", lambda: "not-a-number")
    def home() -> str:
        return "home"

    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        response = app.test_client().get("/")
    assert (response.status_code, response.text) == (200, "home")
    assert "@mark('home') marked nothing" in caplog.text
    assert "got 'not-a-number'" in caplog.text
    assert client.keys("*") == []


def test_decorator_raises_a_bad_id_when_asked_to(make_app: Any) -> None:
    app = make_app(raise_errors=True)

    @mark("home", lambda: -5)
    def home() -> str:
        return "home"

    with app.app_context(), pytest.raises(ValueError, match="got -5"):
        home()


def test_decorator_marks_anonymous_users_as_nothing(
    app: Flask, client: redis.Redis
) -> None:
    @mark("home", lambda: None)
    def home() -> str:
        return "home"

    with app.app_context():
        assert home() == "home"
    assert client.keys("*") == []


BIG_ID_ERROR = (
    "User id for event 'song:played' must be from 0 to 16777215 "
    "(BITMAPIST_MAX_USER_ID), got {}."
)


def test_an_id_above_the_maximum_is_refused_before_redis_allocates_anything(
    app: Flask, client: redis.Redis, default_system: redis.Redis
) -> None:
    # 2**32 - 1 would make Redis allocate three 512 MiB keys.
    memory_before = client.info("memory")["used_memory"]
    with app.app_context():
        with pytest.raises(ValueError) as error:
            mark_event("song:played", 2**32 - 1)
        assert str(error.value) == BIG_ID_ERROR.format(4294967295)
        with pytest.raises(ValueError, match="got 16777216"):
            mark_event("song:played", 2**24)
    # Outside an app the default maximum applies as well.
    with pytest.raises(ValueError, match=r"got '16777216'\.$"):
        mark_event("song:played", "16777216")
    assert client.dbsize() == 0
    assert client.info("memory")["used_memory"] < memory_before + 1024 * 1024


def test_the_largest_allowed_id_costs_at_most_2_mib_a_key(
    app: Flask, client: redis.Redis
) -> None:
    with app.app_context():
        mark_event("song:played", 2**24 - 1, now=NOW)
    key = DayEvents.from_date("song:played", NOW).redis_key
    assert client.getbit(key, 2**24 - 1) == 1
    assert client.strlen(key) == 2 * 1024 * 1024


def test_a_raised_maximum_accepts_larger_ids(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(max_user_id=2**25)
    with app.app_context():
        mark_event("song:played", 2**25, now=NOW)
        with pytest.raises(
            ValueError, match=r"from 0 to 33554432 \(BITMAPIST_MAX_USER_ID\)"
        ):
            mark_event("song:played", 2**25 + 1, now=NOW)
    assert client.getbit(DayEvents.from_date("song:played", NOW).redis_key, 2**25) == 1


def test_an_anonymous_request_cannot_mark_a_huge_id_through_a_view_arg(
    app: Flask, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    @app.route("/play/<int:user_id>")
    @mark("song:played", lambda: request.view_args["user_id"])  # type: ignore[index]
    def play(user_id: int) -> str:
        return "playing"

    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        response = app.test_client().get("/play/4294967295")
    assert (response.status_code, response.text) == (200, "playing")
    assert BIG_ID_ERROR.format(4294967295) in caplog.text
    assert client.dbsize() == 0

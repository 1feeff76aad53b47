"""Every mark path writes exactly the keys and bits that ``bitmapist.mark_event``
writes: spelled out in tests/keys.py and here, and compared with bitmapist's
own writes when it is installed (the tests marked ``bitmapist``). The tests of
what a mark or unmark means, read back through the queries, run on each of
conftest.STORES (``store_app``); those of bitmapist's keys and of marks that
never reach the store stay on ``app``."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from flask import Flask, request
from keys import bitmap, period_keys, users, week_key

from flask_bitmapist import (
    EventSet,
    get_event_data,
    list_event_names,
    mark,
    mark_event,
    unmark_event,
)
from flask_bitmapist.store.layout import BITMAPIST, EVER, Period
from flask_bitmapist.store.systems import registry

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)


def snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    return {key: client.get(key) for key in client.keys("*")}  # type: ignore[misc]


def users_in(app: Flask, event: str, period: Period) -> list[int]:
    """The users of ``event`` in ``period`` (any unit, hours and EVER
    included), read back from the app's store, whatever its layout."""
    store = app.extensions["bitmapist"].state(app).store
    return list(EventSet.of_period(event, period, store))


def users_on(
    app: Flask, event: str, time_group: str, when: datetime | None = None
) -> list[int]:
    """get_event_data's users of ``event`` in the period that holds ``when``."""
    with app.app_context():
        return list(get_event_data(event, time_group, now=when))


@pytest.fixture
def reference(other_redis_url: str) -> redis.Redis:
    """A second db that plain bitmapist.mark_event writes to, for comparison."""
    return redis.Redis.from_url(other_redis_url)


IDS = (0, 7, 1000)
# (when, hourly, unique, the suffixes of the keys bitmapist.mark_event writes)
MARK_CASES = [
    (NOW, False, False, ["2026-3", "W2026-11", "2026-3-14"]),
    (NOW, True, False, ["2026-3", "W2026-11", "2026-3-14", "2026-3-14-15"]),
    (NOW, False, True, ["2026-3", "W2026-11", "2026-3-14", "u"]),
    (NOW, True, True, ["2026-3", "W2026-11", "2026-3-14", "2026-3-14-15", "u"]),
    (datetime(2020, 12, 31, 23, 30, tzinfo=timezone.utc), True, False,
     ["2020-12", "W2020-53", "2020-12-31", "2020-12-31-23"]),
    (datetime(2021, 1, 1, 0, 5, tzinfo=timezone.utc), True, False,
     ["2021-1", "W2020-53", "2021-1-1", "2021-1-1-0"]),
    (datetime(2024, 12, 31, 12, tzinfo=timezone.utc), False, False,
     ["2024-12", "W2025-1", "2024-12-31"]),
    (datetime(2027, 1, 3, 12, tzinfo=timezone.utc), False, False,
     ["2027-1", "W2026-53", "2027-1-3"]),
]  # fmt: skip


def mark_ids(app: Flask, when: datetime, hourly: bool, unique: bool) -> None:
    with app.app_context():
        for user_id in IDS:
            mark_event(
                "song:played",
                user_id,
                now=when,
                track_hourly=hourly,
                track_unique=unique,
            )


def expected_snapshot(suffixes: list[str]) -> dict[bytes, bytes]:
    return {
        f"trackist_song:played_{suffix}".encode(): bitmap(IDS) for suffix in suffixes
    }


@pytest.mark.parametrize(("when", "hourly", "unique", "suffixes"), MARK_CASES)
def test_mark_event_writes_the_keys_and_bits_of_bitmapist(
    app: Flask,
    client: redis.Redis,
    when: datetime,
    hourly: bool,
    unique: bool,
    suffixes: list[str],
) -> None:
    mark_ids(app, when, hourly, unique)
    assert snapshot(client) == expected_snapshot(suffixes)
    assert [f"trackist_song:played_{suffix}" for suffix in suffixes] == period_keys(
        "song:played", when, hourly=hourly, unique=unique
    )


@pytest.mark.parametrize(("when", "hourly", "unique", "suffixes"), MARK_CASES)
def test_mark_event_is_read_back_by_the_queries(
    store_app: Flask,
    when: datetime,
    hourly: bool,
    unique: bool,
    suffixes: list[str],
) -> None:
    """The same marks on each of conftest.STORES: exactly the periods that
    bitmapist's keys name hold the users, read back through the queries."""
    mark_ids(store_app, when, hourly, unique)
    marked = set()
    for suffix in suffixes:
        parsed = BITMAPIST.parse(f"trackist_song:played_{suffix}")
        assert parsed is not None
        marked.add(parsed[1])
    periods = {Period.of(unit, when) for unit in ("hour", "day", "week", "month")}
    assert marked <= periods | {EVER}
    assert {
        period: users_in(store_app, "song:played", period)
        for period in periods | {EVER}
    } == {period: list(IDS) if period in marked else [] for period in periods | {EVER}}
    for time_group in ("days", "weeks", "months", "years"):
        assert users_on(store_app, "song:played", time_group, when) == list(IDS)
    with store_app.app_context():
        assert list_event_names() == ["song:played"]


@pytest.mark.bitmapist
@pytest.mark.parametrize(("when", "hourly", "unique", "suffixes"), MARK_CASES)
def test_mark_event_writes_what_bitmapist_mark_event_writes(
    app: Flask,
    client: redis.Redis,
    reference: redis.Redis,
    when: datetime,
    hourly: bool,
    unique: bool,
    suffixes: list[str],
) -> None:
    import bitmapist

    mark_ids(app, when, hourly, unique)
    for user_id in IDS:
        bitmapist.mark_event(
            "song:played",
            user_id,
            system=reference,  # type: ignore[arg-type]
            now=when,
            track_hourly=hourly,
            track_unique=unique,
        )
    assert snapshot(client) == snapshot(reference)
    # The spelled-out expectations of the test above are bitmapist's.
    assert snapshot(reference) == expected_snapshot(suffixes)


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
    assert users(client, "trackist_e_W2020-53") == [1]
    assert users(client, "trackist_e_W2025-1") == [2]
    assert week_key("e", datetime(2021, 1, 1)) == "trackist_e_W2020-53"


def test_naive_times_are_utc_and_aware_times_are_converted(store_app: Flask) -> None:
    app = store_app
    plus_five = timezone(timedelta(hours=5))
    with app.app_context():
        mark_event("naive", 1, now=datetime(2026, 1, 1, 2, 0))
        mark_event("aware", 1, now=datetime(2026, 1, 1, 2, 0, tzinfo=plus_five))
    new_year = datetime(2026, 1, 1, tzinfo=timezone.utc)
    eve = datetime(2025, 12, 31, tzinfo=timezone.utc)
    assert users_on(app, "naive", "day", new_year) == [1]
    assert users_on(app, "naive", "day", eve) == []
    assert users_on(app, "aware", "day", eve) == [1]
    assert users_on(app, "aware", "day", new_year) == []


def test_default_time_is_now_in_utc(store_app: Flask) -> None:
    app = store_app
    before = datetime.now(timezone.utc)
    with app.app_context():
        mark_event("now", 3)
    after = datetime.now(timezone.utc)
    found = [users_on(app, "now", "day", moment) for moment in (before, after)]
    assert [3] in found
    assert all(day in ([], [3]) for day in found)


def test_string_ids_from_flask_login_are_converted(store_app: Flask) -> None:
    with store_app.app_context():
        mark_event("login", "42", now=NOW)
    assert users_on(store_app, "login", "day", NOW) == [42]


def test_anonymous_marks_nothing(app: Flask, client: redis.Redis) -> None:
    with app.app_context():
        mark_event("login", None, now=NOW)
    assert client.keys("*") == []


def test_config_turns_on_hourly_and_unique(make_store_app: Any) -> None:
    app = make_store_app(track_hourly=True, track_unique=True)
    with app.app_context():
        mark_event("tracked", 13, now=NOW)
        mark_event("untracked", 13, now=NOW, track_hourly=False, track_unique=False)
    hour = Period.of("hour", NOW)
    assert users_in(app, "tracked", hour) == [13]
    assert users_in(app, "tracked", EVER) == [13]
    assert users_in(app, "untracked", hour) == []
    assert users_in(app, "untracked", EVER) == []
    assert users_on(app, "untracked", "day", NOW) == [13]


def test_unmark_clears_the_same_bits(store_app: Flask) -> None:
    app = store_app
    # 4 and 12: shards 0 and 1 of the sharded stores; shard 0 ends up empty.
    with app.app_context():
        mark_event("liked", 4, now=NOW, track_hourly=True)
        mark_event("liked", 12, now=NOW, track_hourly=True)
        unmark_event("liked", 4, now=NOW, track_hourly=True)
    for unit in ("hour", "day", "week", "month", "year"):
        assert users_in(app, "liked", Period.of(unit, NOW)) == [12], unit
    for time_group in ("days", "weeks", "months", "years"):
        assert users_on(app, "liked", time_group, NOW) == [12], time_group


def test_a_mark_is_one_round_trip(
    app: Flask, client: redis.Redis, round_trips: Any
) -> None:
    with app.app_context():
        app.extensions["bitmapist"].redis.ping()
        round_trips.count = 0
        mark_event("cheap", 1, now=NOW, track_hourly=True, track_unique=True)
    assert round_trips.count == 1
    assert len(client.keys("*")) == 5


def test_outside_an_app_marks_go_to_the_default_system(
    default_system: redis.Redis,
) -> None:
    mark_event("script:ran", 11, now=NOW)
    unmark_event("script:ran", 12, now=NOW)
    assert users(default_system, "trackist_script:ran_2026-3") == [11]


@pytest.mark.bitmapist
def test_outside_an_app_marks_go_to_bitmapists_default_system(
    default_system: redis.Redis,
) -> None:
    from bitmapist import MonthEvents

    mark_event("script:ran", 11, now=NOW)
    unmark_event("script:ran", 12, now=NOW)
    assert list(MonthEvents("script:ran", 2026, 3)) == [11]


def test_outside_an_app_redis_errors_are_raised() -> None:
    registry()["default"] = redis.Redis(port=1, socket_connect_timeout=0.1)
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


def test_decorator_evaluates_a_callable_id_at_each_call(store_app: Flask) -> None:
    app = store_app

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
    assert users_on(app, "report:downloaded", "months") == [3, 8]


def test_decorator_with_a_fixed_id_and_options(store_app: Flask) -> None:
    @mark("job:done", 99, track_unique=True)
    def job() -> int:
        return 1

    with store_app.app_context():
        assert job() == 1
    assert users_in(store_app, "job:done", EVER) == [99]


def test_decorator_marks_nothing_when_the_function_raises(
    app: Flask, client: redis.Redis
) -> None:
    @mark("failed", 1)
    def explode() -> None:
        raise KeyError("boom")

    with app.app_context(), pytest.raises(KeyError):
        explode()
    assert client.keys("*") == []


def test_decorator_on_async_views(store_app: Flask) -> None:
    app = store_app

    @app.route("/async")
    @mark("async:viewed", 12)
    async def view() -> str:
        return "async"

    before = datetime.now(timezone.utc)
    assert app.test_client().get("/async").text == "async"
    after = datetime.now(timezone.utc)
    found = [users_on(app, "async:viewed", "day", moment) for moment in (before, after)]
    assert [12] in found
    assert all(day in ([], [12]) for day in found)


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
    "(BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got {}."
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
    key = "trackist_song:played_2026-3-14"
    assert client.getbit(key, 2**24 - 1) == 1
    assert client.strlen(key) == 2 * 1024 * 1024


def test_a_raised_maximum_accepts_larger_ids(make_store_app: Any) -> None:
    app = make_store_app(max_user_id=2**25)
    with app.app_context():
        mark_event("song:played", 2**25, now=NOW)
        with pytest.raises(
            ValueError, match=r"from 0 to 33554432 \(BITMAPIST_MAX_USER_ID;"
        ):
            mark_event("song:played", 2**25 + 1, now=NOW)
        day = get_event_data("song:played", "day", now=NOW)
        # len and in, not a list: in bitmapist's layout the key is 4 MiB.
        assert len(day) == 1
        assert 2**25 in day


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

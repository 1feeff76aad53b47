"""What the retention modes, funnels, lifecycle and stickiness cost: one round
trip per node whatever their size, bitmap operations that grow with periods,
steps and window but not with the age of the data, and the limits that make
that possible (marks from 1970 to 2099; unions of more keys than a script can
unpack)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from conftest import TEST_SHARD_BITS, AppFactory, RoundTrips
from flask import Flask

from flask_bitmapist import (
    EventSet,
    get_cohort,
    get_funnel,
    get_lifecycle,
    get_stickiness,
    mark_event,
)
from flask_bitmapist.state import resolve_store
from flask_bitmapist.store.layout import Period
from flask_bitmapist.testing import RedisProcess
from flask_bitmapist.track.importer import parse_time, read_marks

NOW = datetime(2026, 11, 24, 15, tzinfo=timezone.utc)
STEPS = ["visit", "signup", "play", "pay", "share"]


def _seed(app: Flask) -> None:
    """40 users over the 60 days up to NOW, each doing the steps on some of
    them, and a few of them also in 1975 and 1990."""
    with app.app_context():
        for user in range(40):
            for day in range(0, 60, 1 + user % 7):
                when = NOW - timedelta(days=day, hours=user % 5)
                for step in STEPS[: 1 + (user + day) % len(STEPS)]:
                    mark_event(step, user, now=when)
        for user in range(0, 40, 9):
            mark_event("visit", user, now=datetime(1975, 5, 5, tzinfo=timezone.utc))
            mark_event("visit", user, now=datetime(1990, 1, 31, tzinfo=timezone.utc))


def _reports(size: int) -> list[tuple[Any, int]]:
    """Each report at a size (its rows, periods, steps and window grow with
    ``size``), with the round trips it costs beyond its scripts': a report of
    several scripts that start from a history (a first-time cohort of more
    than 500 cells, a lifecycle of more than 200 periods) asks first which
    keys of that history exist."""
    many_cells = 1 if size * size > 500 else 0
    return [
        (
            lambda: get_cohort(
                "visit",
                "play",
                num_rows=size,
                num_cols=size,
                now=NOW,
                cohort="first_time",
                retention="on_or_after",
            ),
            many_cells,
        ),
        (
            lambda: get_cohort(
                "visit",
                "play",
                num_rows=size,
                num_cols=size,
                now=NOW,
                cohort="first_time",
            ),
            many_cells,
        ),
        (lambda: get_cohort("visit", "play", num_rows=size, num_cols=size, now=NOW), 0),
        (
            lambda: get_funnel(
                STEPS[: 1 + min(size, 4)], num_periods=size, within=size, now=NOW
            ),
            0,
        ),
        (lambda: get_lifecycle("visit", "days", size, now=NOW), 0),
        (
            lambda: get_lifecycle("visit", "weeks", size * 6, now=NOW),
            1 if size * 6 > 200 else 0,
        ),
        (
            lambda: get_stickiness(
                "visit", "weeks" if size < 10 else "months", now=NOW
            ),
            0,
        ),
    ]


@pytest.mark.parametrize("layout", ["bitmapist", "sharded"])
@pytest.mark.parametrize("size", [1, 3, 40])
def test_each_report_is_one_round_trip_per_node_whatever_its_size(
    make_app: AppFactory, round_trips: RoundTrips, layout: str, size: int
) -> None:
    config = (
        {"key_layout": "sharded", "shard_bits": TEST_SHARD_BITS}
        if layout == "sharded"
        else {}
    )
    app = make_app(**config)
    _seed(app)
    # A sharded layout reads its registry of shards first.
    scripts = 2 if layout == "sharded" else 1
    with app.app_context():
        for report, probes in _reports(size):
            round_trips.count = 0
            report()
            assert round_trips.count == scripts + probes


def _calls(client: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _bitops_of(client: redis.Redis, report: Any) -> int:
    before = _calls(client, "bitop")
    report()
    return _calls(client, "bitop") - before


@pytest.fixture
def counted_app(make_app: AppFactory, private_redis: RedisProcess) -> Flask:
    """An app on a redis-server of the test's own, whose command counts only
    the test moves, with the Redis query engine: the BITOPs counted are its
    scripts' (the client engine runs none)."""
    app = make_app(redis_url=f"{private_redis.url}/0", query_engine="redis")
    _seed(app)
    return app


@pytest.mark.parametrize("periods", [5, 20])
@pytest.mark.parametrize("steps", [2, 5])
@pytest.mark.parametrize("within", [0, 7])
def test_a_funnels_bitops_grow_at_most_with_periods_steps_and_window(
    counted_app: Flask,
    private_redis: RedisProcess,
    periods: int,
    steps: int,
    within: int,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    with counted_app.app_context():
        bitops = _bitops_of(
            client,
            lambda: get_funnel(
                STEPS[:steps], num_periods=periods, within=within, now=NOW
            ),
        )
    # Per entry period: its entry set (2), the earlier entries' OR (1), and
    # two per later step and period of its window; one OR of the earlier
    # entries per script.
    assert 0 < bitops <= periods * (3 + 2 * (steps - 1) * (within + 1)) + 1


def _history_costs(client: redis.Redis, event: str) -> list[int]:
    """The BITOPs of a first-time cohort and two lifecycles of ``event``."""
    return [
        _bitops_of(
            client,
            lambda: get_cohort(
                event, "pay", num_rows=10, num_cols=10, now=NOW, cohort="first_time"
            ),
        ),
        _bitops_of(client, lambda: get_lifecycle(event, "days", 10, now=NOW)),
        _bitops_of(client, lambda: get_lifecycle(event, "months", 3, now=NOW)),
    ]


def test_history_costs_no_more_bitops_for_older_data(
    counted_app: Flask, private_redis: RedisProcess
) -> None:
    """first_time cohorts and lifecycle start from the OR of the event's
    months since 1970 that exist, a BITOP per 16 of them: two events whose
    histories differ only in how old two of their months are cost the same."""
    client = redis.Redis.from_url(private_redis.url)
    long_ago = [datetime(1975, 5, 5), datetime(1990, 1, 31)]
    lately = [datetime(2025, 3, 5), datetime(2025, 4, 30)]
    with counted_app.app_context():
        for event, old in (("old", long_ago), ("recent", lately)):
            for user in range(10):
                for day in range(20):
                    mark_event(event, user, now=NOW - timedelta(days=day + user))
                mark_event(event, user, now=old[user % 2])
        costs = {event: _history_costs(client, event) for event in ("old", "recent")}
    assert costs["old"] == costs["recent"]
    assert min(costs["old"]) > 0


@pytest.mark.parametrize("months", [1, 16, 17, 31, 40])
def test_a_history_of_many_months_back_to_1970_is_exact(
    app: Flask, client: redis.Redis, months: int
) -> None:
    """User m first did the event in the m-th month from January 1970 (the
    first at its first instant, the earliest a mark may have), and again in
    2026: only user ``months``, new in 2026, is first-time there, whatever
    how many month keys the history ORs (16 a BITOP)."""
    first = Period("month", datetime(1970, 1, 1, tzinfo=timezone.utc))
    with app.app_context():
        for user in range(months):
            mark_event("buy", user, now=first.shift(user).start)
        for user in range(months + 1):
            mark_event("buy", user, now=NOW)
        _, _, totals = get_cohort(
            "buy",
            "buy",
            time_group="months",
            num_rows=1,
            num_cols=1,
            now=NOW,
            cohort="first_time",
        )
        rows = get_lifecycle("buy", "months", 1, now=NOW)
    assert totals == [1]
    assert (rows[0].new, rows[0].resurrecting, rows[0].returning) == (1, months, 0)
    month_keys = [
        key
        for key in client.keys("trackist_buy_*")
        if re.fullmatch(rb"trackist_buy_[0-9]{4}-[0-9]{1,2}", key)
    ]
    assert len(month_keys) == months + 1


def test_marks_before_1970_are_refused_with_a_sentence_and_nothing_is_written(
    app: Flask, client: redis.Redis
) -> None:
    with app.app_context(), pytest.raises(ValueError) as caught:
        mark_event("buy", 1, now=datetime(1969, 12, 31, 23, tzinfo=timezone.utc))
    assert str(caught.value) == (
        "A mark's time must be from 1970-01-01 to 2099-12-31 (UTC), got "
        "1969-12-31T23:00:00+00:00."
    )
    assert client.keys("*") == []
    # An offset may put a 1970 time before 1970 in UTC.
    with pytest.raises(ValueError) as caught:
        parse_time("1970-01-01T00:30:00+01:00")
    assert str(caught.value) == (
        "A mark's time must be from 1970-01-01 to 2099-12-31 (UTC), got "
        "1969-12-31T23:30:00+00:00."
    )
    assert parse_time("1970-01-01T00:30:00-01:00") == datetime(
        1970, 1, 1, 1, 30, tzinfo=timezone.utc
    )


def test_an_imported_line_before_1970_is_skipped_with_its_reason() -> None:
    lines = [
        '{"event": "buy", "user": 1, "time": "1969-06-01T00:00:00Z"}',
        '{"event": "buy", "user": 2, "time": "1970-01-01T00:00:00Z"}',
    ]
    results = list(read_marks(lines, "jsonl"))
    assert [number for number, _ in results] == [1, 2]
    skipped, kept = results[0][1], results[1][1]
    assert str(skipped) == (
        "line 1: A mark's time must be from 1970-01-01 to 2099-12-31 (UTC), got "
        "1969-06-01T00:00:00+00:00"
    )
    assert getattr(kept, "user_id", None) == 2


def test_a_union_of_more_sets_than_a_script_can_unpack(
    app: Flask, client: redis.Redis
) -> None:
    """An OR of 2,500 day sets: BITOPs of 1,000 keys at most, as Lua's
    unpack takes no more than about 8,000 values."""
    first = datetime(2019, 1, 1, tzinfo=timezone.utc)
    with app.app_context():
        for user in range(0, 2500, 7):
            mark_event("read", user, now=first + timedelta(days=user))
        store = resolve_store(None)
        union = EventSet.of_period("read", Period.of("day", first), store)
        for day in range(1, 2500):
            union = union | EventSet.of_period(
                "read", Period.of("day", first + timedelta(days=day)), store
            )
        assert sorted(union) == list(range(0, 2500, 7))
        assert len(union) == math.ceil(2500 / 7)

"""What we write is exactly what ``bitmapist.mark_event`` writes, bitmapist's
classes read it, and we read what bitmapist writes. Needs the bitmapist extra:
the CI run on Python 3.10 with redis-py 5 has it; the run without it skips
these tests and says so."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_bitmapist import EventSet, get_event_data
from flask_bitmapist.store.layout import BITMAPIST, Period
from flask_bitmapist.store.writer import Mark, write_marks

pytestmark = pytest.mark.bitmapist

UTC = timezone.utc
# Edges: ISO week 53 and week-year changes, year, month and day ends, hours.
EDGES = [
    datetime(2020, 12, 31, 23, 59, tzinfo=UTC),
    datetime(2021, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2021, 1, 3, 23, tzinfo=UTC),
    datetime(2021, 1, 4, 0, tzinfo=UTC),
    datetime(2024, 12, 30, 12, tzinfo=UTC),
    datetime(2026, 2, 28, 23, tzinfo=UTC),
    datetime(2028, 2, 29, 11, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
]
moments = st.one_of(
    st.sampled_from(EDGES),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2099, 12, 31),
        timezones=st.just(UTC),
    ),
)
marks = st.lists(
    st.tuples(
        st.sampled_from(["a", "song:played", "user_signed_up", "x.y-z"]),
        st.integers(0, 2**20),
        moments,
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=20,
)


def contents(client: redis.Redis) -> dict[bytes, bytes]:
    return {key: client.get(key) or b"" for key in client.scan_iter(match="trackist_*")}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(marks)
def test_we_write_what_bitmapist_writes_and_each_reads_the_other(
    redis_url: str,
    other_redis_url: str,
    batch: list[tuple[str, int, datetime, bool, bool]],
) -> None:
    import bitmapist

    ours, theirs = (
        redis.Redis.from_url(redis_url),
        redis.Redis.from_url(other_redis_url),
    )
    ours.flushdb()
    theirs.flushdb()
    write_marks(
        ours,
        [Mark(e, uid, when, hourly, unique) for e, uid, when, hourly, unique in batch],
    )
    for event, user_id, when, hourly, unique in batch:
        bitmapist.mark_event(
            event,
            user_id,
            system=theirs,  # type: ignore[arg-type]
            now=when,
            track_hourly=hourly,
            track_unique=unique,
        )
    assert contents(ours) == contents(theirs)

    for event, user_id, when, hourly, unique in batch:
        for cls in (bitmapist.MonthEvents, bitmapist.WeekEvents, bitmapist.DayEvents):
            assert user_id in cls.from_date(event, when, system=ours)  # type: ignore[arg-type]
        if hourly:
            assert user_id in bitmapist.HourEvents.from_date(event, when, system=ours)  # type: ignore[arg-type]
        if unique:
            assert user_id in bitmapist.UniqueEvents(event, system=ours)  # type: ignore[arg-type]
        for unit, cls in (
            ("day", bitmapist.DayEvents),
            ("week", bitmapist.WeekEvents),
            ("month", bitmapist.MonthEvents),
        ):
            period = Period.of(unit, when)  # type: ignore[arg-type]
            assert list(EventSet.of_period(event, period, theirs)) == list(
                cls.from_date(event, when, system=theirs)  # type: ignore[arg-type]
            )
        year = bitmapist.YearEvents(event, when.year, system=theirs)  # type: ignore[arg-type]
        assert list(EventSet.of_period(event, Period.of("year", when), theirs)) == list(
            year
        )
    bitmapist.delete_runtime_bitop_keys()
    ours.close()
    theirs.close()


def test_our_periods_are_bitmapists(client: redis.Redis) -> None:
    import bitmapist

    start = datetime(2019, 12, 20, tzinfo=UTC)
    for hours in range(0, 24 * 800, 7):
        when = start + timedelta(hours=hours)
        for unit, cls in (
            ("hour", bitmapist.HourEvents),
            ("day", bitmapist.DayEvents),
            ("week", bitmapist.WeekEvents),
            ("month", bitmapist.MonthEvents),
        ):
            theirs = cls.from_date("e", when)
            period = Period.of(unit, when)  # type: ignore[arg-type]
            assert BITMAPIST.key("e", period) == theirs.redis_key
            assert period.start == theirs.period_start()
            assert BITMAPIST.key("e", period.shift(-3)) == theirs.delta(-3).redis_key


def test_bitmapists_bit_operations_take_our_sets(
    make_app: Any, client: redis.Redis
) -> None:
    from flask_bitmapist import BitOpAnd, BitOpOr, DayEvents

    app: Flask = make_app()
    now = datetime(2026, 3, 14, tzinfo=UTC)
    write_marks(
        client,
        [
            Mark("a", 1, now, False, False),
            Mark("a", 2, now, False, False),
            Mark("b", 2, now, False, False),
        ],
    )
    with app.app_context():
        a = get_event_data("a", "days", now=now)
        b = get_event_data("b", "days", now=now)
        both = BitOpAnd(a.system, a, b)
        assert list(both) == [2] == list(a & b)
        # A combination of ours goes in through the key it is stored in.
        assert list(
            BitOpOr(a.system, a & b, DayEvents.from_date("a", now, system=a.system))
        ) == [1, 2]  # type: ignore[arg-type]
        # And bitmapist's objects combine with ours.
        assert list(a - DayEvents.from_date("b", now, system=a.system)) == [1]  # type: ignore[arg-type]


def test_the_apps_client_is_a_bitmapist_system(
    make_app: Any, client: redis.Redis
) -> None:
    import bitmapist

    app: Flask = make_app(redis_system="analytics")
    now = datetime(2026, 3, 14, tzinfo=UTC)
    write_marks(client, [Mark("a", 7, now, False, False)])
    assert (
        bitmapist.SYSTEMS["analytics"] is app.extensions["bitmapist"].state(app).client
    )
    assert list(bitmapist.DayEvents.from_date("a", now, system="analytics")) == [7]


def test_flask_bitmapist_reexports_bitmapists_names() -> None:
    import bitmapist

    import flask_bitmapist

    for name in flask_bitmapist.BITMAPIST_NAMES:
        assert getattr(flask_bitmapist, name) is getattr(bitmapist, name)
        assert name in flask_bitmapist.__all__

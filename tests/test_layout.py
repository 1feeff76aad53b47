"""The key format and the period arithmetic of store/layout.py, checked against
plain datetime arithmetic (bitmapist itself: tests/test_bitmapist_compat.py)."""

from __future__ import annotations

import itertools
from datetime import MAXYEAR, date, datetime, timedelta, timezone
from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from flask_bitmapist.store.layout import (
    BITMAPIST,
    EVER,
    Period,
    ShardedLayout,
    locate,
    period_range,
    to_utc,
)

UTC = timezone.utc
moments = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9998, 12, 1),
    timezones=st.just(UTC),
)
units = st.sampled_from(["hour", "day", "week", "month", "year"])


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("unit", "when", "key"),
    [
        ("month", at(2026, 3, 14, 15), "trackist_song:played_2026-3"),
        ("week", at(2026, 3, 14, 15), "trackist_song:played_W2026-11"),
        ("day", at(2026, 3, 4, 15), "trackist_song:played_2026-3-4"),
        ("hour", at(2026, 3, 4, 5), "trackist_song:played_2026-3-4-5"),
        # ISO week-years: 2021-01-01 is in week 53 of 2020, 2024-12-30 in 2025-W1.
        ("week", at(2021, 1, 1), "trackist_song:played_W2020-53"),
        ("week", at(2024, 12, 30), "trackist_song:played_W2025-1"),
        ("day", at(2020, 12, 31, 23, 59), "trackist_song:played_2020-12-31"),
    ],
)
def test_key_names_are_bitmapists_without_zero_padding(
    unit: str, when: datetime, key: str
) -> None:
    period = Period.of(unit, when)  # type: ignore[arg-type]
    assert BITMAPIST.key("song:played", period) == key
    assert locate(BITMAPIST, "song:played", period, 42) == (key, 42)
    assert BITMAPIST.parse(key) == ("song:played", period)


def test_unique_key_and_years() -> None:
    assert BITMAPIST.key("a_b", EVER) == "trackist_a_b_u"
    assert BITMAPIST.parse("trackist_a_b_u") == ("a_b", EVER)
    assert EVER.end is None
    year = Period.of("year", at(2026, 7, 1))
    assert BITMAPIST.keys("e", year) == tuple(
        f"trackist_e_2026-{m}" for m in range(1, 13)
    )
    with pytest.raises(ValueError, match="bitmapist stores no year"):
        BITMAPIST.key("e", year)
    with pytest.raises(ValueError, match="no periods before or after"):
        EVER.shift(1)


@pytest.mark.parametrize(
    "key",
    [
        "trackist_bitop_fb_0a_1",  # a query's temporary key
        "trackist_bitop_AND_trackist_a_2026-1",
        "trackist_a_W2026-54",  # 2026 has 53 ISO weeks
        "trackist_a_2026-13",
        "trackist_a_2026-2-30",
        "trackist_a_2026-2-3-24",
        "trackist_a_x",
        "trackist__2026-1",
        "trackist_2026-1",
        "other_a_2026-1",
    ],
)
def test_parse_refuses_what_is_not_an_event_key(key: str) -> None:
    assert BITMAPIST.parse(key) is None


def test_period_ends_are_exclusive() -> None:
    assert Period.of("month", at(2026, 12, 5)).end == at(2027, 1, 1)
    assert Period.of("day", at(2026, 2, 28)).end == at(2026, 3, 1)
    assert Period.of("week", at(2026, 12, 31)).end == at(2027, 1, 4)
    assert Period.of("hour", at(2026, 11, 22, 23, 30)).end == at(2026, 11, 23)
    assert Period.of("year", at(2026, 11, 22)).end == at(2027, 1, 1)


def test_scan_pattern_escapes_glob_characters() -> None:
    assert BITMAPIST.scan_pattern("a*[b]?") == r"trackist_a\*\[b\]\?*"


@given(moments, units)
def test_a_period_holds_its_moment_and_its_key_reads_back(
    when: datetime, unit: str
) -> None:
    period = Period.of(unit, when)  # type: ignore[arg-type]
    assert period.start <= when < period.shift(1).start
    assert period.end == period.shift(1).start
    assert period.shift(1).shift(-1) == period
    assert Period.of(unit, period.start) == period  # type: ignore[arg-type]
    for key in BITMAPIST.keys("e", period):
        parsed = BITMAPIST.parse(key)
        assert parsed is not None
        assert parsed[1].start >= period.start


@given(moments)
def test_periods_match_plain_calendar_arithmetic(when: datetime) -> None:
    day = when.date()
    iso_year, iso_week, weekday = day.isocalendar()
    monday = day - timedelta(days=weekday - 1)
    assert Period.of("week", when).start.date() == monday
    assert date.fromisocalendar(iso_year, iso_week, 1) == monday
    assert (
        BITMAPIST.key("e", Period.of("week", when))
        == f"trackist_e_W{iso_year}-{iso_week}"
    )
    assert BITMAPIST.key("e", Period.of("day", when)) == (
        f"trackist_e_{day.year}-{day.month}-{day.day}"
    )
    assert BITMAPIST.key("e", Period.of("hour", when)) == (
        f"trackist_e_{day.year}-{day.month}-{day.day}-{when.hour}"
    )


@given(moments, st.integers(-400, 400))
@example(datetime(9993, 5, 1, tzinfo=timezone.utc), 80)
def test_shifting_months_is_calendar_months(when: datetime, count: int) -> None:
    months = when.year * 12 + when.month - 1 + count
    # Within the years a datetime has (moments reach 9998, count 33 years).
    assume(months // 12 <= MAXYEAR)
    shifted = Period.of("month", when).shift(count).start
    assert (shifted.year, shifted.month, shifted.day) == (
        months // 12,
        months % 12 + 1,
        1,
    )


@given(moments, moments, units)
def test_a_range_is_every_period_in_order(
    first: datetime, last: datetime, unit: str
) -> None:
    if abs((last - first).days) > 3 * 366:
        last = first + timedelta(days=30)
    periods = period_range(unit, first, last)  # type: ignore[arg-type]
    if last < Period.of(unit, first).start:  # type: ignore[arg-type]
        assert periods == []
        return
    assert periods[0] == Period.of(unit, first)  # type: ignore[arg-type]
    assert periods[-1] == Period.of(unit, last)  # type: ignore[arg-type]
    assert all(b == a.shift(1) for a, b in itertools.pairwise(periods))


def test_to_utc() -> None:
    assert to_utc(datetime(2026, 1, 1, 12)) == at(2026, 1, 1, 12)
    plus_two = timezone(timedelta(hours=2))
    assert to_utc(datetime(2026, 1, 1, 1, tzinfo=plus_two)) == at(2025, 12, 31, 23)
    with pytest.raises(ValueError, match="now must be a datetime"):
        to_utc("2026-01-01")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("unit", "label"),
    [
        ("hour", "2021-01-01 05:00"),
        ("day", "2021-01-01"),
        ("week", "2020-W53"),
        ("month", "2021-01"),
        ("year", "2021"),
    ],
)
def test_labels_for_people(unit: str, label: str) -> None:
    assert Period.of(unit, at(2021, 1, 1, 5, 30)).label == label  # type: ignore[arg-type]
    assert EVER.label == "ever"


SHARDED = ShardedLayout(20)


def test_sharded_keys_carry_the_shard_as_their_hash_tag() -> None:
    day = Period.of("day", datetime(2026, 3, 14, 9, tzinfo=timezone.utc))
    assert SHARDED.split(0) == (0, 0)
    assert SHARDED.split(2**20 - 1) == (0, 2**20 - 1)
    assert SHARDED.split(2**20) == (1, 0)
    assert SHARDED.split(5 * 2**20 + 17) == (5, 17)
    assert SHARDED.first_id(5) == 5 * 2**20
    assert locate(SHARDED, "play", day, 5 * 2**20 + 17) == (
        "trackist20{5}_play_2026-3-14",
        17,
    )
    assert SHARDED.keys("play", Period.of("year", day.start), [0, 3])[::11] == (
        "trackist20{0}_play_2026-1",
        "trackist20{0}_play_2026-12",
        "trackist20{3}_play_2026-11",
    )
    assert SHARDED.temporary_key("q_1", 7) == "trackist20{7}_bitop_q_1"
    assert SHARDED.registry_key == "trackist20:shards"
    assert ShardedLayout(3).registry_key == "trackist3:shards"
    assert BITMAPIST.registry_key is None


@given(
    event=st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1
    ).filter(lambda name: not name.startswith("bitop_") and name.isprintable()),
    shard=st.integers(0, 2**12),
    unit=st.sampled_from(["hour", "day", "week", "month", "ever"]),
    when=st.datetimes(datetime(1971, 1, 1), datetime(9998, 1, 1), timezones=st.just(timezone.utc)),
)  # fmt: skip
def test_a_sharded_key_parses_back_whatever_its_event_is_called(
    event: str, shard: int, unit: str, when: datetime
) -> None:
    period = Period.of(unit, when)  # type: ignore[arg-type]
    key = SHARDED.key(event, period, shard)
    assert key.index("{") == len("trackist20")  # the hash tag is the shard's
    assert SHARDED.parse(key) == (event, period)
    assert BITMAPIST.parse(key) is None  # neither layout reads the other's keys
    assert SHARDED.parse(BITMAPIST.key(event, period)) is None
    # Redis's glob, as fnmatch's, for names without glob characters.
    prefix = "" if set(event[:2]) & set("*?[]\\") else event[:2]
    assert fnmatchcase(key, SHARDED.scan_pattern(prefix))


@pytest.mark.parametrize(
    "key",
    [
        "trackist20{3}_bitop_fb_1_0",
        "trackist20{03}_play_2026-3-14",
        "trackist20{x}_play_2026-3-14",
        "trackist20{3}play_2026-3-14",
        "trackist20:shards",
        "trackist3{3}_play_2026-3-14",  # another shard size's
        "trackist{3}_play_2026-3-14",
        "trackist20{3}_play_2026-13",
    ],
)
def test_sharded_parse_refuses_what_is_not_an_event_key(key: str) -> None:
    assert SHARDED.parse(key) is None


@pytest.mark.parametrize("bits", [2, 33, True, 20.0, "20"])
def test_a_shard_size_out_of_range_is_refused(bits: object) -> None:
    with pytest.raises(ValueError) as error:
        ShardedLayout(bits)  # type: ignore[arg-type]
    assert str(error.value) == f"shard_bits must be an int from 3 to 32, got {bits!r}."


@given(
    st.sampled_from(["day", "week", "month", "year"]),
    st.datetimes(min_value=datetime(1000, 1, 8), max_value=datetime(9998, 12, 24)).map(
        lambda moment: moment.replace(tzinfo=timezone.utc)
    ),
)
def test_a_label_names_its_period(unit: Any, when: datetime) -> None:
    period = Period.of(unit, when)
    assert Period.from_label(period.label) == period


@pytest.mark.parametrize(
    "label", ["", "2026-13", "2026-02-30", "2025-W53", "2026-W00", "26-11", "2026-11-24 13:00", "ever", "٢٠٢٦"]
)  # fmt: skip
def test_what_no_period_is_labelled_is_refused(label: str) -> None:
    with pytest.raises(ValueError) as error:
        Period.from_label(label)
    assert str(error.value) == f"No period is labelled {label!r}."

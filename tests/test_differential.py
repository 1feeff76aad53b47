"""get_cohort and chain_events on random data, against a plain-Python model of
what they must answer (tests/model.py) and, with bitmapist installed, against
the original algorithm (tests/reference.py): random users and events over
random dates, every time group, AND/OR chains of up to 4 extra events, with
and without replacement."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model import Mark, Model

from flask_bitmapist import chain_events, get_cohort, mark_event
from flask_bitmapist.store.writer import Mark as WriterMark
from flask_bitmapist.store.writer import write_marks

UTC = timezone.utc
EVENTS = ["a", "b", "c", "d", "e"]
NOW = datetime(2026, 1, 3, 15, 30, tzinfo=UTC)  # a Saturday near New Year
# The model's runs also try other edges: the last day of ISO week 53 of 2020
# (a Sunday in January), a leap day, a Monday at midnight, a year's last second.
NOWS = [
    NOW,
    datetime(2021, 1, 3, 23, 59, tzinfo=UTC),
    datetime(2024, 2, 29, 12, tzinfo=UTC),
    datetime(2024, 12, 30, 0, 0, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
]

# Dense data: few users, and times spread over the rows of the query, so that
# users come back in several columns and replacement matters.
marks_strategy = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        st.integers(min_value=0, max_value=9),
        st.integers(min_value=0, max_value=999),  # how far back, in 1/1000 of the rows
    ),
    min_size=40,
    max_size=300,
)
PERIOD_DAYS = {"days": 1, "weeks": 7, "months": 31, "years": 366}
chain_strategy = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(EVENTS), "op": st.sampled_from(["and", "or"])}
    ),
    max_size=4,
)
time_groups = st.sampled_from(["days", "weeks", "months", "years"])
fuzz = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def load(
    client: redis.Redis,
    marks: list[tuple[str, int, int]],
    time_group: str,
    rows: int,
    now: datetime = NOW,
) -> list[Mark]:
    """Write the marks, ``back`` thousandths of ``rows`` periods before
    ``now``, to an empty db; return them as the model takes them."""
    client.flushdb()
    horizon = timedelta(days=PERIOD_DAYS[time_group] * rows)
    timed = [(event, user, now - back * horizon / 1000) for event, user, back in marks]
    write_marks(
        client,
        [WriterMark(event, user, when, False, False) for event, user, when in timed],
    )
    return timed


@fuzz
@given(
    marks=marks_strategy,
    chain=chain_strategy,
    time_group=time_groups,
    rows=st.integers(min_value=1, max_value=6),
    cols=st.integers(min_value=1, max_value=6),
    with_replacement=st.booleans(),
    now=st.sampled_from(NOWS),
)
def test_cohorts_match_the_model(
    app: Flask,
    client: redis.Redis,
    marks: list[tuple[str, int, int]],
    chain: list[dict[str, str]],
    time_group: str,
    rows: int,
    cols: int,
    with_replacement: bool,
    now: datetime,
) -> None:
    model = Model(load(client, marks, time_group, rows, now))
    expected = model.cohort(
        "a", "b", chain, time_group, rows, cols, with_replacement, now
    )
    with app.app_context():
        got = get_cohort(
            "a",
            "b",
            chain,
            time_group,
            rows,
            cols,
            with_replacement=with_replacement,
            now=now,
        )
    assert got == expected
    assert client.keys("trackist_bitop_*") == []


@fuzz
@given(
    marks=marks_strategy,
    chain=chain_strategy,
    time_group=time_groups,
    now=st.sampled_from(NOWS),
)
def test_chains_match_the_model(
    app: Flask,
    client: redis.Redis,
    marks: list[tuple[str, int, int]],
    chain: list[dict[str, str]],
    time_group: str,
    now: datetime,
) -> None:
    model = Model(load(client, marks, time_group, 2, now))
    with app.app_context():
        result = chain_events("a", chain, now, time_group)
        got = set(result)
        result.delete()
    assert got == model.chain("a", chain, time_group, now)
    assert client.keys("trackist_bitop_*") == []


def test_the_model_on_hand_built_data() -> None:
    """The model itself, on data whose answers are worked out by hand (the
    same as tests/test_queries.py's)."""

    def day(n: int) -> datetime:
        return datetime(2026, 3, n, 9, tzinfo=UTC)

    marks: list[Mark] = [
        *[("signup", user, day(12)) for user in (1, 2, 3, 4)],
        *[("signup", user, day(13)) for user in (5, 6)],
        ("signup", 7, day(14)),
        *[("active", user, day(12)) for user in (1, 2)],
        *[("active", user, day(13)) for user in (1, 3, 5)],
        *[("active", user, day(14)) for user in (1, 2, 5, 7)],
        ("paid", 3, day(13)),
        ("paid", 1, day(14)),
        ("invited", 4, day(12)),
    ]
    model = Model(marks)
    now = datetime(2026, 3, 14, 12, tzinfo=UTC)
    assert model.cohort("signup", "active", [], "days", 4, 3, False, now) == (
        [[None, None, None], [2, 1, 0], [1, 0, None], [1, None, None]],
        [datetime(2026, 3, n, tzinfo=UTC) for n in (11, 12, 13, 14)],
        [0, 4, 2, 1],
    )
    assert model.cohort("signup", "active", [], "days", 3, 3, True, now)[0] == [
        [2, 2, 2],
        [1, 1, None],
        [1, None, None],
    ]
    paid = [{"name": "paid", "op": "and"}]
    assert model.cohort("signup", "active", paid, "days", 3, 3, False, now)[0] == [
        [0, 1, 1],
        [0, 0, None],
        [0, None, None],
    ]
    invited = [{"name": "invited", "op": "or"}]
    assert model.cohort("signup", "active", invited, "days", 3, 3, False, now)[0] == [
        [3, 1, 0],
        [1, 0, None],
        [1, None, None],
    ]
    assert model.users("signup", "weeks", day(12)) == set(range(1, 8))
    assert model.users("signup", "day", day(12)) == {1, 2, 3, 4}
    # A & (B | C) & D: the OR binds to its direct predecessor.
    sets = {"A": {1, 2, 3, 4, 5, 6}, "B": {1, 2, 3, 7}, "C": {1, 8}, "E": {3, 4, 10}}
    chained = Model(
        (name, user, day(14)) for name, users in sets.items() for user in users
    )
    chain = [
        {"name": "B", "op": "and"},
        {"name": "C", "op": "or"},
        {"name": "E", "op": "and"},
    ]
    assert chained.chain("A", chain, "days", day(14)) == {3}
    assert chained.chain("A", chain[1:2], "days", day(14)) == {1, 2, 3, 4, 5, 6, 8}


def test_the_model_cuts_iso_weeks_months_and_years() -> None:
    marks: list[Mark] = [
        ("e", 1, datetime(2021, 1, 1, 12, tzinfo=UTC)),  # ISO week 53 of 2020
        ("e", 2, datetime(2020, 12, 28, 0, 0, tzinfo=UTC)),  # its Monday
        ("e", 3, datetime(2021, 1, 4, 0, 0, tzinfo=UTC)),  # ISO week 1 of 2021
        ("e", 4, datetime(2021, 1, 1, 2, tzinfo=timezone(timedelta(hours=5)))),
    ]
    model = Model(marks)
    assert model.users("e", "weeks", datetime(2021, 1, 3, 23, 59)) == {1, 2, 4}
    assert model.users("e", "months", datetime(2020, 12, 1)) == {2, 4}
    assert model.users("e", "years", datetime(2021, 6, 1)) == {1, 3}
    assert model.cohort("e", "e", [], "weeks", 2, 2, False, datetime(2021, 1, 4)) == (
        [[3, 0], [1, None]],
        [datetime(2020, 12, 28, tzinfo=UTC), datetime(2021, 1, 4, tzinfo=UTC)],
        [3, 1],
    )


def test_the_package_agrees_with_the_model_on_week_53(
    app: Flask, client: redis.Redis
) -> None:
    """A worked case through mark_event rather than the writer, to pin the
    model's periods to what the package reads."""
    marks: list[Mark] = [
        ("signup", 1, datetime(2020, 12, 28, 9, tzinfo=UTC)),
        ("signup", 2, datetime(2021, 1, 3, 22, tzinfo=UTC)),
        ("play", 1, datetime(2021, 1, 2, 9, tzinfo=UTC)),
        ("play", 2, datetime(2021, 1, 4, 9, tzinfo=UTC)),
        ("play", 1, datetime(2021, 1, 10, 9, tzinfo=UTC)),
    ]
    with app.app_context():
        for event, user, when in marks:
            mark_event(event, user, now=when)
        now = datetime(2021, 1, 10, 23, tzinfo=UTC)
        for time_group in ("days", "weeks", "months", "years"):
            for with_replacement in (False, True):
                assert get_cohort(
                    "signup",
                    "play",
                    None,
                    time_group,
                    3,
                    3,
                    with_replacement=with_replacement,
                    now=now,
                ) == Model(marks).cohort(
                    "signup", "play", [], time_group, 3, 3, with_replacement, now
                )
        weekly = get_cohort("signup", "play", None, "weeks", 3, 3, now=now)
    assert weekly == (
        [[None] * 3, [1, 1, None], [None] * 3],
        [datetime(2020, 12, n, tzinfo=UTC) for n in (21, 28)]
        + [datetime(2021, 1, 4, tzinfo=UTC)],
        [0, 2, 0],
    )


@pytest.mark.bitmapist
@fuzz
@given(
    marks=marks_strategy,
    chain=chain_strategy,
    time_group=time_groups,
    rows=st.integers(min_value=1, max_value=6),
    cols=st.integers(min_value=1, max_value=6),
    with_replacement=st.booleans(),
)
def test_cohorts_match_the_original(
    app: Flask,
    client: redis.Redis,
    marks: list[tuple[str, int, int]],
    chain: list[dict[str, str]],
    time_group: str,
    rows: int,
    cols: int,
    with_replacement: bool,
) -> None:
    from reference import reference_cohort

    load(client, marks, time_group, rows)
    expected = reference_cohort(
        "a", "b", chain, time_group, rows, cols, with_replacement, NOW, client
    )
    with app.app_context():
        cohort, dates, totals = get_cohort(
            "a",
            "b",
            chain,
            time_group,
            rows,
            cols,
            with_replacement=with_replacement,
            now=NOW,
        )
    assert (cohort, totals) == expected
    assert len(dates) == rows
    assert client.keys("trackist_bitop_*") == []


@pytest.mark.bitmapist
@fuzz
@given(marks=marks_strategy, chain=chain_strategy, time_group=time_groups)
def test_chains_match_the_original(
    app: Flask,
    client: redis.Redis,
    marks: list[tuple[str, int, int]],
    chain: list[dict[str, str]],
    time_group: str,
) -> None:
    from reference import reference_chain

    load(client, marks, time_group, 2)
    expected: Any = set(reference_chain("a", chain, NOW, time_group, client))
    with app.app_context():
        result = chain_events("a", chain, NOW, time_group)
        got = set(result)
        result.delete()
    assert got == expected

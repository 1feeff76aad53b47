"""get_cohort and chain_events against the original algorithm (tests/reference.py)
on random data: random users and events over random dates, every time group,
AND/OR chains of up to 4 extra events, with and without replacement."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_chain, reference_cohort

from flask_bitmapist import chain_events, get_cohort
from flask_bitmapist.store.writer import Mark, write_marks

EVENTS = ["a", "b", "c", "d", "e"]
NOW = datetime(2026, 1, 3, 15, 30, tzinfo=timezone.utc)  # a Saturday near New Year

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
fuzz = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def load(
    client: redis.Redis, marks: list[tuple[str, int, int]], time_group: str, rows: int
) -> None:
    client.flushdb()
    horizon = timedelta(days=PERIOD_DAYS[time_group] * rows)
    write_marks(
        client,
        [
            Mark(event, user, NOW - back * horizon / 1000, False, False)
            for event, user, back in marks
        ],
    )


@fuzz
@given(
    marks=marks_strategy,
    chain=chain_strategy,
    time_group=st.sampled_from(["days", "weeks", "months", "years"]),
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


@fuzz
@given(
    marks=marks_strategy,
    chain=chain_strategy,
    time_group=st.sampled_from(["days", "weeks", "months", "years"]),
)
def test_chains_match_the_original(
    app: Flask,
    client: redis.Redis,
    marks: list[tuple[str, int, int]],
    chain: list[dict[str, str]],
    time_group: str,
) -> None:
    load(client, marks, time_group, 2)
    expected: Any = set(reference_chain("a", chain, NOW, time_group, client))
    with app.app_context():
        result = chain_events("a", chain, NOW, time_group)
        got = set(result)
        result.delete()
    assert got == expected

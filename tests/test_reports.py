"""Retention modes, funnels, lifecycle and stickiness (issue 15) against the
pure-Python reference of tests/reports_reference.py, on random marks written
through the package into a real Redis (hypothesis), in bitmapist's layout,
the sharded layout with shards of 8 ids on one node, the same with the id
map (string ids), and on a cluster; then on small hand-built stores whose
answers are written out, so that a reader sees what each report counts.

The random stores put most marks within the periods the report reads (and
some in the period after now's), the rest anywhere in the three years
before, in the order drawn or newest first (so that a user's earliest mark
may be written last, with an older ``now=``). ``now`` is drawn from edges
(ISO week 53 of 2020 and of 2026, year ends, month ends, a leap day,
midnights) or anywhere from 2019 to 2027.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import TEST_SHARD_BITS, AppFactory
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model import Model
from reports_reference import (
    LifecycleAnswer,
    Mark,
    Reference,
    conversion_from_first,
    conversion_from_previous,
    drop_off,
)

from flask_bitmapist import (
    LifecycleRow,
    get_cohort,
    get_cohort_cell,
    get_funnel,
    get_lifecycle,
    get_stickiness,
    mark_event,
)
from flask_bitmapist.testing import ClusterProcess

UTC = timezone.utc
EVENTS = ("a", "b", "c")
TIME_GROUPS = ("days", "weeks", "months", "years")
PERIOD_HOURS = {"days": 24, "weeks": 7 * 24, "months": 31 * 24, "years": 366 * 24}
THREE_YEARS_IN_HOURS = 3 * 366 * 24

#: The stores of the random tests: the layout's config keys (as ``make_app``
#: takes them); with the id map, user n is the string ``user-n``.
LAYOUTS: dict[str, dict[str, Any]] = {
    "bitmapist": {},
    "sharded": {"key_layout": "sharded", "shard_bits": TEST_SHARD_BITS},
    "sharded, id map": {
        "key_layout": "sharded",
        "shard_bits": TEST_SHARD_BITS,
        "id_map": True,
    },
    # The redis_url is the session's cluster's.
    "cluster": {"shard_bits": TEST_SHARD_BITS},
}


class Layout:
    """One of :data:`LAYOUTS`: makes apps on an emptied db and spells the ids
    of its users."""

    def __init__(
        self, name: str, make_app: AppFactory, cluster: ClusterProcess | None
    ) -> None:
        self.name = name
        self._make_app = make_app
        self._cluster = cluster

    def user(self, n: int) -> int | str:
        """User n's id: in int mode 13 apart, so that a few dozen users
        spread over many shards of 8; with the id map a string."""
        return f"user-{n}" if LAYOUTS[self.name].get("id_map") else n * 13

    def app_with(self, marks: Sequence[Mark]) -> Flask:
        """A new app (with the id map, a new cache) on an emptied db, with
        ``marks`` written one by one, in order."""
        config = LAYOUTS[self.name]
        if self._cluster is None:
            app = self._make_app(**config)
            app.extensions["bitmapist"].state(app).store.client.flushdb()
        else:
            self._cluster.flushall()
            app = self._make_app(redis_url=self._cluster.url, **config)
        with app.app_context():
            for event, user, when in marks:
                mark_event(event, user, now=when)
        return app


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest, make_app: AppFactory) -> Layout:
    cluster = None
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
    return Layout(str(request.param), make_app, cluster)


fuzz = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# --- random stores

EDGE_NOWS = [
    datetime(2020, 12, 31, 12, tzinfo=UTC),  # a Thursday in 2020-W53, year's end
    datetime(2021, 1, 1, 0, 0, tzinfo=UTC),  # New Year's midnight, still 2020-W53
    datetime(2021, 1, 3, 23, 59, tzinfo=UTC),  # the last minute of 2020-W53
    datetime(2027, 1, 2, 8, tzinfo=UTC),  # in 2026-W53
    datetime(2023, 2, 28, 23, 59, tzinfo=UTC),  # a February's last minute
    datetime(2024, 2, 29, 12, tzinfo=UTC),  # a leap day
    datetime(2024, 3, 1, 0, 0, tzinfo=UTC),  # the midnight after it
    datetime(2026, 1, 31, 18, tzinfo=UTC),  # a January's end
    datetime(2026, 3, 14, 12, tzinfo=UTC),  # a Saturday mid-month
]
nows = st.one_of(
    st.sampled_from(EDGE_NOWS),
    st.datetimes(
        min_value=datetime(2019, 1, 1),
        max_value=datetime(2027, 12, 31),
        timezones=st.just(UTC),
    ),
)


@st.composite
def stores(
    draw: st.DrawFn, layout: Layout, time_group: str, periods: int, users: int = 8
) -> tuple[datetime, list[Mark]]:
    """``now`` and marks of ``users`` users on :data:`EVENTS`: two thirds of
    them from the period after now's back to ``periods`` periods before it,
    the rest in the three years before now; in the order drawn or newest
    first."""
    now = draw(nows)
    near = st.integers(-PERIOD_HOURS[time_group], PERIOD_HOURS[time_group] * periods)
    far = st.integers(0, THREE_YEARS_IN_HOURS)
    drawn = draw(
        st.lists(
            st.tuples(
                st.sampled_from(EVENTS),
                st.integers(0, users - 1),
                st.one_of(near, near, far),
            ),
            min_size=30,
            max_size=120,
        )
    )
    marks: list[Mark] = [
        (event, layout.user(n), now - timedelta(hours=hours))
        for event, n, hours in drawn
    ]
    if draw(st.booleans()):
        marks.sort(key=lambda mark: mark[2], reverse=True)
    return now, marks


chains = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(EVENTS), "op": st.sampled_from(["and", "or"])}
    ),
    max_size=3,
)


@fuzz
@given(
    data=st.data(),
    time_group=st.sampled_from(TIME_GROUPS),
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
    additional=chains,
    with_replacement=st.booleans(),
    cohort=st.sampled_from(["recurring", "first_time"]),
    retention=st.sampled_from(["on", "on_or_after"]),
)
def test_cohorts_match_the_reference(
    layout: Layout,
    data: st.DataObject,
    time_group: str,
    rows: int,
    cols: int,
    additional: list[dict[str, str]],
    with_replacement: bool,
    cohort: str,
    retention: str,
) -> None:
    now, marks = data.draw(stores(layout, time_group, rows + 1))
    app = layout.app_with(marks)
    reference = Reference(marks)
    arguments: dict[str, Any] = {
        "primary_event_name": "a",
        "secondary_event_name": "b",
        "additional_events": additional,
        "time_group": time_group,
        "num_rows": rows,
        "num_cols": cols,
        "with_replacement": with_replacement,
        "now": now,
    }
    modes: dict[str, Any] = {"cohort": cohort, "retention": retention}
    expected = reference.cohort(
        "a", "b", additional, time_group, rows, cols, with_replacement, now, **modes
    )
    row = data.draw(st.integers(0, rows - 1))
    column = data.draw(st.integers(0, min(cols, rows - row) - 1))
    cell = reference.cohort_cells(
        "a", "b", additional, time_group, rows, cols, with_replacement, now, **modes
    )[row][column]
    with app.app_context():
        assert get_cohort(**arguments, **modes) == expected
        got = get_cohort_cell(**arguments, **modes, row=row, column=column)
        assert set(got) == (cell or set())
        if modes == {"cohort": "recurring", "retention": "on"}:
            assert get_cohort(**arguments) == expected


@fuzz
@given(
    data=st.data(),
    time_group=st.sampled_from(TIME_GROUPS),
    steps=st.lists(st.sampled_from(EVENTS), min_size=2, max_size=4),
    num_periods=st.integers(1, 6),
    within=st.integers(0, 4),
)
def test_funnels_match_the_reference(
    layout: Layout,
    data: st.DataObject,
    time_group: str,
    steps: list[str],
    num_periods: int,
    within: int,
) -> None:
    now, marks = data.draw(stores(layout, time_group, num_periods + 1))
    app = layout.app_with(marks)
    expected = Reference(marks).funnel(steps, time_group, num_periods, within, now)
    with app.app_context():
        funnel = get_funnel(steps, time_group, num_periods, within, now=now)
    assert (funnel.steps, funnel.time_group, funnel.within) == (
        steps,
        time_group,
        within,
    )
    assert (funnel.dates, funnel.rows) == (expected.dates, expected.rows)
    counts = expected.counts
    assert funnel.counts == counts
    assert funnel.conversion_from_previous == pytest.approx(
        conversion_from_previous(counts)
    )
    assert funnel.conversion_from_first == pytest.approx(conversion_from_first(counts))
    assert funnel.drop_off == drop_off(counts)


def lifecycle_counts(
    rows: Sequence[LifecycleRow | LifecycleAnswer],
) -> list[tuple[datetime, int, int, int, int]]:
    """Each row's date, new, returning, resurrecting and dormant users."""
    return [
        (row.date, row.new, row.returning, row.resurrecting, row.dormant)
        for row in rows
    ]


@fuzz
@given(
    data=st.data(),
    time_group=st.sampled_from(TIME_GROUPS),
    num_periods=st.integers(1, 8),
)
def test_lifecycles_match_the_reference(
    layout: Layout, data: st.DataObject, time_group: str, num_periods: int
) -> None:
    now, marks = data.draw(stores(layout, time_group, num_periods + 1))
    app = layout.app_with(marks)
    reference = Reference(marks)
    with app.app_context():
        rows = get_lifecycle("a", time_group, num_periods, now=now)
    assert lifecycle_counts(rows) == lifecycle_counts(
        reference.lifecycle("a", time_group, num_periods, now)
    )
    assert [row.active for row in rows] == [
        len(reference.users("a", time_group, row.date.date())) for row in rows
    ]


@fuzz
@given(
    data=st.data(),
    time_group=st.sampled_from(["weeks", "months"]),
    singular=st.booleans(),
)
def test_stickiness_matches_the_reference(
    layout: Layout, data: st.DataObject, time_group: str, singular: bool
) -> None:
    # Few users with many marks around now's period, so that some come back
    # on many of its days.
    now, marks = data.draw(stores(layout, time_group, 1, users=6))
    app = layout.app_with(marks)
    with app.app_context():
        counts = get_stickiness(
            "a", time_group.removesuffix("s") if singular else time_group, now=now
        )
    assert counts == Reference(marks).stickiness("a", time_group, now)


def test_long_reports_that_span_several_scripts_match_the_reference(
    layout: Layout,
) -> None:
    """Tables large enough that the package splits them into several
    scripts (each starting its own history and unions): 40 x 40 days of
    cohorts, 30 entry days of a funnel with a 30-day window, and a
    lifecycle of 450 days."""
    now = datetime(2026, 3, 14, 12, tzinfo=UTC)
    draw = random.Random(15)

    def some_time() -> datetime:
        """From the day after now's back to 60 days, 500 days or 3 years."""
        days = draw.choice((60, 500, 1100))
        return now - timedelta(hours=draw.randrange(-24, 24 * days))

    marks: list[Mark] = [
        (draw.choice(EVENTS), layout.user(draw.randrange(12)), some_time())
        for _ in range(800)
    ]
    app = layout.app_with(marks)
    reference = Reference(marks)
    steps = ["a", "b", "c", "b"]
    chain = [{"name": "c", "op": "or"}]
    with app.app_context():
        for cohort in ("recurring", "first_time"):
            for retention in ("on", "on_or_after"):
                modes: dict[str, Any] = {"cohort": cohort, "retention": retention}
                assert get_cohort(
                    "a", "b", chain, "days", 40, 40, now=now, **modes
                ) == reference.cohort(
                    "a", "b", chain, "days", 40, 40, False, now, **modes
                )
        funnel = get_funnel(steps, "days", num_periods=30, within=30, now=now)
        lifecycle = get_lifecycle("a", "days", num_periods=450, now=now)
    expected = reference.funnel(steps, "days", 30, 30, now)
    assert (funnel.dates, funnel.rows) == (expected.dates, expected.rows)
    assert lifecycle_counts(lifecycle) == lifecycle_counts(
        reference.lifecycle("a", "days", 450, now)
    )


# --- hand-built stores, on each of LAYOUTS

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)  # a Saturday; its ISO week is 9..15


def day(n: int, hour: int = 9) -> datetime:
    """A time on March ``n``, 2026."""
    return datetime(2026, 3, n, hour, tzinfo=UTC)


def midnights(*days: int) -> list[datetime]:
    return [datetime(2026, 3, n, tzinfo=UTC) for n in days]


def hand_marks(layout: Layout, marks: list[tuple[str, int, datetime]]) -> list[Mark]:
    """``marks`` with user numbers spelled as ``layout``'s ids."""
    return [(event, layout.user(n), when) for event, n, when in marks]


FUNNEL_MARKS = [
    # 1: visit and signup on the 12th (signup first: same day is in order),
    # pay on the 13th.
    ("signup", 1, day(12, 8)),
    ("visit", 1, day(12, 9)),
    ("pay", 1, day(13)),
    # 2: signup on the 11th, before the visit of the 12th: step 2 not done.
    ("signup", 2, day(11)),
    ("visit", 2, day(12)),
    # 3: enters on the 13th, signs up and pays on the 14th.
    ("visit", 3, day(13)),
    ("signup", 3, day(14)),
    ("pay", 3, day(14)),
    # 4: signs up two days after the entry of the 12th.
    ("visit", 4, day(12)),
    ("signup", 4, day(14)),
    # 5: a visit before the 3 entry periods, then one on the 13th: enters then.
    ("visit", 5, day(11)),
    ("visit", 5, day(13)),
    # 6: pays on the 12th, before signing up on the 13th: step 3 not done.
    ("visit", 6, day(12)),
    ("pay", 6, day(12)),
    ("signup", 6, day(13)),
    # 7: pays on the 15th, after now's day.
    ("visit", 7, day(14)),
    ("signup", 7, day(14)),
    ("pay", 7, day(15)),
]


def test_a_funnel_of_three_steps(layout: Layout) -> None:
    marks = hand_marks(layout, FUNNEL_MARKS)
    app = layout.app_with(marks)
    steps = ["visit", "signup", "pay"]
    with app.app_context():
        funnel = get_funnel(steps, "days", num_periods=3, within=1, now=NOW)
    assert funnel.dates == midnights(12, 13, 14)
    # 12th: 1, 2, 4, 6 enter; 1 and 6 sign up by the 13th; 1 pays.
    # 13th: 3 and 5 enter; 3 signs up and pays on the 14th.
    # 14th: 7 enters and signs up.
    assert funnel.rows == [[4, 2, 1], [2, 1, 1], [1, 1, 0]]
    assert funnel.counts == [7, 4, 2]
    assert funnel.conversion_from_previous == [100.0, pytest.approx(400 / 7), 50.0]
    assert funnel.conversion_from_first == [
        100.0,
        pytest.approx(400 / 7),
        pytest.approx(200 / 7),
    ]
    assert funnel.drop_off == [0, 3, 2]
    assert funnel.to_csv() == (
        "period,visit,signup,pay\r\n"
        "2026-03-12,4,2,1\r\n"
        "2026-03-13,2,1,1\r\n"
        "2026-03-14,1,1,0\r\n"
        "total,7,4,2\r\n"
    )
    assert funnel.to_json() == {
        "steps": steps,
        "time_group": "days",
        "num_periods": 3,
        "within": 1,
        "dates": [
            "2026-03-12T00:00:00+00:00",
            "2026-03-13T00:00:00+00:00",
            "2026-03-14T00:00:00+00:00",
        ],
        "rows": [[4, 2, 1], [2, 1, 1], [1, 1, 0]],
        "counts": [7, 4, 2],
        "conversion_from_previous": [100.0, pytest.approx(400 / 7), 50.0],
        "conversion_from_first": [
            100.0,
            pytest.approx(400 / 7),
            pytest.approx(200 / 7),
        ],
    }
    reference = Reference(marks).funnel(steps, "days", 3, 1, NOW)
    assert (reference.dates, reference.rows) == (funnel.dates, funnel.rows)


def test_a_funnel_within_0_counts_the_entry_period_only(layout: Layout) -> None:
    marks = hand_marks(layout, FUNNEL_MARKS)
    app = layout.app_with(marks)
    steps = ["visit", "signup", "pay"]
    with app.app_context():
        funnel = get_funnel(steps, "days", num_periods=3, within=0, now=NOW)
    # Only 1 (on the 12th) and 7 (on the 14th) sign up on their entry day.
    assert funnel.rows == [[4, 1, 0], [2, 0, 0], [1, 1, 0]]
    assert funnel.counts == [7, 2, 0]
    assert funnel.conversion_from_previous == [100.0, pytest.approx(200 / 7), 0.0]
    assert funnel.drop_off == [0, 5, 2]
    reference = Reference(marks).funnel(steps, "days", 3, 0, NOW)
    assert reference.rows == funnel.rows


def test_a_funnel_nobody_entered(layout: Layout) -> None:
    app = layout.app_with(hand_marks(layout, FUNNEL_MARKS))
    with app.app_context():
        funnel = get_funnel(["pay", "visit"], "weeks", num_periods=2, now=day(1))
    assert funnel.dates == [
        datetime(2026, 2, 16, tzinfo=UTC),
        datetime(2026, 2, 23, tzinfo=UTC),
    ]
    assert funnel.rows == [[0, 0], [0, 0]]
    assert funnel.counts == [0, 0]
    assert funnel.conversion_from_previous == [None, None]
    assert funnel.conversion_from_first == [None, None]
    assert funnel.drop_off == [0, 0]


LIFECYCLE_MARKS = [
    *[("play", 1, day(n)) for n in range(10, 15)],  # every day
    ("play", 2, day(12)),
    ("play", 2, day(14)),
    ("play", 3, day(11)),
    ("play", 3, day(12)),
    ("play", 4, day(13)),
    ("play", 5, day(10)),
    # 2's first game, long before, written last.
    ("play", 2, day(1)),
]


def test_a_lifecycle_of_four_days(layout: Layout) -> None:
    marks = hand_marks(layout, LIFECYCLE_MARKS)
    app = layout.app_with(marks)
    with app.app_context():
        rows = get_lifecycle("play", "days", num_periods=4, now=NOW)
    assert [row.date for row in rows] == midnights(11, 12, 13, 14)
    # (new, returning, resurrecting, dormant):
    # 11th: 3 new, 1 returning, 5 (played on the 10th) dormant.
    # 12th: 1 and 3 returning, 2 resurrecting (played on the 1st).
    # 13th: 4 new, 1 returning, 2 and 3 dormant.
    # 14th: 1 returning, 2 resurrecting, 4 dormant.
    assert [
        (row.new, row.returning, row.resurrecting, row.dormant) for row in rows
    ] == [
        (1, 1, 0, 1),
        (0, 2, 1, 0),
        (1, 1, 0, 2),
        (0, 1, 1, 1),
    ]
    assert [row.active for row in rows] == [2, 3, 2, 2]
    assert rows[0].to_json() == {
        "date": "2026-03-11T00:00:00+00:00",
        "new": 1,
        "returning": 1,
        "resurrecting": 0,
        "dormant": 1,
    }
    reference = Reference(marks).lifecycle("play", "days", 4, NOW)
    assert lifecycle_counts(reference) == lifecycle_counts(rows)


STICKINESS_MARKS = [
    ("read", 1, day(9)),
    ("read", 1, day(10, 8)),
    ("read", 1, day(10, 20)),  # a second read on the 10th: still one day
    ("read", 1, day(11)),
    ("read", 2, day(14)),
    *[("read", 3, day(n)) for n in range(9, 15)],
    ("read", 4, day(8)),  # the Sunday before the week
    ("read", 4, day(9)),
    ("read", 5, day(16)),  # the Monday after it
]


def test_stickiness_in_a_week_and_a_month(layout: Layout) -> None:
    marks = hand_marks(layout, STICKINESS_MARKS)
    app = layout.app_with(marks)
    with app.app_context():
        week = get_stickiness("read", "weeks", now=NOW)
        month = get_stickiness("read", "month", now=NOW)
    # The week of the 9th to the 15th: 2 and 4 on one day, 1 on three, 3 on six.
    assert week == [2, 0, 1, 0, 0, 1, 0]
    # March: 2 and 5 on one day, 4 on two, 1 on three, 3 on six; 31 days.
    assert month == [2, 1, 1, 0, 0, 1] + [0] * 25
    reference = Reference(marks)
    assert reference.stickiness("read", "weeks", NOW) == week
    assert reference.stickiness("read", "months", NOW) == month


COHORT_MARKS = [
    ("signup", 1, day(12)),
    ("play", 1, day(12)),
    ("play", 1, day(13)),
    ("signup", 2, day(12)),
    ("play", 2, day(13)),
    ("signup", 3, day(13)),
    ("play", 3, day(14)),
    ("signup", 4, day(13)),
    ("signup", 4, day(14)),
    ("play", 4, day(14)),
    ("signup", 5, day(14)),
    # Imported last, with an older now=: the first signups of 2 and 5.
    ("signup", 2, datetime(2025, 11, 2, 10, tzinfo=UTC)),
    ("signup", 5, datetime(2026, 1, 5, 10, tzinfo=UTC)),
]

#: The four tables of COHORT_MARKS, 3 days by 3, without replacement.
#: Recurring rows: 12th {1, 2}, 13th {3, 4}, 14th {4, 5}. First-time rows:
#: 12th {1}, 13th {3, 4}, 14th none (4 signed up on the 13th, 5 in January).
COHORT_TABLES = {
    ("recurring", "on"): [[1, 1, 0], [0, 2, None], [1, None, None]],
    ("recurring", "on_or_after"): [[2, 2, 0], [2, 2, None], [1, None, None]],
    ("first_time", "on"): [[1, 0, 0], [0, 2, None], [None, None, None]],
    ("first_time", "on_or_after"): [[1, 1, 0], [2, 2, None], [None, None, None]],
}
COHORT_TOTALS = {"recurring": [2, 2, 2], "first_time": [1, 2, 0]}


@pytest.mark.parametrize(("cohort", "retention"), COHORT_TABLES)
def test_a_cohort_in_each_mode(layout: Layout, cohort: str, retention: str) -> None:
    marks = hand_marks(layout, COHORT_MARKS)
    app = layout.app_with(marks)
    modes: dict[str, Any] = {"cohort": cohort, "retention": retention}
    with app.app_context():
        got = get_cohort("signup", "play", num_rows=3, num_cols=3, now=NOW, **modes)
        cell = get_cohort_cell(
            "signup", "play", num_rows=3, num_cols=3, now=NOW, row=1, column=1, **modes
        )
        assert set(cell) == {layout.user(3), layout.user(4)}
    expected = (
        COHORT_TABLES[cohort, retention],
        midnights(12, 13, 14),
        COHORT_TOTALS[cohort],
    )
    assert got == expected
    assert (
        Reference(marks).cohort("signup", "play", [], "days", 3, 3, False, NOW, **modes)
        == expected
    )


def test_a_cohorts_defaults_are_todays_recurring_on_cohort(layout: Layout) -> None:
    marks = hand_marks(layout, COHORT_MARKS)
    app = layout.app_with(marks)
    for with_replacement in (False, True):
        arguments: dict[str, Any] = {
            "num_rows": 3,
            "num_cols": 3,
            "with_replacement": with_replacement,
            "now": NOW,
        }
        with app.app_context():
            default = get_cohort("signup", "play", **arguments)
            explicit = get_cohort(
                "signup", "play", **arguments, cohort="recurring", retention="on"
            )
        # tests/model.py is the model of the cohort before issue 15 (typed
        # with int ids; it only hashes them).
        before = Model(marks).cohort(  # type: ignore[arg-type]
            "signup", "play", [], "days", 3, 3, with_replacement, NOW
        )
        assert default == explicit == before


def test_every_report_of_an_empty_store(layout: Layout) -> None:
    app = layout.app_with([])
    with app.app_context():
        for cohort in ("recurring", "first_time"):
            for retention in ("on", "on_or_after"):
                assert get_cohort(
                    "signup", "play", num_rows=2, num_cols=2, now=NOW,
                    cohort=cohort, retention=retention,
                ) == ([[None, None], [None, None]], midnights(13, 14), [0, 0])  # fmt: skip
        funnel = get_funnel(["visit", "pay"], num_periods=2, now=NOW)
        lifecycle = get_lifecycle("play", "months", num_periods=2, now=NOW)
        stickiness = get_stickiness("play", now=NOW)
    assert (funnel.dates, funnel.rows) == (midnights(13, 14), [[0, 0], [0, 0]])
    assert [row.to_json() for row in lifecycle] == [
        {"date": f"2026-0{month}-01T00:00:00+00:00", "new": 0, "returning": 0,
         "resurrecting": 0, "dormant": 0}
        for month in (2, 3)
    ]  # fmt: skip
    assert stickiness == [0] * 7

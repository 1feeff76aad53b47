"""The limits of the reports' history: a cluster where the history probe
has nothing to probe (scripts that start before 1970), marks outside
1970..2099 through every door (write_marks under them all), times beyond what
a datetime holds, and reports that reach before year 1. Each test failed
before its fix (a second review's findings).

The history itself was checked against a brute-force reference of plain
Python sets (no package code): first-time cohorts of 1000 x 1 days, 600 x 1
weeks, 501 x 1 months and years, 1 x 1000, and lifecycles of 250 to 450
periods, on bitmapist's layout, the sharded layout with months in some
shards only, and a cluster.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import TEST_SHARD_BITS, AppFactory

from flask_bitmapist import (
    get_cohort,
    get_cohort_row,
    get_funnel,
    get_lifecycle,
    mark_event,
)
from flask_bitmapist.report.events import FieldError
from flask_bitmapist.store.writer import (
    Mark,
    MarkOutsideYears,
    PartialWrite,
    is_outage,
    write_marks,
)
from flask_bitmapist.testing import ClusterProcess
from flask_bitmapist.track.importer import MalformedLine, read_marks

UTC = timezone.utc


# --- a brute-force reference, on Python sets


def start_of(group: str, day: date) -> date:
    if group == "days":
        return day
    if group == "weeks":
        return day - timedelta(days=day.weekday())
    if group == "months":
        return day.replace(day=1)
    return date(day.year, 1, 1)


def shifted(group: str, start: date, count: int) -> date:
    if group == "days":
        return start + timedelta(days=count)
    if group == "weeks":
        return start + timedelta(weeks=count)
    if group == "months":
        months = start.year * 12 + start.month - 1 + count
        return date(months // 12, months % 12 + 1, 1)
    return date(start.year + count, 1, 1)


def first_time_totals(
    marks: list[tuple[str, int, datetime]],
    event: str,
    group: str,
    rows: int,
    now: datetime,
) -> list[int]:
    """Each row's users whose earliest mark of ``event`` is in the row."""
    firsts: dict[Any, date] = {}
    for name, user, when in marks:
        if name == event:
            firsts[user] = min(firsts.get(user, when.date()), when.date())
    last = start_of(group, now.date())
    return [
        sum(
            1
            for first in firsts.values()
            if start_of(group, first) == shifted(group, last, offset)
        )
        for offset in range(1 - rows, 1)
    ]


def lifecycle_reference(
    marks: list[tuple[str, int, datetime]],
    event: str,
    group: str,
    periods: int,
    now: datetime,
) -> list[tuple[int, int, int, int]]:
    """(new, returning, resurrecting, dormant) of each period."""
    days: dict[Any, set[date]] = defaultdict(set)
    for name, user, when in marks:
        if name == event:
            days[user].add(when.date())
    last = start_of(group, now.date())
    rows = []
    for offset in range(1 - periods, 1):
        start = shifted(group, last, offset)
        previous = shifted(group, start, -1)
        active = {
            u for u, ds in days.items() if any(start_of(group, d) == start for d in ds)
        }
        before = {
            u
            for u, ds in days.items()
            if any(start_of(group, d) == previous for d in ds)
        }
        earlier = {u for u, ds in days.items() if any(d < start for d in ds)}
        rows.append(
            (
                len(active - earlier),
                len(active & before),
                len((active - before) & earlier),
                len(before - active),
            )
        )
    return rows


@pytest.fixture
def cluster_app(make_app: AppFactory, redis_cluster: ClusterProcess) -> Any:
    """An app on the session's cluster (sharded layout, 8 ids a shard),
    emptied, with ``marks`` written."""

    def build(marks: list[tuple[str, int, datetime]]) -> Any:
        redis_cluster.flushall()
        app = make_app(redis_url=redis_cluster.url, shard_bits=TEST_SHARD_BITS)
        with app.app_context():
            for event, user, when in marks:
                mark_event(event, user, now=when)
        return app

    return build


# --- the history probe on a cluster


CLUSTER_MARKS = [
    ("a", 3, datetime(1970, 2, 1, tzinfo=UTC)),
    ("a", 17, datetime(1999, 12, 31, 23, tzinfo=UTC)),
    ("a", 17, datetime(2025, 6, 1, tzinfo=UTC)),
    ("a", 40, datetime(2026, 1, 2, tzinfo=UTC)),
]


def test_a_long_yearly_lifecycle_on_a_cluster_whose_scripts_start_before_1970(
    cluster_app: Any,
) -> None:
    """Before its fix (medium, cluster only): get_lifecycle of more than 200 periods first
    probes which history keys exist (history.existing_periods). When every
    script's first period starts in or before January 1970 (years, 257 to
    366 periods in 2026: `flask bitmapist lifecycle EVENT --per years
    --periods 300`, within the CLI's bounds), the probe has no key at all;
    its program is sent to the cluster with KEYS = [] and
    backend._execute_on_nodes raises IndexError (keys[0]) instead of
    answering. On one node the same call answers.

    Expected: the lifecycle (as on one node and as the reference): skip the
    probe when it has no candidate (existing_periods returns set()), or
    route a keyless program by its shard."""
    app = cluster_app(CLUSTER_MARKS)
    now = datetime(2026, 3, 14, 12, tzinfo=UTC)
    with app.app_context():
        rows = get_lifecycle("a", "years", 300, now=now)
    assert [(r.new, r.returning, r.resurrecting, r.dormant) for r in rows] == (
        lifecycle_reference(CLUSTER_MARKS, "a", "years", 300, now)
    )


def test_a_first_time_cohort_on_a_cluster_whose_scripts_start_before_1970(
    cluster_app: Any,
) -> None:
    """Before its fix (medium, cluster only): the same defect through get_cohort: a
    first-time cohort of more than 500 cells whose scripts all start before
    February 1970 (1000 x 1 years up to 1970) sends a probe without keys to
    the cluster: IndexError.

    Expected: the table (row totals as the reference's)."""
    app = cluster_app(CLUSTER_MARKS)
    now = datetime(1970, 6, 1, tzinfo=UTC)
    with app.app_context():
        _, _, totals = get_cohort(
            "a", "a", None, "years", 1000, 1, now=now, cohort="first_time"
        )
    assert totals == first_time_totals(CLUSTER_MARKS, "a", "years", 1000, now)


# --- the doors of marks


def test_write_marks_refuses_marks_outside_1970_to_2099(
    make_app: AppFactory, client: Any
) -> None:
    """Before its fix (low): write_marks, under every door, wrote a Mark of
    1969 or 2100 as it was, so a user of 1969-12-31 and 1970-01-02 was "new"
    on 1970-01-02. Now such marks are refused as a full id map's are (a
    PartialWrite whose error is MarkOutsideYears, no outage), and the rest of
    the batch is written."""
    early = Mark("a", 1, datetime(1969, 12, 31, 12, tzinfo=UTC), False, False)
    good = Mark("a", 2, datetime(2024, 5, 1, 12, tzinfo=UTC), False, False)
    late = Mark("a", 3, datetime(2100, 1, 1, 12, tzinfo=UTC), False, False)
    app = make_app()
    with app.app_context():
        store = app.extensions["bitmapist"].state(app).store
        with pytest.raises(PartialWrite) as caught:
            write_marks(store, [early, good, late])
    assert isinstance(caught.value.error, MarkOutsideYears)
    assert not is_outage(caught.value.error)
    assert str(caught.value.error) == (
        "2 marks have times outside 1970 to 2099 (UTC), the first "
        "1969-12-31T12:00:00+00:00."
    )
    assert (caught.value.unwritten, caught.value.refused) == ([], [early, late])
    assert sorted(client.keys("*")) == [
        b"trackist_a_2024-5",
        b"trackist_a_2024-5-1",
        b"trackist_a_W2024-18",
    ]
    assert client.getbit("trackist_a_2024-5-1", 2) == 1


def test_the_background_writer_drops_a_mark_outside_the_years_and_writes_the_rest(
    make_app: AppFactory, client: Any
) -> None:
    """One mark of a wrong year, submitted to the writer directly, costs its
    own mark, counted as dropped, not its batch."""
    app = make_app(write_mode="background")
    late = Mark("a", 3, datetime(2100, 1, 1, 12, tzinfo=UTC), False, False)
    good = Mark("a", 2, datetime(2024, 5, 1, 12, tzinfo=UTC), False, False)
    writer = app.extensions["bitmapist"].state(app).writer
    writer.submit_many([late, good])
    # flush tells that a mark was dropped since the last call.
    assert writer.flush(timeout=10) is False
    stats = writer.stats()
    assert (stats.written, stats.dropped) == (1, 1)
    assert client.getbit("trackist_a_2024-5-1", 2) == 1
    assert client.keys("*2100*") == []


def test_a_time_beyond_datetimes_range_in_utc_is_refused_as_a_value_error() -> None:
    """Before its fix (low): layout.to_mark_time converts with astimezone before checking
    the years, so an aware time whose UTC falls outside datetime's range
    (0001-01-01T00:00+01:00, 9999-12-31T23:59-01:00) raises OverflowError,
    not the ValueError that mark_event and parse_time document. read_marks
    catches ValueError only, so one such line aborts the whole
    `flask bitmapist import` with a traceback instead of being skipped as a
    malformed line.

    Expected: a ValueError (the time is outside 1970..2099 anyway): the
    line is a MalformedLine, and mark_event raises ValueError."""
    lines = [
        "event,user,time",
        "a,1,2024-01-01T00:00:00Z",
        "a,2,0001-01-01T00:00:00+01:00",
        "a,3,9999-12-31T23:59:00-01:00",
    ]
    items = [item for _, item in read_marks(lines, "csv")]
    assert isinstance(items[0], Mark)
    assert all(isinstance(item, MalformedLine) for item in items[1:])
    with pytest.raises(ValueError):
        mark_event("a", 1, now=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))


# --- reports at the start of datetime's range


def test_reports_reaching_before_year_1_raise_a_value_error(
    make_app: AppFactory,
) -> None:
    """Before its fix (low): The first review made get_stickiness at 9999-12-31 answer or
    raise a FieldError rather than OverflowError; at the other end, the new
    reports still raise OverflowError ("date value out of range") when a
    period they read lies before 0001-01-01: get_lifecycle("a", "days", 3,
    now=0001-01-01) (the period before the first), get_funnel(["a", "b"],
    "weeks", now=0001-01-08) and get_cohort_row("a", "days", 3,
    now=0001-01-01, row=0, cohort="first_time"). Their docstrings promise
    ValueError (a FieldError naming the argument) for an invalid argument;
    get_lifecycle with years already raises ValueError ("year -1 is out of
    range").

    Now: a FieldError naming ``now``."""
    app = make_app()
    first = datetime(1, 1, 1, tzinfo=UTC)
    with app.app_context():
        for call in (
            lambda: get_lifecycle("a", "days", 3, now=first),
            lambda: get_funnel(
                ["a", "b"],
                "weeks",
                num_periods=3,
                within=3,
                now=first + timedelta(days=7),
            ),
            lambda: get_cohort_row(
                "a", "days", 3, now=first, row=0, cohort="first_time"
            ),
        ):
            with pytest.raises(FieldError) as caught:
                call()
            assert caught.value.field == "now"
            assert caught.value.reason.startswith(
                "is too close to the first or last day a date can hold"
            )

"""The edges of the retention modes, funnels, lifecycle and stickiness that
a review found wrong, each test failing before its fix: what the pages link
to, what the downloads are called, the bounds of dates and of the write
paths, and what a report costs.

The numbers themselves are checked against a plain-Python reference in
tests/test_reports.py. Costs are counted, never timed: the EXISTS that Redis
ran, read from ``INFO commandstats`` of a private redis-server that no other
test shares.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from conftest import AppFactory
from flask import Flask

from flask_bitmapist import CohortRequest, get_stickiness, mark_event
from flask_bitmapist.report.events import FieldError
from flask_bitmapist.testing import RedisProcess
from flask_bitmapist.track.seed import seed_events

UTC = timezone.utc
PREFIX = "/bitmapist"


def _app_with(make_app: AppFactory, marks: list[tuple[str, int, datetime]]) -> Flask:
    app = make_app()
    with app.app_context():
        for event, user, when in marks:
            mark_event(event, user, now=when)
    return app


@pytest.fixture
def counted_redis(private_redis: RedisProcess) -> Iterator[redis.Redis]:
    """A client of a redis-server of the test's own, whose command counts
    only this test's requests add to."""
    client = redis.Redis(port=private_redis.port)
    yield client
    client.close()


def _exists_calls(client: redis.Redis) -> int:
    # redis-py types info() as possibly awaitable; this client is sync.
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    return int(stats.get("cmdstat_exists", {}).get("calls", 0))


# --- the dashboard


def test_first_time_row_total_links_to_users_of_that_total(
    make_app: AppFactory,
) -> None:
    """Before its fix (a review's finding, medium): In a first-time heatmap, a row total counts the
    users who did the primary event FOR THE FIRST TIME in the row's period,
    but its link goes to /users/event/<primary>, which lists EVERY user who
    did the primary event in that period: the total says 1 and the page it
    opens lists 2 (user 1 had done "a" five days before).

    Expected: the users behind a row total are the users it counts (link a
    first-time total to a page of the row's first-time users, or do not
    link it)."""
    now = datetime.now(UTC)
    app = _app_with(
        make_app,
        [
            ("a", 1, now - timedelta(days=5)),
            ("a", 1, now),
            ("a", 2, now),
            ("b", 1, now),
        ],
    )
    client = app.test_client()
    page = client.get(
        f"{PREFIX}/cohort",
        query_string={
            "primary_event": "a",
            "secondary_event": "b",
            "cohort": "first_time",
            "num_rows": "1",
            "num_cols": "1",
        },
    )
    assert page.status_code == 200
    cell = re.search(
        r'<td class="num users"><a href="([^"]+)">(\d+)</a></td>', page.text
    )
    assert cell is not None
    link, total = html.unescape(cell[1]), int(cell[2])
    assert total == 1
    behind = client.get(f"{link}&format=json")
    assert behind.status_code == 200
    assert behind.get_json()["count"] == total


def test_cohort_csv_tells_its_retention_modes_apart(make_app: AppFactory) -> None:
    """Before its fix (a review's finding, low): The issue says the cohort's JSON/CSV "carry the two
    choices", and docs/reports.md that "the GET link, the JSON
    (request.cohort, request.retention) and the CSV carry both choices". The
    CSV download carries neither: neither its body nor its file name says
    first_time or on_or_after, so a first-time, on-or-after download is the
    same file as a recurring, on one whenever their numbers agree.

    Expected: the CSV (a heading line, or at least its file name) names the
    modes, so the two downloads below differ."""
    now = datetime.now(UTC)
    app = _app_with(make_app, [("a", 1, now), ("b", 2, now)])
    client = app.test_client()
    base = {"primary_event": "a", "secondary_event": "b", "format": "csv"}
    default = client.get(f"{PREFIX}/cohort", query_string=base)
    modes = client.get(
        f"{PREFIX}/cohort",
        query_string={**base, "cohort": "first_time", "retention": "on_or_after"},
    )
    assert default.status_code == modes.status_code == 200
    assert (
        modes.headers["Content-Disposition"],
        modes.text,
    ) != (default.headers["Content-Disposition"], default.text)


def test_on_or_after_cells_are_all_still_running(make_app: AppFactory) -> None:
    """Before its fix (a review's finding, low): With retention="on_or_after", every cell counts the
    row's users who came back in its period OR ANY LATER ONE UP TO NOW'S, so
    every cell (not only the diagonal of now's period) can still grow while
    now's period runs. CohortReport.is_running, and so the heatmap's hatching
    and its note "Hatched: the current day, still running: its count can
    still grow.", mark only the diagonal: cell (0, 0) below is 0 and turns 1
    when user 1 plays later today, yet is not marked running.

    Expected: in on_or_after mode is_running is true for every cell that is
    not None (and the note says so)."""
    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    app = _app_with(make_app, [("a", 1, now - timedelta(days=1))])
    request = CohortRequest(
        "a", "b", num_rows=2, num_cols=2, retention="on_or_after", cohort="recurring"
    )
    with app.app_context():
        before = request.run(now=now)
        mark_event("b", 1, now=now)
        after = request.run(now=now)
    assert (before.cohort[0][0], after.cohort[0][0]) == (0, 1)
    assert before.is_running(0, 0)


# --- the API's contracts


def test_stickiness_at_the_end_of_time_raises_a_value_error(
    make_app: AppFactory,
) -> None:
    """Before its fix (a review's finding, low): get_stickiness(now=9999-12-31) raises OverflowError
    ("date value out of range", from the week's end in year 10000), which is
    not the ValueError (FieldError naming the argument) its docstring
    promises; event_history, count_events and get_cohort answer for the same
    ``now``.

    Expected: a FieldError naming ``now``, or the counts of the days that
    exist."""
    app = make_app()
    with app.app_context():
        try:
            counts = get_stickiness("a", "weeks", now=datetime(9999, 12, 31))
        except FieldError as error:
            assert error.field == "now"
        else:
            assert counts == [0] * 7


def test_seed_refuses_marks_before_1970(make_app: AppFactory) -> None:
    """Before its fix (a review's finding, low): "First time", "new" and "resurrecting" read an event's
    history from January 1970 only, which is sound because marks before 1970
    are refused (docs/reports.md, report/history.py: "older ones are
    refused"). mark_event and the import refuse them, but seed_events (and
    write_marks under it) write them: seeding 30 days up to 1970-01-10
    writes keys of December 1969. Then a user active on 1969-12-31 and
    1970-01-02 is "new" on 1970-01-02 in get_lifecycle(num_periods=1) but
    "resurrecting" on the same day with num_periods=3, and a first-time
    cohort counts them as first-timers of 1970.

    Expected: seed_events refuses a run that starts before 1970 with a
    ValueError (or write_marks refuses such marks), as mark_event does."""
    app = make_app()
    with app.app_context():
        store = app.extensions["bitmapist"].state(app).store
        with pytest.raises(ValueError, match="1970"):
            seed_events(store, users=20, days=30, now=datetime(1970, 1, 10))


# --- costs


def test_users_of_a_first_time_cell_cost_no_more_for_a_far_date(
    make_app: AppFactory, counted_redis: redis.Redis, private_redis: RedisProcess
) -> None:
    """Before its fix (a review's finding, medium): /users/cohort takes ``date`` up to 9999-12-31, and a
    first-time cell reads the primary event's history with an EXISTS per
    month from 1970 to the row's period (twice: the count, then the page):
    about 190,000 EXISTS (and as many keys in the scripts) for one page,
    instead of about 1,400 today. Measured:
    1.4 s on one node; on the sharded layout with 64 shards 44 s, and with
    num_rows=366 a 503 ("Timeout writing to socket": the script's keys no
    longer fit). No other bound of the dashboard lets a request cost that.

    Expected: a first-time cell of a far date costs no more than one of
    today (refuse a ``date`` far after today with a 400 naming ``date``, or
    bound the history by the months that exist)."""
    app = make_app(redis_url=f"{private_redis.url}/0", query_engine="redis")
    with app.app_context():
        mark_event("a", 1, now=datetime(2026, 3, 5, tzinfo=UTC))
    client = app.test_client()
    query = {
        "primary_event": "a",
        "secondary_event": "b",
        "cohort": "first_time",
        "num_rows": "1",
        "num_cols": "1",
        "row": "0",
        "column": "0",
        "format": "json",
    }
    before = _exists_calls(counted_redis)
    today = client.get(f"{PREFIX}/users/cohort", query_string=query)
    cost_today = _exists_calls(counted_redis) - before
    before = _exists_calls(counted_redis)
    far = client.get(
        f"{PREFIX}/users/cohort", query_string={**query, "date": "9999-12-31"}
    )
    cost_far = _exists_calls(counted_redis) - before
    assert today.status_code == 200
    assert 0 < cost_today < 2000
    assert far.status_code in (200, 400)
    assert cost_far <= cost_today


def test_first_time_cohort_reads_the_history_once_not_per_500_cells(
    make_app: AppFactory, counted_redis: redis.Redis, private_redis: RedisProcess
) -> None:
    """Before its fix (a review's finding, medium (performance)): A first-time cohort rebuilds the
    primary event's history (an EXISTS for each month since 1970, about 680)
    in every script of 500 cells, on every shard. The dashboard's largest
    first-time table, 366 rows x 54 columns, runs 41 scripts: 26,000 EXISTS
    on one node where 10 x 10 costs 700, and on the sharded layout with 64
    shards 1.68 million EXISTS, 6.6 s for one page (10 x 10: 0.2 s).

    Expected: the history's cost does not grow with the table (learn which
    month keys exist once per query, then OR only those in each script, or
    another way), here at most twice that of a 10 x 10 table."""
    app = make_app(redis_url=f"{private_redis.url}/0", query_engine="redis")
    now = datetime.now(UTC)
    with app.app_context():
        for user in range(40):
            mark_event("a", user, now=now - timedelta(days=user * 7))
    client = app.test_client()

    def cost(rows: int, cols: int) -> int:
        before = _exists_calls(counted_redis)
        response = client.get(
            f"{PREFIX}/cohort",
            query_string={
                "primary_event": "a",
                "secondary_event": "b",
                "cohort": "first_time",
                "num_rows": str(rows),
                "num_cols": str(cols),
                "format": "json",
            },
        )
        assert response.status_code == 200
        return _exists_calls(counted_redis) - before

    small = cost(10, 10)
    assert small > 0
    assert cost(366, 54) <= 2 * small

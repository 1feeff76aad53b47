"""The dashboard blueprint over HTTP: access, cross-site requests, pages, the
cohort API and its bounds and errors, the 0.1.x endpoints, escaping, and Redis
being away. The browser test is test_browser.py."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import AppFactory, RoundTrips
from flask import Flask, url_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

import flask_bitmapist
from flask_bitmapist import CohortRequest, get_cohort, mark_event
from flask_bitmapist.report.cohort import MAX_CELLS
from flask_bitmapist.report.events import count_events
from flask_bitmapist.testing import free_port

XSS = "<img/src=x/onerror=alert(1)>"
NOW = datetime.now(timezone.utc)


def mark_days(app: Flask, event: str, users_by_day: dict[int, range]) -> None:
    """Mark ``event`` for each day ``days_ago`` with its users."""
    with app.app_context():
        for days_ago, users in users_by_day.items():
            for user in users:
                mark_event(event, user, now=NOW - timedelta(days=days_ago))


def seed(app: Flask) -> Flask:
    """Three days of signups, plays and payments of users 0..19 (shards 0,
    1 and 2 of the tests' sharded stores)."""
    mark_days(app, "signup", {0: range(0, 10), 1: range(10, 16), 2: range(16, 20)})
    mark_days(app, "play", {0: range(0, 4), 1: range(10, 13), 2: range(16, 20)})
    mark_days(app, "play", {0: range(10, 11), 1: range(16, 18)})
    mark_days(app, "pay", {0: range(0, 2), 1: range(16, 17)})
    return app


@pytest.fixture
def seeded(app: Flask) -> Flask:
    """The seeded data in bitmapist's layout on one node: for the tests of
    access, requests and rendering, which do not depend on the store."""
    return seed(app)


@pytest.fixture
def store_seeded(store_app: Flask) -> Flask:
    """The seeded data on each of conftest.STORES: for the tests of the
    counts, histories and cohorts the pages show."""
    return seed(store_app)


# Access


def test_testing_app_opens_the_dashboard_at_the_default_prefix(app: Flask) -> None:
    response = app.test_client().get("/bitmapist/")
    assert response.status_code == 200
    assert "<h1>Events</h1>" in response.text


def test_production_app_answers_403_saying_how_to_open_it(
    make_app: AppFactory,
) -> None:
    app = make_app(testing=False)
    for path in ("/bitmapist/", "/bitmapist/cohort", "/bitmapist/event/signup"):
        response = app.test_client().get(path)
        assert response.status_code == 403
        assert "BITMAPIST_DASHBOARD_ACCESS" in response.text
    response = app.test_client().post("/bitmapist/cohort", json={})
    assert response.status_code == 403
    assert response.get_json() == {
        "error": "The dashboard is closed: see BITMAPIST_DASHBOARD_ACCESS."
    }


def test_debug_app_opens_the_dashboard(make_app: AppFactory) -> None:
    app = make_app(testing=False)
    app.debug = True
    assert app.test_client().get("/bitmapist/").status_code == 200


@pytest.mark.parametrize(
    ("testing", "verdict", "status"),
    [(False, True, 200), (False, False, 403), (True, False, 403), (False, 1, 403)],
)
def test_access_callable_decides_alone(
    make_app: AppFactory, testing: bool, verdict: Any, status: int
) -> None:
    app = make_app(testing=testing, dashboard_access=lambda: verdict)
    assert app.test_client().get("/bitmapist/").status_code == status


def test_access_callable_sees_the_request(make_app: AppFactory) -> None:
    from flask import request

    app = make_app(
        testing=False, dashboard_access=lambda: request.headers.get("X-Admin") == "yes"
    )
    client = app.test_client()
    assert client.get("/bitmapist/", headers={"X-Admin": "yes"}).status_code == 200
    assert client.get("/bitmapist/", headers={"X-Admin": "no"}).status_code == 403


def test_access_callable_that_raises_denies_and_logs(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> bool:
        raise LookupError("no user loader")

    app = make_app(testing=False, dashboard_access=broken)
    assert app.test_client().get("/bitmapist/").status_code == 403
    assert "BITMAPIST_DASHBOARD_ACCESS raised" in caplog.text


def test_static_files_are_served_while_closed(make_app: AppFactory) -> None:
    response = (
        make_app(testing=False).test_client().get("/bitmapist/static/dashboard.js")
    )
    assert response.status_code == 200
    assert "setUpCohortForm" in response.text


def test_url_prefix_and_disable_blueprint(make_app: AppFactory) -> None:
    moved = make_app(url_prefix="/admin/analytics/", name="moved")
    assert moved.test_client().get("/admin/analytics/").status_code == 200
    assert moved.test_client().get("/bitmapist/").status_code == 404
    disabled = make_app(disable_blueprint=True, name="disabled")
    assert disabled.test_client().get("/bitmapist/").status_code == 404
    assert "bitmapist" not in disabled.blueprints


def test_every_page_sends_a_strict_content_security_policy(seeded: Flask) -> None:
    client = seeded.test_client()
    responses = [
        (200, client.get("/bitmapist/")),
        (200, client.get("/bitmapist/events")),
        (200, client.get("/bitmapist/event/signup")),
        (200, client.get("/bitmapist/cohort")),
        (
            200,
            client.post(
                "/bitmapist/cohort",
                json={"primary_event": "a", "secondary_event": "b"},
            ),
        ),
        (404, client.get("/bitmapist/event/plya")),
        (415, client.post("/bitmapist/cohort", data="{}")),
        (403, client.get("/bitmapist/", headers={"Sec-Fetch-Site": "cross-site"})),
    ]
    for status, response in responses:
        assert response.status_code == status
        policy = response.headers["Content-Security-Policy"]
        assert policy.startswith(
            "default-src 'self'; script-src 'self'; style-src 'self'"
        )
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script>" not in response.text
        assert " style=" not in response.text
        assert "http://" not in response.text and "https://" not in response.text


# Pages


def rows_of(html: str) -> dict[str, list[int]]:
    """The overview's rows: event name (as shown) to its four counts."""
    found = {}
    for row in re.findall(r"<tr data-event=.*?</tr>", html, re.S):
        name = re.search(r'<a href="[^"]*">(.*?)</a>', row).group(1)  # type: ignore[union-attr]
        found[name] = [
            int(value) for value in re.findall(r'<td class="num">(\d+)</td>', row)
        ]
    return found


def test_overview_lists_every_event_with_its_four_counts(store_app: Flask) -> None:
    app = store_app
    last_year = NOW.replace(year=NOW.year - 1)
    # Users of different shards (0, 1, 2, 12) of the sharded stores.
    with app.app_context():
        mark_event("visit", 1, now=NOW)
        mark_event("visit", 9, now=NOW)
        mark_event("visit", 17, now=NOW.replace(day=1) - timedelta(days=1))
        mark_event("visit", 100, now=last_year)
        mark_event("old", 5, now=last_year)
    html = app.test_client().get("/bitmapist/").text
    rows = rows_of(html)
    assert list(rows) == ["old", "visit"]
    assert rows["old"] == [0, 0, 0, 0]
    previous_month = NOW.replace(day=1) - timedelta(days=1)
    same_week = previous_month.isocalendar()[:2] == NOW.isocalendar()[:2]
    same_year = previous_month.year == NOW.year
    assert rows["visit"] == [2, 2 + same_week, 2, 2 + same_year]


def test_overview_counts_cost_one_round_trip_however_many_events(
    app: Flask, round_trips: RoundTrips
) -> None:
    names = [f"event{index}" for index in range(60)]
    with app.app_context():
        for index, name in enumerate(names):
            mark_event(name, index, now=NOW)
        before = round_trips.count
        counts = count_events(names, now=NOW)
        assert round_trips.count - before == 1
    assert all(counts[name].day == 1 and counts[name].year == 1 for name in names)


def test_overview_filters_by_prefix_and_rejects_bad_ones(store_seeded: Flask) -> None:
    client = store_seeded.test_client()
    assert list(rows_of(client.get("/bitmapist/?prefix=p").text)) == ["pay", "play"]
    response = client.get("/bitmapist/?prefix=a%20b")
    assert response.status_code == 400
    assert "prefix must be the start of an event name" in response.text


def test_overview_shows_the_writer_counters(store_seeded: Flask) -> None:
    html = store_seeded.test_client().get("/bitmapist/").text
    marks = 10 + 6 + 4 + 4 + 3 + 4 + 1 + 2 + 2 + 1
    assert f"<dt>Queued</dt><dd>{marks}</dd>" in html
    assert f"<dt>Written</dt><dd>{marks}</dd>" in html
    assert "<dt>Dropped</dt><dd>0</dd>" in html


def test_query_keys_are_not_listed_as_events(
    seeded: Flask, client: redis.Redis
) -> None:
    client.set("trackist_bitop_fb_deadbeef_0", b"\x01")
    assert list(rows_of(seeded.test_client().get("/bitmapist/").text)) == [
        "pay",
        "play",
        "signup",
    ]


def test_event_page_charts_thirty_days_and_lists_weeks_and_months(
    store_seeded: Flask,
) -> None:
    html = store_seeded.test_client().get("/bitmapist/event/play").text
    bars = re.findall(r"<title>(\d{4}-\d\d-\d\d): (\d+) users</title>", html)
    assert len(bars) == 30
    expected_last = [
        ((NOW - timedelta(days=days_ago)).date().isoformat(), str(count))
        for days_ago, count in ((2, 4), (1, 5), (0, 5))
    ]
    assert bars[-3:] == expected_last
    assert all(count == "0" for _, count in bars[:-3])
    assert '<svg viewBox="0 0 720 220" role="img"' in html
    iso_year, iso_week, _ = NOW.isocalendar()
    this_week = {
        user
        for days_ago, users in (
            (0, [*range(4), 10]),
            (1, [10, 11, 12, 16, 17]),
            (2, range(16, 20)),
        )
        if (NOW - timedelta(days=days_ago)).isocalendar()[:2] == (iso_year, iso_week)
        for user in users
    }
    assert re.search(
        rf"{iso_year}-W{iso_week:02d} <span[^>]*>from [-\d]+</span></th><td class=\"num\"><a href=\"[^\"]+\">{len(this_week)}</a></td>",
        html,
    )


@pytest.mark.parametrize("name", ["a%20b", "x" * 201])
def test_event_page_of_an_impossible_name_is_404(app: Flask, name: str) -> None:
    assert app.test_client().get(f"/bitmapist/event/{name}").status_code == 404


def test_cohort_form_lists_the_events_for_the_pickers(store_seeded: Flask) -> None:
    html = store_seeded.test_client().get("/bitmapist/cohort").text
    assert re.findall(r'<option value="([^"]+)"></option>', html) == [
        "pay",
        "play",
        "signup",
    ]
    for field in (
        "primary_event",
        "secondary_event",
        "time_group",
        "num_rows",
        "num_cols",
        "as_percent",
        "with_replacement",
    ):
        assert f'<label for="{field}">' in html
    assert 'id="heatmap"' not in html


# The cohort API


BODY = {
    "primary_event": "signup",
    "secondary_event": "play",
    "additional_events": [{"name": "pay", "op": "or"}],
    "time_group": "days",
    "num_rows": 3,
    "num_cols": 3,
    "as_percent": False,
    "with_replacement": False,
}


# BODY's cohort and row totals, worked by hand from the seeded data.
BODY_COHORT = [[4, 0, 0], [3, 0, None], [4, None, None]]
BODY_TOTALS = [4, 6, 10]


def cells_of(html: str) -> list[list[int | None]]:
    """The heatmap's cells, row by row, from their data attributes."""
    table: dict[int, dict[int, int | None]] = {}
    for row, col, count in re.findall(
        r'data-row="(\d+)" data-col="(\d+)"(?: data-count="(\d+)")?', html
    ):
        table.setdefault(int(row), {})[int(col)] = int(count) if count else None
    return [[cols[col] for col in sorted(cols)] for _, cols in sorted(table.items())]


def expected(app: Flask, body: dict[str, Any]) -> tuple[Any, Any, Any]:
    with app.app_context():
        return get_cohort(
            body["primary_event"],
            body["secondary_event"],
            additional_events=body["additional_events"],
            time_group=body["time_group"],
            num_rows=body["num_rows"],
            num_cols=body["num_cols"],
            with_replacement=body["with_replacement"],
        )


@pytest.mark.parametrize("with_replacement", [False, True])
def test_post_cohort_returns_the_heatmap_of_get_cohort(
    store_seeded: Flask, with_replacement: bool
) -> None:
    body = {**BODY, "with_replacement": with_replacement}
    response = store_seeded.test_client().post("/bitmapist/cohort", json=body)
    assert response.status_code == 200
    cohort, _, totals = expected(store_seeded, body)
    assert cells_of(response.text) == cohort
    # Worked by hand from the seeded data: play or pay, 3 days.
    if with_replacement:
        assert cohort == [[4, 2, 0], [3, 1, None], [4, None, None]]
    else:
        assert cohort == BODY_COHORT
    users = re.findall(
        r'<td class="num users">(?:<a href="[^"]+">)?(\d+)(?:</a>)?</td>', response.text
    )
    assert [int(value) for value in users] == totals == BODY_TOTALS
    assert '<th scope="row">Average</th>' in response.text
    assert '<th scope="row">Total</th>' in response.text
    assert "<html" not in response.text


def test_heatmap_shades_cells_by_their_share_of_the_row(store_seeded: Flask) -> None:
    html = store_seeded.test_client().post("/bitmapist/cohort", json=BODY).text
    shades = re.findall(
        r'class="cell num (heat-\d+)(?: running)?" data-row="(\d)"', html
    )
    # Row 0: 4 of 4 users came back on the day, none later; row 1: 3 of 6.
    assert shades == [
        ("heat-10", "0"),
        ("heat-0", "0"),
        ("heat-0", "0"),
        ("heat-5", "1"),
        ("heat-0", "1"),
        ("heat-4", "2"),
    ]


def test_json_format_returns_the_data_with_iso_dates(store_seeded: Flask) -> None:
    response = store_seeded.test_client().post(
        "/bitmapist/cohort?format=json", json=BODY
    )
    data = response.get_json()
    cohort, dates, totals = expected(store_seeded, BODY)
    assert data["cohort"] == cohort == BODY_COHORT
    assert data["dates"] == [date.isoformat() for date in dates]
    assert data["dates"][-1] == NOW.date().isoformat() + "T00:00:00+00:00"
    assert data["row_totals"] == totals
    column_cells = [[row[j] for row in cohort if row[j] is not None] for j in range(3)]
    assert data["column_totals"] == [sum(cells) for cells in column_cells]
    assert data["averages"] == [sum(cells) / len(cells) for cells in column_cells]
    assert data["percentages"][0][0] == 100 * cohort[0][0] / totals[0]
    # The modes added later are carried at their defaults.
    assert data["request"] == {**BODY, "cohort": "recurring", "retention": "on"}


def test_csv_format_is_a_download_of_the_same_numbers(store_seeded: Flask) -> None:
    response = store_seeded.test_client().post(
        "/bitmapist/cohort?format=csv", json=BODY
    )
    assert response.mimetype == "text/csv"
    assert (
        response.headers["Content-Disposition"]
        == 'attachment; filename="cohort-signup-play.csv"'
    )
    lines = list(csv.reader(io.StringIO(response.text)))
    cohort, dates, totals = expected(store_seeded, BODY)
    assert (cohort, totals) == (BODY_COHORT, BODY_TOTALS)
    assert lines[0] == ["period", "users", "+0 days", "+1 days", "+2 days"]
    for line, date, total, row in zip(lines[1:4], dates, totals, cohort, strict=True):
        assert line == [
            date.date().isoformat(),
            str(total),
            *("" if cell is None else str(cell) for cell in row),
        ]
    assert lines[4][0] == "average" and lines[5][0] == "total"
    assert len(lines) == 6


def test_csv_as_percent_has_two_decimals(store_seeded: Flask) -> None:
    body = {**BODY, "as_percent": True}
    lines = list(
        csv.reader(
            io.StringIO(
                store_seeded.test_client()
                .post("/bitmapist/cohort?format=csv", json=body)
                .text
            )
        )
    )
    cohort, _, totals = expected(store_seeded, body)
    assert (cohort, totals) == (BODY_COHORT, BODY_TOTALS)
    assert lines[1][2] == f"{100 * cohort[0][0] / totals[0]:.2f}"


def test_get_with_query_renders_the_form_and_heatmap_and_downloads(
    store_seeded: Flask,
) -> None:
    query = (
        "primary_event=signup&secondary_event=play&additional_event=pay"
        "&additional_op=or&time_group=days&num_rows=3&num_cols=3"
    )
    client = store_seeded.test_client()
    page = client.get(f"/bitmapist/cohort?{query}")
    assert page.status_code == 200
    cohort, _, _ = expected(store_seeded, BODY)
    assert cells_of(page.text) == cohort == BODY_COHORT
    assert 'value="pay"' in page.text
    data = client.get(f"/bitmapist/cohort?format=json&{query}").get_json()
    assert data["cohort"] == cohort
    assert client.get(f"/bitmapist/cohort?format=csv&{query}").mimetype == "text/csv"


def test_get_data_without_fields_is_a_json_400(seeded: Flask) -> None:
    response = seeded.test_client().get("/bitmapist/cohort?format=json")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "primary_event: is required.",
        "field": "primary_event",
    }


def test_overview_says_how_many_events_it_left_out(
    store_seeded: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_bitmapist.dashboard.views.MAX_LISTED_EVENTS", 2)
    html = store_seeded.test_client().get("/bitmapist/").text
    assert list(rows_of(html)) == ["pay", "play"]
    assert "1 more events are not listed; filter by a prefix to see them." in html


def test_prefix_glob_characters_match_literally(store_app: Flask) -> None:
    app = store_app
    mark_days(app, "a*b", {0: range(2)})
    mark_days(app, "axb", {0: range(3)})
    assert list(rows_of(app.test_client().get("/bitmapist/?prefix=a*").text)) == ["a*b"]


def test_get_with_a_bad_query_shows_the_error_in_the_form(seeded: Flask) -> None:
    page = seeded.test_client().get(
        "/bitmapist/cohort?primary_event=signup&secondary_event=play&num_rows=0"
    )
    assert page.status_code == 400
    assert "num_rows: must be from 1 to 366, got 0." in page.text
    assert 'value="signup"' in page.text


ERRORS = [
    ("{", None, "body", "body: is not valid JSON."),
    ("[1, 2]", None, "body", "body: must be a JSON object."),
    ("null", None, "body", "body: must be a JSON object."),
    (None, {"secondary_event": "b"}, "primary_event", "primary_event: is required."),
    (None, {"primary_event": "a"}, "secondary_event", "secondary_event: is required."),
    (
        None,
        {**BODY, "primary_event": 7},
        "primary_event",
        "primary_event: must be a str, got 7.",
    ),
    (
        None,
        {**BODY, "secondary_event": ""},
        "secondary_event",
        "secondary_event: must not be empty.",
    ),
    (
        None,
        {**BODY, "time_group": "hours"},
        "time_group",
        "time_group: must be one of days, weeks, months, years (or the singular), got 'hours'.",
    ),
    (
        None,
        {**BODY, "time_group": None},
        "time_group",
        "time_group: must be one of days, weeks, months, years (or the singular), got None.",
    ),
    (
        None,
        {**BODY, "num_rows": 0},
        "num_rows",
        "num_rows: must be from 1 to 366, got 0.",
    ),
    (
        None,
        {**BODY, "num_rows": 367},
        "num_rows",
        "num_rows: must be from 1 to 366, got 367.",
    ),
    (
        None,
        {**BODY, "num_cols": 1000},
        "num_cols",
        "num_cols: must be from 1 to 366, got 1000.",
    ),
    (
        None,
        {**BODY, "num_rows": 366, "num_cols": 366},
        "num_cols",
        "num_cols: num_rows x num_cols must be at most 20000, got 366 x 366 = 133956.",
    ),
    (
        None,
        {**BODY, "num_cols": "5"},
        "num_cols",
        "num_cols: must be an int from 1 to 366, got '5'.",
    ),
    (
        None,
        {**BODY, "num_cols": 2.5},
        "num_cols",
        "num_cols: must be an int from 1 to 366, got 2.5.",
    ),
    (
        None,
        {**BODY, "num_rows": True},
        "num_rows",
        "num_rows: must be an int from 1 to 366, got True.",
    ),
    (
        None,
        {**BODY, "as_percent": "yes"},
        "as_percent",
        "as_percent: must be true or false.",
    ),
    (
        None,
        {**BODY, "with_replacement": 1},
        "with_replacement",
        "with_replacement: must be true or false.",
    ),
    (
        None,
        {**BODY, "additional_events": "pay"},
        "additional_events",
        "additional_events: must be a list of {name, op} dicts, got 'pay'.",
    ),
    (
        None,
        {**BODY, "additional_events": [{"name": "pay"}]},
        "additional_events[0]",
        "additional_events[0]: must be a dict with exactly the keys name and op, got {'name': 'pay'}.",
    ),
    (
        None,
        {**BODY, "additional_events": [{"name": "pay", "op": "xor"}]},
        "additional_events[0].op",
        "additional_events[0].op: must be 'and' or 'or', got 'xor'.",
    ),
    (
        None,
        {**BODY, "additional_events": [{"name": "a b", "op": "and"}]},
        "additional_events[0].name",
        None,
    ),
    (
        None,
        {**BODY, "additional_events": [{"name": "pay", "op": "or"}] * 11},
        "additional_events",
        "additional_events: can hold at most 10 events.",
    ),
    (None, {**BODY, "colour": "red"}, "colour", None),
]


@pytest.mark.parametrize(("raw", "body", "field", "message"), ERRORS)
def test_bad_cohort_bodies_answer_400_naming_the_field(
    seeded: Flask, raw: str | None, body: Any, field: str, message: str | None
) -> None:
    data = raw if raw is not None else json.dumps(body)
    for fmt in ("", "?format=json", "?format=csv"):
        response = seeded.test_client().post(
            f"/bitmapist/cohort{fmt}", data=data, content_type="application/json"
        )
        assert response.status_code == 400
        error = response.get_json()
        assert error["field"] == field
        assert error["error"].startswith(f"{field}: ")
        if message is not None:
            assert error["error"] == message


def test_unknown_format_and_oversized_body_answer_400(seeded: Flask) -> None:
    client = seeded.test_client()
    response = client.post("/bitmapist/cohort?format=xml", json=BODY)
    assert response.status_code == 400
    assert response.get_json()["field"] == "format"
    response = client.post(
        "/bitmapist/cohort", data=" " * (64 * 1024 + 1), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "body: is larger than 64 KiB.",
        "field": "body",
    }


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = {
    "primary_event": st.sampled_from(["signup", "play", "", XSS, "a b"]) | json_values,
    "secondary_event": st.sampled_from(["signup", "play", "x" * 201]) | json_values,
    "additional_events": st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["pay", "play", ""]) | json_values,
                "op": st.sampled_from(["and", "or", "xor"]) | json_values,
            }
        ),
        max_size=12,
    )
    | json_values,
    "time_group": st.sampled_from(["day", "weeks", "months", "year", "hour"])
    | json_values,
    "num_rows": st.integers(-2, 400) | json_values,
    "num_cols": st.integers(-2, 400) | json_values,
    "as_percent": st.booleans() | json_values,
    "with_replacement": st.booleans() | json_values,
}
bodies = (
    st.fixed_dictionaries({}, optional=field_values)
    | json_values
    | st.binary(max_size=60).map(lambda raw: raw.decode("latin-1"))
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=bodies, fmt=st.sampled_from(["", "?format=json", "?format=csv"]))
def test_no_body_makes_the_api_answer_500(seeded: Flask, body: Any, fmt: str) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
    response = seeded.test_client().post(
        f"/bitmapist/cohort{fmt}", data=data, content_type="application/json"
    )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert set(response.get_json()) == {"error", "field"}


# Escaping and failures


def test_event_names_are_escaped_everywhere(app: Flask) -> None:
    mark_days(app, XSS, {0: range(3), 1: range(2)})
    mark_days(app, "signup", {0: range(3), 1: range(2)})
    client = app.test_client()
    escaped = "&lt;img/src=x/onerror=alert(1)&gt;"
    overview = client.get("/bitmapist/").text
    event_url = "/bitmapist/event/%3Cimg/src=x/onerror=alert(1)%3E"
    event_page = client.get(event_url)
    form = client.get("/bitmapist/cohort").text
    body = {
        **BODY,
        "primary_event": XSS,
        "secondary_event": "signup",
        "additional_events": [{"name": XSS, "op": "and"}],
    }
    heatmap = client.post("/bitmapist/cohort", json=body).text
    page = client.get(
        "/bitmapist/cohort?primary_event=%3Cimg/src=x/onerror=alert(1)%3E&secondary_event=signup"
    ).text
    assert event_page.status_code == 200
    for html in (overview, event_page.text, form, heatmap, page):
        assert XSS not in html
        assert escaped in html
    assert f'href="{event_url}"' in overview
    download = client.post("/bitmapist/cohort?format=csv", json=body)
    assert XSS not in download.text and "<" not in download.text
    assert (
        download.headers["Content-Disposition"]
        == 'attachment; filename="cohort--img-src-x-onerror-alert-1--signup.csv"'
    )
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    data = client.post("/bitmapist/cohort?format=json", json=body)
    assert data.mimetype == "application/json"
    assert data.get_json()["request"]["primary_event"] == XSS


def test_redis_unreachable_answers_503(make_app: AppFactory) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    for path in ("/bitmapist/", "/bitmapist/event/signup", "/bitmapist/cohort"):
        response = client.get(path)
        assert response.status_code == 503
        assert "analytics store unavailable" in response.text.lower()
        assert "Traceback" not in response.text
    response = client.post("/bitmapist/cohort?format=json", json=BODY)
    assert response.status_code == 503
    assert response.get_json() == {"error": "analytics store unavailable"}


event_names = st.sampled_from(["signup", "play", "pay", XSS, "a/b", "ü"])


@given(
    request=st.builds(
        CohortRequest,
        primary_event=event_names,
        secondary_event=event_names,
        additional_events=st.lists(
            st.tuples(event_names, st.sampled_from(["and", "or"])), max_size=10
        ).map(tuple),
        time_group=st.sampled_from(["days", "weeks", "months", "years"]),
        num_rows=st.integers(1, 366),
        num_cols=st.integers(1, 366),
        as_percent=st.booleans(),
        with_replacement=st.booleans(),
    ).filter(lambda request: request.num_rows * request.num_cols <= MAX_CELLS)
)
def test_a_request_survives_its_query_string_and_json(request: CohortRequest) -> None:
    assert CohortRequest.from_query(MultiDict(request.to_query())) == request
    assert CohortRequest.from_json(json.loads(json.dumps(request.to_json()))) == request


STYLESHEET = (
    Path(flask_bitmapist.__file__).parent / "dashboard" / "static" / "dashboard.css"
).read_text()


def contrast(first: str, second: str) -> float:
    """The WCAG 2 contrast ratio of two #rrggbb colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5)]
        red, green, blue = (
            value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4
            for value in channels
        )
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_heatmap_shade_keeps_its_text_readable() -> None:
    ink = re.search(r"--ink: (#\w{6});", STYLESHEET).group(1)  # type: ignore[union-attr]
    shades = re.findall(
        r"\.heat-(\d+) \{ background: (#\w{6});(?: color: (#\w{6});)?"
        r"(?: --hatch: (#\w{6});)? \}",
        STYLESHEET,
    )
    assert [int(level) for level, _, _, _ in shades] == list(range(11))
    # A running period's cell is hatched: stripes of --hatch over the shade.
    running = re.search(
        r"\.heatmap td\.running \{ background-image: repeating-linear-gradient\("
        r"[^;]*var\(--hatch, (#\w{6})\)[^;]*\); \}",
        STYLESHEET,
    )
    assert running, "no hatching rule for td.running"
    backing = re.search(
        r"\.heatmap td\.running \.value \{ background-color: (\w+);", STYLESHEET
    )
    for level, background, text, hatch in shades:
        stripes = hatch or running.group(1)
        # The number sits on the plain shade ("inherit" from its cell), or else
        # on the stripes too.
        behind = (
            [background]
            if backing and backing.group(1) == "inherit"
            else [background, stripes]
        )
        for colour in behind:
            assert contrast(colour, text or ink) >= 4.5, f"heat-{level} on {colour}"
        # WCAG 1.4.11: the stripes carry meaning, so they need 3:1 to show.
        assert contrast(stripes, background) >= 3, f"heat-{level} stripes"


def test_page_colours_meet_wcag_aa() -> None:
    colours = dict(re.findall(r"--(\w+): (#\w{6});", STYLESHEET))
    pairs = [
        (colours["ink"], colours["paper"]),
        (colours["ink"], colours["wash"]),
        (colours["muted"], colours["wash"]),
        (colours["accent"], colours["paper"]),
        (colours["danger"], "#fdeceb"),
        ("#ffffff", "#12263f"),
        ("#ffffff", colours["accent"]),
    ]
    assert [round(contrast(*pair), 1) for pair in pairs if contrast(*pair) < 4.5] == []


query_fields = st.sampled_from(
    [
        "primary_event",
        "secondary_event",
        "additional_event",
        "additional_op",
        "time_group",
        "num_rows",
        "num_cols",
        "as_percent",
        "with_replacement",
        "format",
        "other",
    ]
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(pairs=st.lists(st.tuples(query_fields, st.text(max_size=12)), max_size=10))
def test_no_query_string_makes_the_page_answer_500(
    seeded: Flask, pairs: list[tuple[str, str]]
) -> None:
    response = seeded.test_client().get(
        "/bitmapist/cohort", query_string=MultiDict(pairs)
    )
    assert response.status_code in (200, 400), response.text


def test_two_apps_each_show_their_own_store(
    make_app: AppFactory, other_redis_url: str
) -> None:
    first = make_app(name="first")
    second = make_app(name="second", redis_url=other_redis_url, url_prefix="/stats")
    mark_days(first, "first:event", {0: range(3)})
    mark_days(second, "second:event", {0: range(5)})
    assert rows_of(first.test_client().get("/bitmapist/").text) == {
        "first:event": [3, 3, 3, 3]
    }
    assert rows_of(second.test_client().get("/stats/").text) == {
        "second:event": [5, 5, 5, 5]
    }
    assert second.test_client().get("/bitmapist/").status_code == 404


# Cross-site requests, the cohort POST's content type and the bounds of a query


def body_text(html: str, element_id: str) -> str:
    """The text of the element with ``element_id``, tags dropped and spaces
    collapsed (the element must not hold one of its own tag)."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no #{element_id}"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(2)).split())


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        None,
    ],
)
def test_cohort_post_takes_json_only(seeded: Flask, content_type: str | None) -> None:
    # A plain form on another site can send this text/plain body (it is valid
    # JSON) with the admin's cookies; it must not run the query.
    client = seeded.test_client()
    response = client.post(
        "/bitmapist/cohort", data=json.dumps(BODY), content_type=content_type
    )
    assert response.status_code == 415
    got = content_type.split(";")[0] if content_type else "none"
    assert response.get_json() == {
        "error": f"Content-Type must be application/json, got {got}."
    }
    assert response.headers["Accept-Post"] == "application/json"
    assert 'id="heatmap"' not in response.text


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON"]
)
def test_cohort_post_takes_json_with_a_charset_or_in_capitals(
    seeded: Flask, content_type: str
) -> None:
    response = seeded.test_client().post(
        "/bitmapist/cohort", data=json.dumps(BODY), content_type=content_type
    )
    assert response.status_code == 200
    assert cells_of(response.text) == expected(seeded, BODY)[0]


DASHBOARD_REQUESTS = [
    ("GET", "/bitmapist/"),
    ("GET", "/bitmapist/events"),
    ("GET", "/bitmapist/event/signup"),
    ("GET", "/bitmapist/cohort"),
    ("GET", "/bitmapist/cohort?format=json&primary_event=signup&secondary_event=play"),
    ("POST", "/bitmapist/cohort"),
    ("OPTIONS", "/bitmapist/cohort"),
    ("GET", "/bitmapist/static/dashboard.js"),
    ("GET", "/bitmapist/static/dashboard.css"),
]


@pytest.mark.parametrize(("method", "path"), DASHBOARD_REQUESTS)
def test_cross_site_requests_answer_403_on_every_endpoint(
    seeded: Flask, method: str, path: str
) -> None:
    client = seeded.test_client()
    for site in ("same-origin", "same-site", "none", None):
        headers = {"Sec-Fetch-Site": site} if site else {}
        response = client.open(path, method=method, json=BODY, headers=headers)
        assert response.status_code == 200, (site, response.text)
    response = client.open(
        path, method=method, json=BODY, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403
    message = (
        "The dashboard answers only requests from its own site; "
        "open it from its address or a bookmark."
    )
    if method == "POST" or "format=json" in path:
        assert response.get_json() == {"error": message}
    else:
        assert "<h1>Requests from other sites are refused</h1>" in response.text
        assert "BITMAPIST_DASHBOARD_ACCESS" not in response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_cross_site_is_refused_before_the_access_callable_runs(
    make_app: AppFactory,
) -> None:
    asked: list[bool] = []

    def access() -> bool:
        asked.append(True)
        return True

    app = make_app(testing=False, dashboard_access=access)
    client = app.test_client()
    response = client.get("/bitmapist/", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert asked == []
    assert client.get("/bitmapist/").status_code == 200
    assert asked == [True]


@pytest.mark.parametrize(
    ("rows", "cols", "status"),
    [(100, 200, 200), (200, 100, 200), (100, 201, 400), (366, 366, 400)],
)
def test_one_query_is_bounded_in_cells_on_every_way_in(
    seeded: Flask, rows: int, cols: int, status: int
) -> None:
    """The API, the page, its data links and the CLI share CohortRequest's
    bound: rows x columns <= 20,000."""
    assert MAX_CELLS == 20_000
    message = (
        f"num_cols: num_rows x num_cols must be at most 20000, "
        f"got {rows} x {cols} = {rows * cols}."
    )
    client = seeded.test_client()
    body = {**BODY, "num_rows": rows, "num_cols": cols}
    query = f"primary_event=signup&secondary_event=play&num_rows={rows}&num_cols={cols}"
    api = client.post("/bitmapist/cohort?format=json", json=body)
    data = client.get(f"/bitmapist/cohort?format=json&{query}")
    page = client.get(f"/bitmapist/cohort?{query}")
    cli = seeded.test_cli_runner().invoke(
        args=f"bitmapist cohort signup play --rows {rows} --cols {cols}".split()
    )
    assert [api.status_code, data.status_code, page.status_code] == [status] * 3
    if status == 200:
        assert len(api.get_json()["cohort"]) == rows
        assert len(api.get_json()["cohort"][0]) == cols
        assert cli.exit_code == 0, cli.output
        return
    for response in (api, data):
        assert response.get_json() == {"error": message, "field": "num_cols"}
    assert body_text(page.text, "cohort-error") == message
    assert 'id="heatmap"' not in page.text
    assert cli.exit_code == 1
    assert cli.output == f"Error: {message}\n"


def test_a_body_shorter_than_its_content_length_answers_400(seeded: Flask) -> None:
    # The test client's stream ends where a real client would stall: without
    # the check, the valid JSON prefix would be taken for the whole body.
    data = json.dumps(BODY).encode()
    response = seeded.test_client().post(
        "/bitmapist/cohort",
        data=data,
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(len(data) + 100)},
    )
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "body: ended before its Content-Length.",
        "field": "body",
    }


class TrickleStream(io.RawIOBase):
    """A request body that hands over at most ``step`` bytes per read, as a
    socket does, and counts what was read."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data = data
        self.step = step
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.data[self.position : self.position + min(len(buffer), self.step)]
        buffer[: len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


@pytest.mark.parametrize("length_known", [True, False])
def test_the_body_read_stops_one_byte_past_64_kib(
    seeded: Flask, length_known: bool
) -> None:
    stream = TrickleStream(b" " * (10 * 1024 * 1024), step=10_000)
    environ: dict[str, Any] = {"wsgi.input": stream}
    if length_known:
        environ["CONTENT_LENGTH"] = str(len(stream.data))
    else:
        # A chunked body: the server ends the stream, werkzeug does not.
        environ.update({"CONTENT_LENGTH": "", "wsgi.input_terminated": True})
    response = seeded.test_client().post(
        "/bitmapist/cohort", content_type="application/json", environ_overrides=environ
    )
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "body: is larger than 64 KiB.",
        "field": "body",
    }
    assert stream.position == 64 * 1024 + 1


def test_a_body_that_arrives_in_pieces_is_read_whole(seeded: Flask) -> None:
    # The JSON comes after the first piece, so one read would see only spaces.
    data = json.dumps(BODY).encode().rjust(5000)
    stream = TrickleStream(data, step=1000)
    response = seeded.test_client().post(
        "/bitmapist/cohort?format=json",
        content_type="application/json",
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(len(data))},
    )
    assert response.status_code == 200, response.text
    assert response.get_json()["cohort"] == expected(seeded, BODY)[0]


# What the heatmap counts


def checkbox_checked(html: str, name: str) -> bool:
    tag = re.search(rf'<input id="{name}"[^>]*>', html)
    assert tag, name
    return " checked" in tag.group(0)


def test_a_fresh_form_counts_with_replacement_and_the_api_keeps_its_default(
    seeded: Flask,
) -> None:
    client = seeded.test_client()
    fresh = client.get("/bitmapist/cohort").text
    assert checkbox_checked(fresh, "with_replacement")
    assert not checkbox_checked(fresh, "as_percent")
    # A submitted form without the box (an unchecked box is not sent) keeps it off.
    submitted = client.get(
        "/bitmapist/cohort?primary_event=signup&secondary_event=play"
    ).text
    assert not checkbox_checked(submitted, "with_replacement")
    assert "counted once" in body_text(submitted, "heatmap-caption")
    ticked = client.get(
        "/bitmapist/cohort?primary_event=signup&secondary_event=play&with_replacement=1"
    ).text
    assert checkbox_checked(ticked, "with_replacement")
    body = {"primary_event": "signup", "secondary_event": "play"}
    assert CohortRequest.from_json(body).with_replacement is False
    data = client.post("/bitmapist/cohort?format=json", json=body).get_json()
    assert data["request"]["with_replacement"] is False


@pytest.mark.parametrize(
    ("changes", "caption"),
    [
        (
            {"with_replacement": True, "additional_events": []},
            "Each row: the users who did signup on that day. Each cell: how many "
            "of them did play N days later, counted on every day they came back.",
        ),
        (
            {"additional_events": []},
            "Each row: the users who did signup on that day. Each cell: how many "
            "of them did play N days later, counted once, on the first day they "
            "came back.",
        ),
        (
            {"time_group": "weeks", "as_percent": True},
            "Each row: the users who did signup in that week. Each cell: the "
            "percent of them who did play or pay N weeks later, counted once, in "
            "the first week they came back.",
        ),
    ],
)
def test_the_heatmap_says_what_it_counts(
    seeded: Flask, changes: dict[str, Any], caption: str
) -> None:
    html = seeded.test_client().post("/bitmapist/cohort", json={**BODY, **changes}).text
    assert body_text(html, "heatmap-caption") == caption


def running_cells(html: str) -> set[tuple[int, int]]:
    return {
        (int(row), int(col))
        for row, col in re.findall(
            r'<td class="cell num heat-\d+ running" data-row="(\d+)" data-col="(\d+)"',
            html,
        )
    }


def test_the_current_period_is_hatched_with_a_note(seeded: Flask) -> None:
    client = seeded.test_client()
    html = client.post("/bitmapist/cohort", json=BODY).text
    # Row i's cell j is j days after row i's day; the last row is today.
    assert running_cells(html) == {(0, 2), (1, 1), (2, 0)}
    assert body_text(html, "heatmap-running") == (
        "Hatched: the current day, still running: its count can still grow."
    )
    users = (
        "/bitmapist/users/cohort?primary_event=signup&amp;secondary_event=play"
        "&amp;additional_event=pay&amp;additional_op=or&amp;time_group=days"
        f"&amp;num_rows=3&amp;num_cols=3&amp;date={NOW.date().isoformat()}"
        "&amp;row=0&amp;column=2"
    )
    assert (
        '<td class="cell num heat-0 running" data-row="0" data-col="2" '
        'data-count="0" title="0 of 4 users (0.0%), the current day, still running" '
        f'aria-describedby="heatmap-running"><a class="value" href="{users}">0</a></td>'
    ) in html
    narrow = client.post("/bitmapist/cohort", json={**BODY, "num_cols": 2}).text
    assert running_cells(narrow) == {(1, 1), (2, 0)}
    weeks = client.post(
        "/bitmapist/cohort", json={**BODY, "time_group": "weeks", "num_rows": 1}
    ).text
    assert running_cells(weeks) == {(0, 0)}
    assert "Hatched: the current week, still running" in weeks


def test_no_hatching_or_note_without_a_running_cell(seeded: Flask) -> None:
    # Nobody paid three days ago, and the current period is beyond column 1.
    body = {**BODY, "primary_event": "pay", "num_rows": 4, "num_cols": 1}
    html = seeded.test_client().post("/bitmapist/cohort", json=body).text
    cohort, _, totals = expected(seeded, body)
    assert totals[-1] > 0 and cohort[-1][0] is not None
    assert running_cells(html) == {(3, 0)}
    empty = {**body, "primary_event": "nobody", "num_rows": 1}
    html = seeded.test_client().post("/bitmapist/cohort", json=empty).text
    assert running_cells(html) == set()
    assert 'id="heatmap-running"' not in html
    assert 'aria-describedby="heatmap-running"' not in html


def test_the_heatmap_scrolls_in_a_focusable_labelled_box(seeded: Flask) -> None:
    html = seeded.test_client().post("/bitmapist/cohort", json=BODY).text
    assert (
        '<div class="heatmap-wrap" tabindex="0" role="region" '
        'aria-label="Cohort table, scrolls sideways">'
    ) in html
    assert re.search(r"\.scroll, \.heatmap-wrap \{ overflow-x: auto; \}", STYLESHEET)


# Unknown events


def scans(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the pattern of each SCAN walk over the app's store (on a
    cluster, one walk covers every primary)."""
    patterns: list[str] = []
    store = app.extensions["bitmapist"].state(app).store
    original = store.client.scan_iter

    def counting(match: Any = None, **kwargs: Any) -> Any:
        patterns.append(match)
        return original(match=match, **kwargs)

    monkeypatch.setattr(store.client, "scan_iter", counting)
    return patterns


def test_unknown_event_answers_404_with_close_names(store_seeded: Flask) -> None:
    client = store_seeded.test_client()
    response = client.get("/bitmapist/event/plays")
    assert response.status_code == 404
    assert body_text(response.text, "unknown-event") == (
        "No event is named plays; did you mean play, pay?"
    )
    assert (
        '<a class="event-name" href="/bitmapist/event/play">play</a>' in response.text
    )
    assert "<h1>Unknown event</h1>" in response.text
    data = client.get("/bitmapist/event/plya?format=json")
    assert data.status_code == 404
    assert data.get_json() == {"error": "Unknown event 'plya'; did you mean play?"}
    far = client.get("/bitmapist/event/zzz")
    assert far.status_code == 404
    assert body_text(far.text, "unknown-event") == "No event is named zzz."
    assert client.get("/bitmapist/event/zzz?format=csv").get_json() == {
        "error": "Unknown event 'zzz'."
    }


def test_unknown_event_page_escapes_the_name(seeded: Flask) -> None:
    response = seeded.test_client().get(
        "/bitmapist/event/%3Cimg/src=x/onerror=alert(1)%3E"
    )
    assert response.status_code == 404
    assert XSS not in response.text
    assert "&lt;img/src=x/onerror=alert(1)&gt;" in response.text


def test_only_an_event_without_counts_pays_a_scan(
    store_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = store_app
    mark_days(app, "recent", {0: range(2)})
    mark_days(app, "ancient", {3 * 366: range(2)})
    patterns = scans(app, monkeypatch)
    # One walk over every event's keys, in the app's layout.
    every_event = app.extensions["bitmapist"].state(app).store.layout.scan_pattern()
    assert every_event in ("trackist_*", "trackist3{*}_*")
    client = app.test_client()
    assert client.get("/bitmapist/event/recent").status_code == 200
    assert patterns == []
    # Data older than the 30 days, 12 weeks and 12 months shown: it exists.
    old = client.get("/bitmapist/event/ancient")
    assert old.status_code == 200
    assert '<h1 class="event-name">ancient</h1>' in old.text
    assert patterns == [every_event]
    assert client.get("/bitmapist/event/ancien").status_code == 404
    assert patterns == [every_event] * 2


# The endpoints of 0.1.x


def test_0_1_endpoint_names_build_the_same_urls(seeded: Flask) -> None:
    with seeded.test_request_context():
        assert url_for("bitmapist.index") == url_for("bitmapist.overview")
        assert url_for("bitmapist.index") == "/bitmapist/"
        assert url_for("bitmapist.events") == "/bitmapist/events"
        assert url_for("bitmapist.cohort") == "/bitmapist/cohort"
        assert url_for("bitmapist.cohort", _method="POST") == "/bitmapist/cohort"


def test_0_1_urls_serve_exactly_the_current_pages(seeded: Flask) -> None:
    client = seeded.test_client()
    with seeded.test_request_context():
        index, events, cohort = (
            url_for(f"bitmapist.{name}") for name in ("index", "events", "cohort")
        )
    overview = client.get("/bitmapist/")
    for url in (index, events):
        response = client.get(url)
        assert response.status_code == 200
        assert response.text == overview.text
        assert response.headers == overview.headers
    assert 'aria-current="page">Events</a>' in overview.text
    query = "?primary_event=signup&secondary_event=play&num_rows=3&num_cols=3"
    page = client.get(f"{cohort}{query}")
    assert page.text == client.get(f"/bitmapist/cohort{query}").text
    assert 'aria-current="page">Cohorts</a>' in page.text
    api = client.post(cohort, json=BODY)
    assert api.status_code == 200
    assert cells_of(api.text) == expected(seeded, BODY)[0]
    assert client.post(cohort, data=json.dumps(BODY)).status_code == 415


def test_the_0_1_cohort_view_is_the_page_on_get_and_the_api_on_post(
    seeded: Flask,
) -> None:
    # Requests to /cohort reach cohort_page and cohort_api first; the alias's
    # own view must still answer as they do if a request ever reaches it.
    view: Any = seeded.view_functions["bitmapist.cohort"]
    client = seeded.test_client()
    with seeded.test_request_context("/bitmapist/cohort", method="POST", json=BODY):
        posted = seeded.make_response(view())
    assert (
        posted.get_data(as_text=True)
        == client.post("/bitmapist/cohort", json=BODY).text
    )
    with seeded.test_request_context("/bitmapist/cohort"):
        got = seeded.make_response(view())
    assert got.get_data(as_text=True) == client.get("/bitmapist/cohort").text


@pytest.mark.parametrize("name", ["index", "events", "cohort"])
def test_0_1_endpoints_are_guarded_like_the_others(
    make_app: AppFactory, name: str
) -> None:
    closed = make_app(testing=False, name="closed")
    with closed.test_request_context():
        url = url_for(f"bitmapist.{name}")
    assert closed.test_client().get(url).status_code == 403
    open_app = make_app(name="open")
    client = open_app.test_client()
    response = client.get(url, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]

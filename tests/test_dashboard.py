"""The dashboard blueprint over HTTP: access, pages, the cohort API and its
errors, escaping, and Redis being away. The browser test is test_browser.py."""

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
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

import flask_bitmapist
from flask_bitmapist import CohortRequest, get_cohort, mark_event
from flask_bitmapist.queries import count_events
from flask_bitmapist.testing import free_port

XSS = "<img/src=x/onerror=alert(1)>"
NOW = datetime.now(timezone.utc)


def mark_days(app: Flask, event: str, users_by_day: dict[int, range]) -> None:
    """Mark ``event`` for each day ``days_ago`` with its users."""
    with app.app_context():
        for days_ago, users in users_by_day.items():
            for user in users:
                mark_event(event, user, now=NOW - timedelta(days=days_ago))


@pytest.fixture
def seeded(app: Flask) -> Flask:
    mark_days(app, "signup", {0: range(0, 10), 1: range(10, 16), 2: range(16, 20)})
    mark_days(app, "play", {0: range(0, 4), 1: range(10, 13), 2: range(16, 20)})
    mark_days(app, "play", {0: range(10, 11), 1: range(16, 18)})
    mark_days(app, "pay", {0: range(0, 2), 1: range(16, 17)})
    return app


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
        client.get("/bitmapist/"),
        client.get("/bitmapist/event/signup"),
        client.get("/bitmapist/cohort"),
        client.post(
            "/bitmapist/cohort", json={"primary_event": "a", "secondary_event": "b"}
        ),
    ]
    for response in responses:
        assert response.status_code == 200
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


def test_overview_lists_every_event_with_its_four_counts(app: Flask) -> None:
    last_year = NOW.replace(year=NOW.year - 1)
    with app.app_context():
        mark_event("visit", 1, now=NOW)
        mark_event("visit", 2, now=NOW)
        mark_event("visit", 3, now=NOW.replace(day=1) - timedelta(days=1))
        mark_event("visit", 4, now=last_year)
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


def test_overview_filters_by_prefix_and_rejects_bad_ones(seeded: Flask) -> None:
    client = seeded.test_client()
    assert list(rows_of(client.get("/bitmapist/?prefix=p").text)) == ["pay", "play"]
    response = client.get("/bitmapist/?prefix=a%20b")
    assert response.status_code == 400
    assert "prefix must be the start of an event name" in response.text


def test_overview_shows_the_writer_counters(seeded: Flask) -> None:
    html = seeded.test_client().get("/bitmapist/").text
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
    seeded: Flask,
) -> None:
    html = seeded.test_client().get("/bitmapist/event/play").text
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
        rf"{iso_year}-W{iso_week:02d} <span[^>]*>from [-\d]+</span></th><td class=\"num\">{len(this_week)}</td>",
        html,
    )


@pytest.mark.parametrize("name", ["a%20b", "x" * 201])
def test_event_page_of_an_impossible_name_is_404(app: Flask, name: str) -> None:
    assert app.test_client().get(f"/bitmapist/event/{name}").status_code == 404


def test_cohort_form_lists_the_events_for_the_pickers(seeded: Flask) -> None:
    html = seeded.test_client().get("/bitmapist/cohort").text
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
    seeded: Flask, with_replacement: bool
) -> None:
    body = {**BODY, "with_replacement": with_replacement}
    response = seeded.test_client().post("/bitmapist/cohort", json=body)
    assert response.status_code == 200
    cohort, _, totals = expected(seeded, body)
    assert cells_of(response.text) == cohort
    # Worked by hand from the seeded data: play or pay, 3 days.
    if with_replacement:
        assert cohort == [[4, 2, 0], [3, 1, None], [4, None, None]]
    else:
        assert cohort == [[4, 0, 0], [3, 0, None], [4, None, None]]
    users = re.findall(r'<td class="num users">(\d+)</td>', response.text)
    assert [int(value) for value in users] == totals == [4, 6, 10]
    assert '<th scope="row">Average</th>' in response.text
    assert '<th scope="row">Total</th>' in response.text
    assert "<html" not in response.text


def test_heatmap_shades_cells_by_their_share_of_the_row(seeded: Flask) -> None:
    html = seeded.test_client().post("/bitmapist/cohort", json=BODY).text
    shades = re.findall(r'class="cell num (heat-\d+)" data-row="(\d)"', html)
    # Row 0: 4 of 4 users came back on the day, none later; row 1: 3 of 6.
    assert shades == [
        ("heat-10", "0"),
        ("heat-0", "0"),
        ("heat-0", "0"),
        ("heat-5", "1"),
        ("heat-0", "1"),
        ("heat-4", "2"),
    ]


def test_json_format_returns_the_data_with_iso_dates(seeded: Flask) -> None:
    response = seeded.test_client().post("/bitmapist/cohort?format=json", json=BODY)
    data = response.get_json()
    cohort, dates, totals = expected(seeded, BODY)
    assert data["cohort"] == cohort
    assert data["dates"] == [date.isoformat() for date in dates]
    assert data["dates"][-1] == NOW.date().isoformat() + "T00:00:00+00:00"
    assert data["row_totals"] == totals
    column_cells = [[row[j] for row in cohort if row[j] is not None] for j in range(3)]
    assert data["column_totals"] == [sum(cells) for cells in column_cells]
    assert data["averages"] == [sum(cells) / len(cells) for cells in column_cells]
    assert data["percentages"][0][0] == 100 * cohort[0][0] / totals[0]
    assert data["request"] == BODY


def test_csv_format_is_a_download_of_the_same_numbers(seeded: Flask) -> None:
    response = seeded.test_client().post("/bitmapist/cohort?format=csv", json=BODY)
    assert response.mimetype == "text/csv"
    assert (
        response.headers["Content-Disposition"]
        == 'attachment; filename="cohort-signup-play.csv"'
    )
    lines = list(csv.reader(io.StringIO(response.text)))
    cohort, dates, totals = expected(seeded, BODY)
    assert lines[0] == ["period", "users", "+0 days", "+1 days", "+2 days"]
    for line, date, total, row in zip(lines[1:4], dates, totals, cohort, strict=True):
        assert line == [
            date.date().isoformat(),
            str(total),
            *("" if cell is None else str(cell) for cell in row),
        ]
    assert lines[4][0] == "average" and lines[5][0] == "total"
    assert len(lines) == 6


def test_csv_as_percent_has_two_decimals(seeded: Flask) -> None:
    body = {**BODY, "as_percent": True}
    lines = list(
        csv.reader(
            io.StringIO(
                seeded.test_client()
                .post("/bitmapist/cohort?format=csv", json=body)
                .text
            )
        )
    )
    cohort, _, totals = expected(seeded, body)
    assert lines[1][2] == f"{100 * cohort[0][0] / totals[0]:.2f}"


def test_get_with_query_renders_the_form_and_heatmap_and_downloads(
    seeded: Flask,
) -> None:
    query = (
        "primary_event=signup&secondary_event=play&additional_event=pay"
        "&additional_op=or&time_group=days&num_rows=3&num_cols=3"
    )
    client = seeded.test_client()
    page = client.get(f"/bitmapist/cohort?{query}")
    assert page.status_code == 200
    cohort, _, _ = expected(seeded, BODY)
    assert cells_of(page.text) == cohort
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
    seeded: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_bitmapist.dashboard.views.MAX_LISTED_EVENTS", 2)
    html = seeded.test_client().get("/bitmapist/").text
    assert list(rows_of(html)) == ["pay", "play"]
    assert "1 more events are not listed; filter by a prefix to see them." in html


def test_prefix_glob_characters_match_literally(app: Flask) -> None:
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
    )
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
        r"\.heat-(\d+) \{ background: (#\w{6});(?: color: (#\w{6});)? \}", STYLESHEET
    )
    assert [int(level) for level, _, _ in shades] == list(range(11))
    for level, background, text in shades:
        assert contrast(background, text or ink) >= 4.5, f"heat-{level}"


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

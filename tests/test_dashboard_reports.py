"""The dashboard's reports of issue 15 over HTTP: the cohort's two retention
modes (form, GET link, JSON POST, CSV, the heatmap's users links), the funnel
page (chart, tables, JSON, CSV, bounds, unknown steps), the event page's
lifecycle and stickiness, and the geometry of their charts; their escaping
and their access rule. The numbers are those of the API on the same data."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import AppFactory
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from flask_bitmapist import CohortRequest, get_cohort, get_cohort_cell, mark_event
from flask_bitmapist.dashboard.chart import (
    Bar,
    PercentTick,
    Segment,
    Tick,
    funnel_chart,
    stacked_bar_chart,
    stickiness_chart,
)
from flask_bitmapist.report.funnel import get_funnel
from flask_bitmapist.report.lifecycle import get_lifecycle
from flask_bitmapist.report.stickiness import get_stickiness
from flask_bitmapist.store.layout import Period
from flask_bitmapist.testing import free_port

NOW = datetime.now(timezone.utc)
XSS = "<script>alert(1)</script>"
ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"


def mark_days(app: Flask, event: str, users_by_day: dict[int, Any]) -> None:
    """Mark ``event`` for each day ``days_ago`` with its users."""
    with app.app_context():
        for days_ago, users in users_by_day.items():
            for user in users:
                mark_event(event, user, now=NOW - timedelta(days=days_ago))


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


def body_text(page: str, element_id: str) -> str:
    """The text of the element with ``element_id``, tags dropped, entities
    decoded and spaces collapsed (the element must not hold one of its own
    tag)."""
    found = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id}"
    return html.unescape(" ".join(re.sub(r"<[^>]+>", "", found.group(2)).split()))


def table_rows(page: str, table_id: str, part: str = "tbody") -> list[list[str]]:
    """The text of each cell of each row of a part of the table with
    ``table_id``, entities decoded."""
    table = re.search(rf'<table[^>]* id="{table_id}"[^>]*>(.*?)</table>', page, re.S)
    assert table, f"no #{table_id}"
    section = re.search(rf"<{part}>(.*?)</{part}>", table.group(1), re.S)
    assert section, f"no {part} in #{table_id}"
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell).strip())
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", section.group(1), re.S)
    ]


def link(page: str, element_id: str) -> str | None:
    """The href of the link with ``element_id``, unescaped, or ``None``."""
    found = re.search(rf'<a id="{element_id}"[^>]* href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def scans(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the pattern of each SCAN walk over the app's store."""
    patterns: list[str] = []
    store = app.extensions["bitmapist"].state(app).store
    original = store.client.scan_iter

    def counting(match: Any = None, **kwargs: Any) -> Any:
        patterns.append(match)
        return original(match=match, **kwargs)

    monkeypatch.setattr(store.client, "scan_iter", counting)
    return patterns


# The funnel


def seed_funnel(app: Flask) -> Flask:
    """Signups over three days, then plays and payments: worked by hand in
    FUNNEL_ROWS."""
    mark_days(app, "signup", {2: range(0, 10), 1: range(10, 16), 0: range(16, 20)})
    mark_days(app, "play", {2: range(0, 6), 1: [0, 1, 2, 10, 11, 12, 13], 0: [16]})
    mark_days(app, "pay", {1: [0, 1], 0: [10, 16]})
    return app


FUNNEL_QUERY = (
    "steps=signup&steps=play&steps=pay&time_group=days&num_periods=3&within=7"
)
# Users 0..9 entered two days ago, 0..5 played that day and 0 and 1 paid the
# next; 10..15 entered yesterday, 10..13 played then and 10 paid today;
# 16..19 entered today, and 16 played and paid.
FUNNEL_ROWS = [[10, 6, 2], [6, 4, 1], [4, 1, 1]]
FUNNEL_COUNTS = [20, 11, 4]


@pytest.fixture
def funnel_app(store_app: Flask) -> Flask:
    return seed_funnel(store_app)


def test_funnel_json_is_get_funnel_on_the_same_data(funnel_app: Flask) -> None:
    response = funnel_app.test_client().get(
        f"/bitmapist/funnel?format=json&{FUNNEL_QUERY}"
    )
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    with funnel_app.app_context():
        funnel = get_funnel(["signup", "play", "pay"], "days", 3, 7)
    assert response.get_json() == funnel.to_json()
    assert funnel.rows == FUNNEL_ROWS
    assert response.get_json() == {
        "steps": ["signup", "play", "pay"],
        "time_group": "days",
        "num_periods": 3,
        "within": 7,
        "dates": [f"{day(days_ago)}T00:00:00+00:00" for days_ago in (2, 1, 0)],
        "rows": FUNNEL_ROWS,
        "counts": FUNNEL_COUNTS,
        "conversion_from_previous": [100.0, 55.0, 100 * 4 / 11],
        "conversion_from_first": [100.0, 55.0, 20.0],
    }


def test_funnel_csv_is_an_exact_download(funnel_app: Flask) -> None:
    response = funnel_app.test_client().get(
        f"/bitmapist/funnel?format=csv&{FUNNEL_QUERY}"
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="funnel-signup-play-pay.csv"'
    )
    assert response.text == (
        "period,signup,play,pay\r\n"
        f"{day(2)},10,6,2\r\n"
        f"{day(1)},6,4,1\r\n"
        f"{day(0)},4,1,1\r\n"
        "total,20,11,4\r\n"
    )


def test_funnel_page_shows_the_counts_conversions_and_drop_off(
    funnel_app: Flask,
) -> None:
    page = funnel_app.test_client().get(f"/bitmapist/funnel?{FUNNEL_QUERY}")
    assert page.status_code == 200
    assert table_rows(page.text, "funnel-steps-table") == [
        ["1", "signup", "20", "100.0%", "100.0%", "0"],
        ["2", "play", "11", "55.0%", "55.0%", "9"],
        ["3", "pay", "4", "36.4%", "20.0%", "7"],
    ]
    assert table_rows(page.text, "funnel-periods-table") == [
        [day(2), "10", "6", "2"],
        [day(1), "6", "4", "1"],
        [day(0), "4", "1", "1"],
    ]
    assert table_rows(page.text, "funnel-periods-table", "tfoot") == [
        ["Total", "20", "11", "4"]
    ]
    assert table_rows(page.text, "funnel-periods-table", "thead") == [
        ["Day", "1. signup", "2. play", "3. pay"]
    ]
    assert body_text(page.text, "funnel-description") == (
        "A user enters on the first day of the last 3 days (UTC) on which they "
        "did signup, once. Each later step counts them on the first day they "
        "did it, from the day they did the step before up to 7 days after the "
        "day they entered; steps done on the same day count as in order."
    )
    # The chart says the same in its text lines.
    labels = [
        html.unescape(text)
        for text in re.findall(
            r'<text class="step-(?:label|numbers)"[^>]*>(.*?)</text>', page.text
        )
    ]
    assert labels == [
        "1. signup",
        "20 users",
        "2. play",
        "11 users, 55.0% of step 1; 9 dropped off",
        "3. pay",
        "4 users, 36.4% of step 2, 20.0% of step 1; 7 dropped off",
    ]
    assert '<p id="funnel-error" class="error" role="alert" hidden></p>' in page.text


def rects(page: str, kind: str) -> list[tuple[float, float, float, float, str]]:
    """Each ``<rect class="kind">``'s x, y, width, height and title."""
    return [
        (float(x), float(y), float(width), float(height), html.unescape(title))
        for x, y, width, height, title in re.findall(
            rf'<rect class="{kind}" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" '
            r'height="([\d.]+)"><title>(.*?)</title></rect>',
            page,
        )
    ]


def test_funnel_bars_are_proportional_to_the_counts(funnel_app: Flask) -> None:
    page = funnel_app.test_client().get(f"/bitmapist/funnel?{FUNNEL_QUERY}").text
    bars = rects(page, "funnel-bar")
    # 704 units for the first step's 20 users.
    assert [(width, title) for _, _, width, _, title in bars] == [
        (704.0, "Step 1, signup: 20 users"),
        (387.2, "Step 2, play: 11 users"),
        (140.8, "Step 3, pay: 4 users"),
    ]
    assert {(x, height) for x, _, _, height, _ in bars} == {(8.0, 24.0)}
    dropped = rects(page, "funnel-dropped")
    assert dropped == [
        (395.2, bars[1][1], 316.8, 24.0, "Dropped off before step 2: 9 users"),
        (148.8, bars[2][1], 246.4, 24.0, "Dropped off before step 3: 7 users"),
    ]
    for (_, _, width, _, _), count in zip(bars, FUNNEL_COUNTS, strict=True):
        assert width == round(704 * count / 20, 2)


def test_funnel_page_links_its_data_with_get_funnel_s_argument_names(
    funnel_app: Flask,
) -> None:
    client = funnel_app.test_client()
    page = client.get(f"/bitmapist/funnel?{FUNNEL_QUERY}").text
    csv_link = link(page, "download-csv")
    json_link = link(page, "download-json")
    assert csv_link == f"/bitmapist/funnel?{FUNNEL_QUERY}&format=csv"
    assert json_link == f"/bitmapist/funnel?{FUNNEL_QUERY}&format=json"
    assert client.get(json_link).get_json()["rows"] == FUNNEL_ROWS
    assert client.get(csv_link).text.endswith("total,20,11,4\r\n")
    # The form shows what was asked, one input per step.
    assert re.findall(r'<input name="steps" [^>]*value="([^"]*)"', page) == [
        "signup",
        "play",
        "pay",
        "",  # the template's row, for the script to copy
    ]
    assert (
        'id="num_periods" name="num_periods" type="number" min="1" max="366" value="3"'
        in page
    )
    assert 'id="within" name="within" type="number" min="0" max="366" value="7"' in page
    assert '<option value="days" selected>day</option>' in page
    assert 'aria-current="page">Funnels</a>' in page


def test_a_fresh_funnel_form_offers_two_steps_and_the_events(
    funnel_app: Flask,
) -> None:
    page = funnel_app.test_client().get("/bitmapist/funnel")
    assert page.status_code == 200
    assert (
        re.findall(r'<input name="steps" [^>]*value="([^"]*)"', page.text) == [""] * 3
    )
    assert re.findall(r'<option value="([^"]+)"></option>', page.text) == [
        "pay",
        "play",
        "signup",
    ]
    assert 'id="funnel-result"' not in page.text
    assert link(page.text, "download-csv") is None
    # Every page links to it.
    overview = funnel_app.test_client().get("/bitmapist/").text
    assert '<a href="/bitmapist/funnel">Funnels</a>' in overview


def test_empty_step_inputs_are_left_out(funnel_app: Flask) -> None:
    data = (
        funnel_app.test_client()
        .get(
            "/bitmapist/funnel?format=json&steps=signup&steps=&steps=play&num_periods=3"
        )
        .get_json()
    )
    assert data["steps"] == ["signup", "play"]
    assert data["counts"] == [20, 11]


def test_a_funnel_in_weeks_says_so(funnel_app: Flask) -> None:
    page = funnel_app.test_client().get(
        "/bitmapist/funnel?steps=signup&steps=play&time_group=weeks&num_periods=1&within=0"
    )
    assert page.status_code == 200
    assert body_text(page.text, "funnel-description") == (
        "A user enters in the first week of the last 1 week (UTC) in which they "
        "did signup, once. Each later step counts them if they did it in the "
        "week they entered; steps done in the same week count as in order."
    )
    week = Period.of("week", NOW).label
    assert table_rows(page.text, "funnel-periods-table")[0][0] == week
    with funnel_app.app_context():
        funnel = get_funnel(["signup", "play"], "weeks", 1, 0)
    assert table_rows(page.text, "funnel-periods-table") == [
        [week, *map(str, funnel.rows[0])]
    ]


FUNNEL_ERRORS = [
    (
        "steps=signup&steps=play&num_periods=367",
        "num_periods",
        "num_periods: must be from 1 to 366, got 367.",
    ),
    (
        "steps=signup&steps=play&num_periods=0",
        "num_periods",
        "num_periods: must be from 1 to 366, got 0.",
    ),
    (
        "steps=signup&steps=play&within=-1",
        "within",
        "within: must be an int from 0 to 366, got '-1'.",
    ),
    (
        "steps=signup&steps=play&within=367",
        "within",
        "within: must be from 0 to 366, got 367.",
    ),
    (
        "steps=signup&" * 11,
        "steps",
        "steps: must hold from 2 to 10 event names, got 11.",
    ),
    ("steps=signup", "steps", "steps: must hold from 2 to 10 event names, got 1."),
    ("", "steps", "steps: must hold from 2 to 10 event names, got 0."),
    (
        "steps=signup&steps=a%20b",
        "steps[1]",
        "steps[1]: must not contain whitespace or control characters, got 'a b'.",
    ),
    (
        "steps=signup&steps=plya",
        "steps[1]",
        "steps[1]: Unknown event 'plya'; did you mean play?",
    ),
    (
        "steps=sigup&steps=play&steps=zzz",
        "steps[0]",
        "steps[0]: Unknown event 'sigup'; did you mean signup?",
    ),
    ("steps=signup&steps=play&steps=zzz", "steps[2]", "steps[2]: Unknown event 'zzz'."),
    (
        "steps=signup&steps=play&time_group=hours",
        "time_group",
        "time_group: must be one of days, weeks, months, years (or the singular), "
        "got 'hours'.",
    ),
    (
        "steps=signup&" * 10 + "num_periods=366&within=366",
        "within",
        "within: num_periods x (within + 1) x (steps - 1) must be at most 20000, "
        "got 366 x 367 x 9 = 1208898.",
    ),
    (
        "steps=signup&steps=play&num_periods=100&within=200",
        "within",
        "within: num_periods x (within + 1) x (steps - 1) must be at most 20000, "
        "got 100 x 201 x 1 = 20100.",
    ),
]


@pytest.mark.parametrize(("query", "field", "message"), FUNNEL_ERRORS)
def test_bad_funnel_queries_answer_400_naming_the_field(
    funnel_app: Flask, query: str, field: str, message: str
) -> None:
    client = funnel_app.test_client()
    for fmt in ("json", "csv"):
        response = client.get(f"/bitmapist/funnel?format={fmt}&{query}")
        assert response.status_code == 400
        assert response.get_json() == {"error": message, "field": field}
    page = client.get(f"/bitmapist/funnel?steps=&{query}")
    assert page.status_code == 400
    assert body_text(page.text, "funnel-error") == message
    assert 'id="funnel-result"' not in page.text


def test_a_funnel_at_the_bound_of_its_cells_runs(funnel_app: Flask) -> None:
    response = funnel_app.test_client().get(
        "/bitmapist/funnel?format=json&steps=signup&steps=play"
        "&num_periods=100&within=199"
    )
    assert response.status_code == 200
    assert response.get_json()["counts"] == [20, 11]


def test_an_unknown_format_answers_400(funnel_app: Flask) -> None:
    response = funnel_app.test_client().get(
        f"/bitmapist/funnel?format=xml&{FUNNEL_QUERY}"
    )
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "format: must be html, json or csv.",
        "field": "format",
    }


def test_only_a_funnel_with_an_empty_step_lists_the_events(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_funnel(app)
    mark_days(app, "old", {400: [1]})
    patterns = scans(app, monkeypatch)
    client = app.test_client()
    assert (
        client.get(f"/bitmapist/funnel?format=json&{FUNNEL_QUERY}").status_code == 200
    )
    assert patterns == []
    # A step nobody completed may be an unknown name: one walk tells.
    response = client.get("/bitmapist/funnel?format=json&steps=signup&steps=old")
    assert response.status_code == 200
    assert response.get_json()["counts"] == [20, 0]
    assert patterns == ["trackist_*"]


def test_a_funnel_with_a_step_repeated(funnel_app: Flask) -> None:
    data = (
        funnel_app.test_client()
        .get("/bitmapist/funnel?format=json&steps=play&steps=play&num_periods=3")
        .get_json()
    )
    with funnel_app.app_context():
        assert data == get_funnel(["play", "play"], "days", 3, 7).to_json()
    # Everyone who played did it again in their entry day.
    assert data["counts"] == [11, 11]


# The lifecycle and stickiness on the event page


def seed_lifecycle(app: Flask) -> Flask:
    """Plays over a few days, with a user back after a gap (resurrecting) and
    one of long ago."""
    mark_days(
        app,
        "play",
        {
            40: [7],
            5: [20],
            2: range(0, 6),
            1: [0, 1, 2, 10, 11, 12, 13],
            0: [16, 20, 7],
        },
    )
    return app


def lifecycle_rows(page: str) -> list[list[int | str]]:
    return [[row[0], *map(int, row[1:])] for row in table_rows(page, "lifecycle-table")]


def test_event_page_lifecycle_table_is_get_lifecycle(store_app: Flask) -> None:
    app = seed_lifecycle(store_app)
    page = app.test_client().get("/bitmapist/event/play")
    assert page.status_code == 200
    with app.app_context():
        lifecycle = get_lifecycle("play", "days", 30)
    # Newest first, as the page's other tables.
    assert lifecycle_rows(page.text) == [
        [
            row.date.date().isoformat(),
            row.new,
            row.returning,
            row.resurrecting,
            row.dormant,
            row.active,
        ]
        for row in reversed(lifecycle)
    ]
    # Worked by hand: today 16 is new, 20 and 7 are back after a gap, and
    # the 7 of yesterday are gone; yesterday 0..2 returned, 10..13 were new
    # and 3..5 went; two days ago 0..5 were new.
    assert lifecycle_rows(page.text)[:3] == [
        [day(0), 1, 0, 2, 7, 3],
        [day(1), 4, 3, 0, 3, 7],
        [day(2), 6, 0, 0, 0, 6],
    ]
    assert body_text(page.text, "lifecycle-heading") == (
        "Lifecycle, last 30 days (UTC)"
    )


def test_lifecycle_chart_is_its_geometry_with_dormant_below_the_axis(
    app: Flask,
) -> None:
    seed_lifecycle(app)
    page = app.test_client().get("/bitmapist/event/play").text
    with app.app_context():
        lifecycle = get_lifecycle("play", "days", 30)
    chart = stacked_bar_chart(
        [row.date.date().isoformat() for row in lifecycle],
        above=[
            (series, [getattr(row, series) for row in lifecycle])
            for series in ("new", "returning", "resurrecting")
        ],
        below=[("dormant", [row.dormant for row in lifecycle])],
    )
    drawn = [
        (float(x), float(y), float(width), float(height), series, title)
        for series, x, y, width, height, title in re.findall(
            r'<rect class="(new|returning|resurrecting|dormant)" x="([\d.]+)" '
            r'y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"><title>(.*?)</title>',
            page,
        )
    ]
    assert drawn == [
        (
            segment.x,
            segment.y,
            segment.width,
            segment.height,
            segment.series,
            f"{segment.label}: {segment.value} {segment.series}",
        )
        for segment in chart.segments
    ]
    today = [segment for segment in chart.segments if segment.label == day(0)]
    assert [(s.series, s.value) for s in today] == [
        ("new", 1),
        ("resurrecting", 2),
        ("dormant", 7),
    ]
    assert today[-1].y == chart.zero
    assert all(s.y + s.height <= chart.zero + 0.01 for s in today[:-1])
    assert f'y1="{chart.zero}" y2="{chart.zero}"' in page


def stickiness_counts(page: str, unit: str) -> list[int]:
    rows = table_rows(page, f"stickiness-{unit}-table")
    assert [row[0] for row in rows] == [str(days) for days in range(1, len(rows) + 1)]
    return [int(row[1]) for row in rows]


def days_in(unit: str, users_by_day: dict[int, list[int]]) -> list[int]:
    """The users with exactly k days of marks in now's week or month, k = 1
    .. days of the period: worked from the marks, not by the package."""
    period = Period.of(unit, NOW)
    end = period.end
    assert end is not None
    per_user: dict[int, int] = {}
    for days_ago, users in users_by_day.items():
        when = NOW - timedelta(days=days_ago)
        if period.start <= when < end:
            for user in users:
                per_user[user] = per_user.get(user, 0) + 1
    length = (end - period.start).days
    return [
        sum(1 for count in per_user.values() if count == days)
        for days in range(1, length + 1)
    ]


def test_event_page_stickiness_tables_are_get_stickiness(store_app: Flask) -> None:
    app = store_app
    users_by_day = {0: [1, 2, 3], 1: [1, 2], 2: [1], 3: [4], 9: [1, 5]}
    mark_days(app, "visit", users_by_day)
    page = app.test_client().get("/bitmapist/event/visit").text
    with app.app_context():
        weeks = get_stickiness("visit", "weeks")
        months = get_stickiness("visit", "months")
    assert stickiness_counts(page, "week") == weeks == days_in("week", users_by_day)
    assert stickiness_counts(page, "month") == months == days_in("month", users_by_day)
    assert len(weeks) == 7
    week = Period.of("week", NOW)
    month = Period.of("month", NOW)
    assert body_text(page, "stickiness-week-heading") == (
        f"Stickiness this week ({week.label})"
    )
    assert body_text(page, "stickiness-month-heading") == (
        f"Stickiness this month ({month.label})"
    )


def test_stickiness_bars_are_bar_chart_of_the_counts(app: Flask) -> None:
    mark_days(app, "visit", {0: [1, 2, 3], 1: [1, 2]})
    page = app.test_client().get("/bitmapist/event/visit").text
    with app.app_context():
        weeks = get_stickiness("visit", "weeks")
    chart = stickiness_chart(weeks)
    section = page.split('id="stickiness-week-heading"', 1)[1].split("</section>")[0]
    assert rects(section, "bar") == [
        (
            bar.x,
            bar.y,
            bar.width,
            bar.height,
            f"{bar.label} {'day' if bar.label == '1' else 'days'}: {bar.value} users",
        )
        for bar in chart.bars
    ]


def test_event_page_of_an_event_without_recent_marks_draws_empty_charts(
    app: Flask,
) -> None:
    mark_days(app, "ancient", {3 * 366: [1, 2]})
    page = app.test_client().get("/bitmapist/event/ancient")
    assert page.status_code == 200
    assert lifecycle_rows(page.text)[0] == [day(0), 0, 0, 0, 0, 0]
    assert stickiness_counts(page.text, "week") == [0] * 7
    assert not re.search(
        r'<rect class="(new|returning|resurrecting|dormant)"', page.text
    )


# The cohort's retention modes


def seed_cohort(app: Flask) -> Flask:
    """Signups over three days (users 0..3 also long before), and plays."""
    mark_days(
        app,
        "signup",
        {9: range(0, 4), 2: range(0, 10), 1: [*range(10, 16), 0, 1], 0: range(16, 20)},
    )
    mark_days(app, "play", {2: range(0, 3), 1: [3, 4, 10, 11], 0: [0, 5, 10, 16]})
    return app


MODES_QUERY = (
    "primary_event=signup&secondary_event=play&time_group=days&num_rows=3"
    "&num_cols=3&cohort=first_time&retention=on_or_after"
)
MODES_BODY = {
    "primary_event": "signup",
    "secondary_event": "play",
    "num_rows": 3,
    "num_cols": 3,
    "cohort": "first_time",
    "retention": "on_or_after",
}
# Worked by hand: first-time rows are 4..9 two days ago (0..3 signed up
# before), 10..15 yesterday (0 and 1 again), 16..19 today; a cell counts
# those who played that day or any day after it.
MODES_COHORT = [[2, 2, 1], [2, 1, None], [1, None, None]]
MODES_TOTALS = [6, 6, 4]


def cells_of(page: str) -> list[list[int | None]]:
    """The heatmap's cells, row by row, from their data attributes."""
    table: dict[int, dict[int, int | None]] = {}
    for row, col, count in re.findall(
        r'data-row="(\d+)" data-col="(\d+)"(?: data-count="(\d+)")?', page
    ):
        table.setdefault(int(row), {})[int(col)] = int(count) if count else None
    return [[cols[col] for col in sorted(cols)] for _, cols in sorted(table.items())]


@pytest.mark.parametrize(
    ("cohort", "retention"),
    [
        ("recurring", "on"),
        ("first_time", "on"),
        ("recurring", "on_or_after"),
        ("first_time", "on_or_after"),
    ],
)
def test_cohort_modes_round_trip_through_link_post_and_csv(
    store_app: Flask, cohort: str, retention: str
) -> None:
    app = seed_cohort(store_app)
    client = app.test_client()
    body = {**MODES_BODY, "cohort": cohort, "retention": retention}
    with app.app_context():
        expected, dates, totals = get_cohort(
            "signup", "play", num_rows=3, num_cols=3, cohort=cohort, retention=retention
        )
    if (cohort, retention) == ("first_time", "on_or_after"):
        assert (expected, totals) == (MODES_COHORT, MODES_TOTALS)
    query = (
        "primary_event=signup&secondary_event=play&time_group=days&num_rows=3"
        f"&num_cols=3&cohort={cohort}&retention={retention}"
    )
    page = client.get(f"/bitmapist/cohort?{query}")
    assert page.status_code == 200
    assert cells_of(page.text) == expected
    for name, value in (("cohort", cohort), ("retention", retention)):
        assert re.search(
            rf'<input id="{name}-{value}" name="{name}" type="radio" value="{value}" checked>',
            page.text,
        )
    posted = client.post("/bitmapist/cohort?format=json", json=body).get_json()
    assert posted["cohort"] == expected
    assert posted["row_totals"] == totals
    assert posted["request"]["cohort"] == cohort
    assert posted["request"]["retention"] == retention
    fragment = client.post("/bitmapist/cohort", json=body).text
    assert cells_of(fragment) == expected
    lines = list(
        csv.reader(
            io.StringIO(client.get(f"/bitmapist/cohort?format=csv&{query}").text)
        )
    )
    assert lines[1:4] == [
        [
            date.date().isoformat(),
            str(total),
            *("" if c is None else str(c) for c in row),
        ]
        for date, total, row in zip(dates, totals, expected, strict=True)
    ]
    # The downloads and the JSON link carry the modes, but only the ones
    # that are not the defaults.
    download = link(page.text, "download-json")
    assert download is not None
    asked = parse_qs(urlsplit(download).query)
    assert asked.get("cohort", ["recurring"]) == [cohort]
    assert asked.get("retention", ["on"]) == [retention]
    assert client.get(download).get_json()["cohort"] == expected


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        (
            {"cohort": "first_time"},
            "Each row: the users who did signup for the first time on that day. "
            "Each cell: how many of them did play N days later, counted once, on "
            "the first day they came back.",
        ),
        (
            {"retention": "on_or_after", "with_replacement": True},
            "Each row: the users who did signup on that day. Each cell: how many "
            "of them did play N days later or on any later day.",
        ),
        (
            {"cohort": "first_time", "retention": "on_or_after", "as_percent": True},
            "Each row: the users who did signup for the first time on that day. "
            "Each cell: the percent of them who did play N days later or on any "
            "later day.",
        ),
        (
            {"cohort": "first_time", "time_group": "weeks"},
            "Each row: the users who did signup for the first time in that week. "
            "Each cell: how many of them did play N weeks later, counted once, in "
            "the first week they came back.",
        ),
    ],
)
def test_the_heatmap_says_what_it_counts_in_each_mode(
    app: Flask, changes: dict[str, Any], description: str
) -> None:
    seed_cohort(app)
    body = {**MODES_BODY, "cohort": "recurring", "retention": "on", **changes}
    fragment = app.test_client().post("/bitmapist/cohort", json=body).text
    assert body_text(fragment, "heatmap-caption") == description
    assert CohortRequest.from_json(body).description == description
    query = "&".join(f"{name}={value}" for name, value in changes.items())
    page = app.test_client().get(
        f"/bitmapist/cohort?primary_event=signup&secondary_event=play&{query}"
    )
    assert body_text(page.text, "heatmap-caption") == description


def test_a_fresh_cohort_form_selects_the_default_modes(app: Flask) -> None:
    page = app.test_client().get("/bitmapist/cohort").text
    for name, value in (("cohort", "recurring"), ("retention", "on")):
        assert (
            f'<input id="{name}-{value}" name="{name}" type="radio" value="{value}" checked>'
            in page
        )
    assert page.count(" checked>") == 3  # and with_replacement
    for field in (
        "cohort-recurring",
        "cohort-first_time",
        "retention-on",
        "retention-on_or_after",
    ):
        assert f'<label for="{field}">' in page


def heatmap_links(page: str) -> dict[tuple[int, int], str]:
    return {
        (int(row), int(col)): html.unescape(href)
        for row, col, href in re.findall(
            r'data-row="(\d+)" data-col="(\d+)" data-count="\d+"[^>]*>'
            r'<a (?:class="value" )?href="([^"]+)"',
            page,
        )
    }


def test_heatmap_cell_links_carry_the_modes_to_the_users_pages(
    store_app: Flask,
) -> None:
    app = seed_cohort(store_app)
    client = app.test_client()
    page = client.get(f"/bitmapist/cohort?{MODES_QUERY}").text
    links = heatmap_links(page)
    assert sorted(links) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]
    for (row, column), href in links.items():
        query = parse_qs(urlsplit(href).query)
        assert query["cohort"] == ["first_time"]
        assert query["retention"] == ["on_or_after"]
        data = client.get(f"{href}&format=json").get_json()
        with app.app_context():
            cell = get_cohort_cell(
                "signup",
                "play",
                num_rows=3,
                num_cols=3,
                row=row,
                column=column,
                cohort="first_time",
                retention="on_or_after",
            )
            users = sorted(cell)
        assert data["count"] == MODES_COHORT[row][column] == len(users)
        assert sorted(data["users"]) == users
        assert data["request"]["cohort"] == "first_time"
        assert data["request"]["retention"] == "on_or_after"
    # Row 0's users who played two days ago or later: 4 yesterday, 5 today.
    assert sorted(client.get(f"{links[0, 0]}&format=json").get_json()["users"]) == [
        4,
        5,
    ]
    described = client.get(links[0, 1]).text
    assert body_text(described, "cell-description") == (
        f"Users who did signup for the first time on {day(2)}, then play 1 day "
        f"later, on {day(1)}, or on any day after it (UTC; row 0, column +1 days)."
    )
    back = re.search(r'<a href="([^"]+)">The cohort</a>', described)
    assert back and html.unescape(back.group(1)) == f"/bitmapist/cohort?{MODES_QUERY}"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        (
            "cohort=first",
            "cohort",
            "cohort: must be 'recurring' or 'first_time', got 'first'.",
        ),
        (
            "retention=after",
            "retention",
            "retention: must be 'on' or 'on_or_after', got 'after'.",
        ),
    ],
)
def test_bad_modes_answer_400_naming_the_field(
    app: Flask, query: str, field: str, message: str
) -> None:
    client = app.test_client()
    base = "primary_event=signup&secondary_event=play&num_rows=3&num_cols=3"
    expected = {"error": message, "field": field}
    response = client.get(f"/bitmapist/cohort?format=json&{base}&{query}")
    assert (response.status_code, response.get_json()) == (400, expected)
    cell = client.get(
        f"/bitmapist/users/cohort?format=json&{base}&{query}&row=0&column=0"
    )
    assert (cell.status_code, cell.get_json()) == (400, expected)
    name, value = query.split("=")
    posted = client.post("/bitmapist/cohort", json={**MODES_BODY, name: value})
    assert (posted.status_code, posted.get_json()) == (400, expected)
    page = client.get(f"/bitmapist/cohort?{base}&{query}")
    assert page.status_code == 400
    assert body_text(page.text, "cohort-error") == message


# Escaping, access and failures


def test_hostile_event_names_are_escaped_on_the_new_pages(app: Flask) -> None:
    mark_days(app, XSS, {1: [1, 2], 0: [1, 3]})
    mark_days(app, "signup", {0: [1, 2, 3]})
    client = app.test_client()
    funnel = client.get(
        "/bitmapist/funnel?steps=%3Cscript%3Ealert(1)%3C/script%3E&steps=signup&num_periods=2"
    )
    event = client.get("/bitmapist/event/%3Cscript%3Ealert(1)%3C/script%3E")
    cohort = client.get(
        "/bitmapist/cohort?primary_event=%3Cscript%3Ealert(1)%3C/script%3E"
        "&secondary_event=signup&num_rows=2&num_cols=2&cohort=first_time"
    )
    for response in (funnel, event, cohort):
        assert response.status_code == 200
        assert "<script>" not in response.text
        assert ESCAPED_XSS in response.text
    assert table_rows(funnel.text, "funnel-steps-table")[0][1] == XSS
    assert body_text(cohort.text, "heatmap-caption").startswith(
        f"Each row: the users who did {XSS} for the first time on that day."
    )
    download = client.get(
        "/bitmapist/funnel?format=csv&steps=%3Cscript%3Ealert(1)%3C/script%3E&steps=signup"
    )
    assert download.headers["Content-Disposition"] == (
        'attachment; filename="funnel--script-alert-1-script--signup.csv"'
    )
    # The CSV holds the name as it is: it is data, not a page.
    assert download.text.startswith(f"period,{XSS},signup\r\n")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    unknown = client.get(
        "/bitmapist/funnel?steps=signup&steps=%3Cscript%3Ealert(2)%3C/script%3E"
    )
    assert unknown.status_code == 400
    assert "<script>" not in unknown.text
    assert body_text(unknown.text, "funnel-error") == (
        "steps[1]: Unknown event '<script>alert(2)</script>'; did you mean "
        "<script>alert(1)</script>?"
    )


def test_a_long_step_name_is_cut_in_the_chart_only(app: Flask) -> None:
    name = "x" * 200
    mark_days(app, name, {0: [1]})
    mark_days(app, "signup", {0: [1]})
    page = app.test_client().get(f"/bitmapist/funnel?steps={name}&steps=signup").text
    assert f'<text class="step-label" x="8" y="18">1. {"x" * 27}…</text>' in page
    assert table_rows(page, "funnel-steps-table")[0][1] == name


NEW_PAGES = [
    "/bitmapist/funnel",
    f"/bitmapist/funnel?{FUNNEL_QUERY}",
    f"/bitmapist/funnel?format=json&{FUNNEL_QUERY}",
    f"/bitmapist/funnel?format=csv&{FUNNEL_QUERY}",
    "/bitmapist/event/play",
    f"/bitmapist/cohort?format=csv&{MODES_QUERY}",
    f"/bitmapist/users/cohort?{MODES_QUERY}&row=0&column=0",
]


def test_the_new_pages_are_closed_outside_debug_and_testing(
    make_app: AppFactory,
) -> None:
    # A testing app writes at once; the others in the background.
    seed_funnel(make_app(name="writer"))
    closed = make_app(testing=False)
    for url in NEW_PAGES:
        response = closed.test_client().get(url)
        assert response.status_code == 403
        if "format=" in url:
            assert response.get_json() == {
                "error": "The dashboard is closed: see BITMAPIST_DASHBOARD_ACCESS."
            }
        else:
            assert "<h1>The analytics dashboard is closed</h1>" in response.text
        assert "signup" not in response.text
    opened = make_app(testing=False, dashboard_access=lambda: True, name="opened")
    debug = make_app(testing=False, name="debug")
    debug.debug = True
    refused = make_app(testing=True, dashboard_access=lambda: False, name="refused")
    for url in NEW_PAGES:
        assert opened.test_client().get(url).status_code == 200, url
        assert debug.test_client().get(url).status_code == 200, url
        assert refused.test_client().get(url).status_code == 403, url


def test_the_new_pages_refuse_other_sites_and_send_the_headers(
    funnel_app: Flask,
) -> None:
    client = funnel_app.test_client()
    for url in NEW_PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Content-Security-Policy"].startswith(
            "default-src 'self'; script-src 'self'; style-src 'self'"
        )
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script>" not in response.text and " style=" not in response.text
        refused = client.get(url, headers={"Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403
        assert "signup" not in refused.text


def test_redis_unreachable_answers_503(make_app: AppFactory) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    for url in NEW_PAGES:
        response = client.get(url)
        assert response.status_code == 503, url
        if "format=" in url:
            assert response.get_json() == {"error": "analytics store unavailable"}
        else:
            assert "Analytics store unavailable" in response.text
        assert "Traceback" not in response.text


funnel_fields = st.sampled_from(
    ["steps", "time_group", "num_periods", "within", "format", "other"]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pairs=st.lists(
        st.tuples(
            funnel_fields,
            st.text(max_size=12)
            | st.sampled_from(["signup", "play", "0", "366", "days", "json", "csv"]),
        ),
        max_size=12,
    )
)
def test_no_query_string_makes_the_funnel_page_answer_500(
    app: Flask, pairs: list[tuple[str, str]]
) -> None:
    response = app.test_client().get("/bitmapist/funnel", query_string=MultiDict(pairs))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400 and response.mimetype == "application/json":
        assert set(response.get_json()) == {"error", "field"}
    elif response.status_code == 400:
        assert 'id="funnel-error"' in response.text


# The charts' geometry


def test_stacked_bars_share_one_scale_above_and_below_the_axis() -> None:
    chart = stacked_bar_chart(
        ["a", "b"],
        above=[("new", [3, 1]), ("returning", [1, 0])],
        below=[("dormant", [0, 2])],
    )
    # 4 users up and 2 down at 1 unit a step: 6 steps over 208 units.
    per_unit = 208 / 6
    assert chart.zero == round(8 + 4 * per_unit, 2) == 146.67
    assert chart.labels == ["a", "b"]
    assert chart.ticks == [
        Tick(y=8.0, value=4),
        Tick(y=42.67, value=3),
        Tick(y=77.33, value=2),
        Tick(y=112.0, value=1),
        Tick(y=146.67, value=0),
        Tick(y=181.33, value=-1),
        Tick(y=216.0, value=-2),
    ]
    assert chart.segments == [
        Segment(
            x=49.0, y=42.67, width=334.0, height=104.0, series="new", label="a", value=3
        ),
        Segment(
            x=49.0,
            y=8.0,
            width=334.0,
            height=34.67,
            series="returning",
            label="a",
            value=1,
        ),
        Segment(
            x=385.0,
            y=112.0,
            width=334.0,
            height=34.67,
            series="new",
            label="b",
            value=1,
        ),
        Segment(
            x=385.0,
            y=146.67,
            width=334.0,
            height=69.33,
            series="dormant",
            label="b",
            value=2,
        ),
    ]
    for segment in chart.segments:
        assert abs(segment.height - segment.value * per_unit) <= 0.01


def test_stacked_bars_of_nothing_stand_on_the_bottom() -> None:
    chart = stacked_bar_chart(["a"], above=[("new", [0])], below=[("dormant", [0])])
    assert chart.segments == []
    assert chart.zero == 216
    assert [tick.value for tick in chart.ticks] == [4, 3, 2, 1, 0]


def test_stacked_bars_round_their_scale() -> None:
    chart = stacked_bar_chart(
        ["a", "b"], above=[("new", [130, 7])], below=[("dormant", [0, 45])]
    )
    # 130 rounds up to 160, in steps of 40; 45 below needs two of them.
    assert [tick.value for tick in chart.ticks] == [160, 120, 80, 40, 0, -40, -80]
    tall, short, dormant = chart.segments
    assert tall.height / 130 == pytest.approx(short.height / 7, abs=0.01)
    assert dormant.height / 45 == pytest.approx(tall.height / 130, abs=0.01)
    assert tall.y + tall.height == pytest.approx(chart.zero, abs=0.01)


def test_funnel_bars_are_scaled_to_the_widest() -> None:
    chart = funnel_chart([("a", 20), ("b", 11), ("c", 4)])
    assert [(bar.width, bar.dropped_width, bar.dropped_x) for bar in chart.bars] == [
        (704.0, 0.0, 712.0),
        (387.2, 316.8, 395.2),
        (140.8, 246.4, 148.8),
    ]
    assert [(bar.y, bar.text_y) for bar in chart.bars] == [
        (24, 18),
        (76, 70),
        (128, 122),
    ]
    assert chart.height == 3 * 52 + 24
    assert chart.ticks == [
        PercentTick(x=8.0, percent=0),
        PercentTick(x=184.0, percent=25),
        PercentTick(x=360.0, percent=50),
        PercentTick(x=536.0, percent=75),
        PercentTick(x=712.0, percent=100),
    ]


def test_a_funnel_nobody_entered_has_no_bars() -> None:
    chart = funnel_chart([("a", 0), ("b", 0)])
    assert [(bar.width, bar.dropped_width) for bar in chart.bars] == [(0.0, 0.0)] * 2


def test_a_bar_s_middle() -> None:
    bar = Bar(x=10.0, y=0.0, width=5.5, height=1.0, label="1", value=1)
    assert bar.middle == 12.75


def test_a_stickiness_chart_labels_each_bar_with_its_days() -> None:
    chart = stickiness_chart([4, 2, 0, 1, 0, 0, 0])
    assert (chart.width, chart.height, chart.left) == (360, 180, 36)
    assert [(bar.label, bar.value) for bar in chart.bars] == [
        ("1", 4),
        ("2", 2),
        ("3", 0),
        ("4", 1),
        ("5", 0),
        ("6", 0),
        ("7", 0),
    ]
    # 4 users fill the 148 units above the axis at 156.
    assert [bar.height for bar in chart.bars[:4]] == [148.0, 74.0, 0.0, 37.0]
    assert {bar.y + bar.height for bar in chart.bars} == {156.0}
    assert [bar.middle for bar in chart.bars[:2]] == [59.14, 105.44]
    assert chart.label_step == 1
    # A month's 31 bars of 10.45 units: every other one is labelled.
    assert stickiness_chart([0] * 31).label_step == 2
    assert stickiness_chart([0] * 28).label_step == 2

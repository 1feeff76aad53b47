"""The dashboard's users pages: the users behind each count of the event page
and each cell of the cohort heatmap, paged, as JSON and as a CSV of all of
them, in int mode and with the id map, on every store; their escaping, their
errors and their access rule."""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import AppFactory
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from flask_bitmapist import canonical_id, mark_event
from flask_bitmapist.testing import free_port

NOW = datetime.now(timezone.utc)
TODAY = NOW.date().isoformat()
XSS = "<script>alert(1)</script>"


@pytest.fixture(params=[False, True], ids=["int", "map"])
def id_map(request: pytest.FixtureRequest) -> bool:
    """Without and with the id map (``BITMAPIST_ID_MAP``)."""
    return bool(request.param)


@pytest.fixture
def users_app(make_store_app: AppFactory, id_map: bool) -> Flask:
    """A testing app on each store, in each mode."""
    return make_store_app(id_map=id_map)


def ident(number: int, id_map: bool) -> int | str:
    """User ``number``'s id: itself in int mode; with the map a str, a UUID's
    spelling or an int beyond any bit offset, by turns."""
    if not id_map:
        return number
    kind = number % 3
    if kind == 0:
        return f"ü-{number}"
    if kind == 1:
        return str(uuid.UUID(int=number)).upper()
    return 10**18 + number


def is_map(app: Flask) -> bool:
    return bool(app.config.get("BITMAPIST_ID_MAP"))


def shown(app: Flask, numbers: Iterable[int]) -> list[str]:
    """The ids of users ``numbers`` as the pages show them, in the store's
    order: ascending ints, or with the map the canonical ids in the order of
    their dense ids (looked up in the map, not read from a set)."""
    if not is_map(app):
        return [str(number) for number in sorted(numbers)]
    canonical = [canonical_id(ident(number, True)) for number in numbers]
    store = app.extensions["bitmapist"].state(app).store
    dense = store.id_map.lookup(store, canonical)
    assert None not in dense
    return [user for _, user in sorted(zip(dense, canonical, strict=True))]


def as_json(app: Flask, users: Sequence[str]) -> list[int | str]:
    """``users`` as the JSON format gives them: ints in int mode."""
    return list(users) if is_map(app) else [int(user) for user in users]


def mark_days(app: Flask, event: str, users_by_day: dict[int, Iterable[int]]) -> None:
    """Mark ``event`` for users (numbers, through :func:`ident`) each day
    ``days_ago``."""
    with app.app_context():
        for days_ago, numbers in users_by_day.items():
            for number in numbers:
                mark_event(
                    event,
                    ident(number, is_map(app)),
                    now=NOW - timedelta(days=days_ago),
                )


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


def listed(page: str) -> list[str]:
    """The ids a users page lists, unescaped."""
    found = re.search(r'<ul id="users" class="users">(.*?)</ul>', page, re.S)
    if found is None:
        assert 'id="users-empty"' in page
        return []
    return [
        html.unescape(user)
        for user in re.findall(r'<code class="user-id">(.*?)</code>', found.group(1))
    ]


def link(page: str, element_id: str) -> str | None:
    """The href of the link with ``element_id``, unescaped, or ``None``."""
    found = re.search(rf'<a id="{element_id}"[^>]* href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def body_text(page: str, element_id: str) -> str:
    """The text of the element with ``element_id``, tags dropped, entities
    decoded and spaces collapsed."""
    found = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id}"
    return html.unescape(" ".join(re.sub(r"<[^>]+>", "", found.group(2)).split()))


def with_format(url: str, fmt: str) -> str:
    return f"{url}&format={fmt}"


# Paging


def test_event_users_page_through_250_users_in_store_order(users_app: Flask) -> None:
    app = users_app
    mark_days(app, "signup", {0: range(250), 1: range(250, 260)})
    client = app.test_client()
    expected = shown(app, range(250))
    url: str | None = f"/bitmapist/users/event/signup?time_group=days&date={TODAY}"
    pages = []
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200
        assert body_text(page.text, "users-count").startswith("250 users")
        pages.append(listed(page.text))
        if len(pages) > 1:
            assert link(page.text, "first-page") == pages_url(TODAY)
        else:
            assert link(page.text, "first-page") is None
        url = link(page.text, "next-page")
    assert pages == [expected[:100], expected[100:200], expected[200:]]
    assert len(set(expected)) == 250


def pages_url(when: str, **query: str) -> str:
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return f"/bitmapist/users/event/signup?time_group=days&date={when}{extra}"


def test_json_pages_and_limit_follow_the_same_order(users_app: Flask) -> None:
    app = users_app
    mark_days(app, "signup", {0: range(20)})
    client = app.test_client()
    expected = shown(app, range(20))
    data = client.get(pages_url(TODAY, limit="7", format="json")).get_json()
    assert data == {
        "event": "signup",
        "time_group": "days",
        "period": TODAY,
        "count": 20,
        "users": as_json(app, expected[:7]),
        "next_after": as_json(app, expected[6:7])[0],
    }
    page = client.get(pages_url(TODAY, limit="7")).text
    assert listed(page) == expected[:7]
    # The next page keeps the limit, and starts after the last user shown.
    second = link(page, "next-page")
    assert second is not None
    assert parse_qs(urlsplit(second).query) == {
        "time_group": ["days"],
        "date": [TODAY],
        "limit": ["7"],
        "after": [expected[6]],
    }
    page = client.get(second).text
    assert listed(page) == expected[7:14]
    third = client.get(link(page, "next-page") or "").text
    assert listed(third) == expected[14:]
    assert link(third, "next-page") is None
    last = client.get(with_format(second, "json")).get_json()
    assert (last["users"], last["next_after"]) == (
        as_json(app, expected[7:14]),
        as_json(app, expected[13:14])[0],
    )


def test_every_time_group_lists_its_period(users_app: Flask) -> None:
    app = users_app
    # Three users in January and one in March, with a Monday and a Sunday of
    # one ISO week (2024-W02: 8 to 14 January).
    with app.app_context():
        for number, when in (
            (1, datetime(2024, 1, 8, 23, tzinfo=timezone.utc)),
            (2, datetime(2024, 1, 14, tzinfo=timezone.utc)),
            (3, datetime(2024, 1, 31, tzinfo=timezone.utc)),
            (4, datetime(2024, 3, 1, tzinfo=timezone.utc)),
        ):
            mark_event("visit", ident(number, is_map(app)), now=when)
    client = app.test_client()
    cases = [
        ("days", "2024-01-08", "2024-01-08", [1]),
        ("day", "2024-01-08", "2024-01-08", [1]),
        ("weeks", "2024-01-10", "2024-W02", [1, 2]),
        ("months", "2024-01-20", "2024-01", [1, 2, 3]),
        ("years", "2024-06-30", "2024", [1, 2, 3, 4]),
        ("years", "2023-01-01", "2023", []),
    ]
    for time_group, when, label, numbers in cases:
        url = f"/bitmapist/users/event/visit?time_group={time_group}&date={when}"
        page = client.get(url)
        assert page.status_code == 200
        assert listed(page.text) == shown(app, numbers)
        data = client.get(with_format(url, "json")).get_json()
        assert (data["period"], data["count"]) == (label, len(numbers))
        preposition = "on" if time_group.startswith("day") else "in"
        assert f"</span> {preposition} {label}</h1>" in page.text
    week = client.get("/bitmapist/users/event/visit?time_group=weeks&date=2024-01-10")
    assert body_text(week.text, "users-period") == (
        "The users who did it in that week (UTC), the ISO week from 2024-01-08, "
        "in the order the store holds them."
    )
    # Its links name the period by its first day.
    assert link(week.text, "download-csv") == (
        "/bitmapist/users/event/visit?time_group=weeks&date=2024-01-08&format=csv"
    )


def test_without_a_date_the_page_lists_today(users_app: Flask) -> None:
    app = users_app
    mark_days(app, "signup", {0: [3, 4], 1: [5]})
    page = app.test_client().get("/bitmapist/users/event/signup").text
    assert listed(page) == shown(app, [3, 4])
    assert link(page, "download-csv") == pages_url(TODAY, format="csv")


# The CSV


def test_csv_is_every_user_exactly(users_app: Flask) -> None:
    app = users_app
    # More than one chunk of the stream and one round trip of the map (1,000).
    mark_days(app, "signup", {0: range(1100), 1: [5000]})
    response = app.test_client().get(pages_url(TODAY, format="csv"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="users-signup-{TODAY}.csv"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    expected = shown(app, range(1100))
    assert response.get_data(as_text=True) == "user\r\n" + "".join(
        f"{user}\r\n" for user in expected
    )


def test_csv_of_a_period_without_users_is_its_header(users_app: Flask) -> None:
    app = users_app
    mark_days(app, "signup", {0: [1]})
    response = app.test_client().get(pages_url(day(3), format="csv"))
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "user\r\n"
    page = app.test_client().get(pages_url(day(3))).text
    assert body_text(page, "users-count") == "0 users."
    assert body_text(page, "users-empty") == "No users."
    assert link(page, "next-page") is None


# Links from the event page and the heatmap


def test_every_count_of_the_event_page_links_to_as_many_users(
    users_app: Flask,
) -> None:
    app = users_app
    days = {0: [*range(4), 10], 1: [10, 11, 12, 16, 17], 2: range(16, 20)}
    mark_days(app, "play", days)
    client = app.test_client()
    page = client.get("/bitmapist/event/play").text
    # The counts of users over periods; the lifecycle and stickiness tables
    # after them have no users pages.
    history = page.split('<section aria-labelledby="lifecycle-heading">', 1)[0]
    assert len(history) < len(page)
    links = [
        (html.unescape(href), int(count))
        for href, count in re.findall(
            r'<td class="num"><a href="([^"]+)">(\d+)</a></td>', page
        )
    ]
    # 30 days, 12 weeks and 12 months, each count a link.
    assert len(links) == 30 + 12 + 12
    assert len(re.findall(r'<td class="num">', history)) == len(links)
    groups = [parse_qs(urlsplit(href).query)["time_group"][0] for href, _ in links]
    assert groups == ["days"] * 30 + ["weeks"] * 12 + ["months"] * 12
    for href, count in links:
        assert urlsplit(href).path == "/bitmapist/users/event/play"
        data = client.get(with_format(href, "json")).get_json()
        assert data["count"] == count == len(data["users"])
        assert data["next_after"] is None
    # The last three days, newest first as the table lists them.
    for (href, count), days_ago in zip(links[:3], range(3), strict=True):
        assert parse_qs(urlsplit(href).query)["date"] == [day(days_ago)]
        assert listed(client.get(href).text) == shown(app, days[days_ago])
        assert count == len(list(days[days_ago]))
    # The chart's bars link to the same pages, out of the keyboard's way (the
    # table's links are those).
    bars = re.findall(r'<a href="([^"]+)" tabindex="-1"><rect class="bar"', page)
    assert [html.unescape(href) for href in reversed(bars)] == [
        href for href, _ in links[:30]
    ]


def seed_cohort(app: Flask) -> None:
    """test_dashboard's seed: three days of signups, plays and payments."""
    mark_days(app, "signup", {0: range(0, 10), 1: range(10, 16), 2: range(16, 20)})
    mark_days(app, "play", {0: range(0, 4), 1: range(10, 13), 2: range(16, 20)})
    mark_days(app, "play", {0: range(10, 11), 1: range(16, 18)})
    mark_days(app, "pay", {0: range(0, 2), 1: range(16, 17)})


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
# Each cell's users, worked by hand from the seed: play or pay is users
# 16..19 two days ago, 10..12, 16 and 17 yesterday, 0..3 and 10 today.
CELL_USERS = {
    False: {
        (0, 0): range(16, 20),
        (0, 1): [],
        (0, 2): [],
        (1, 0): range(10, 13),
        (1, 1): [],
        (2, 0): range(0, 4),
    },
    True: {
        (0, 0): range(16, 20),
        (0, 1): [16, 17],
        (0, 2): [],
        (1, 0): range(10, 13),
        (1, 1): [10],
        (2, 0): range(0, 4),
    },
}
ROW_USERS = [range(16, 20), range(10, 16), range(0, 10)]


def cell_links(page: str) -> dict[tuple[int, int], tuple[int, str | None]]:
    """Each heatmap cell's count and link, by (row, column)."""
    cells = {}
    for row, col, count, href in re.findall(
        r'data-row="(\d+)" data-col="(\d+)"(?: data-count="(\d+)")?[^>]*>'
        r'(?:<a (?:class="value" )?href="([^"]+)">)?',
        page,
    ):
        cells[(int(row), int(col))] = (
            int(count) if count else -1,
            html.unescape(href) if href else None,
        )
    return cells


@pytest.mark.parametrize("with_replacement", [False, True])
def test_every_heatmap_cell_links_to_its_users(
    users_app: Flask, with_replacement: bool
) -> None:
    app = users_app
    seed_cohort(app)
    client = app.test_client()
    body = {**BODY, "with_replacement": with_replacement}
    heatmap = client.post("/bitmapist/cohort", json=body).text
    cells = cell_links(heatmap)
    expected = CELL_USERS[with_replacement]
    # The cells in the future are empty, without a link.
    assert {cell: value for cell, value in cells.items() if value[1] is None} == {
        (1, 2): (-1, None),
        (2, 1): (-1, None),
        (2, 2): (-1, None),
    }
    for cell, numbers in expected.items():
        count, href = cells[cell]
        assert href is not None
        query = parse_qs(urlsplit(href).query)
        assert urlsplit(href).path == "/bitmapist/users/cohort"
        assert query["row"] == [str(cell[0])] and query["column"] == [str(cell[1])]
        assert query["date"] == [TODAY]
        page = client.get(href)
        assert page.status_code == 200
        assert listed(page.text) == shown(app, numbers)
        assert count == len(list(numbers))
        assert body_text(page.text, "users-count").startswith(
            "1 user" if count == 1 else f"{count} users"
        )
        data = client.get(with_format(href, "json")).get_json()
        assert data["count"] == count
        assert data["users"] == as_json(app, shown(app, numbers))
        assert data["request"] == {**body, "cohort": "recurring", "retention": "on"}
        assert (data["row"], data["column"], data["date"]) == (*cell, TODAY)
        csv_body = client.get(with_format(href, "csv")).get_data(as_text=True)
        assert csv_body == "user\r\n" + "".join(
            f"{user}\r\n" for user in shown(app, numbers)
        )
    # Each row's total links to the primary event's users of its day.
    totals = re.findall(
        r'<td class="num users"><a href="([^"]+)">(\d+)</a></td>', heatmap
    )
    assert [int(count) for _, count in totals] == [4, 6, 10]
    for (href, _), numbers, days_ago in zip(totals, ROW_USERS, (2, 1, 0), strict=True):
        assert html.unescape(href) == (
            f"/bitmapist/users/event/signup?time_group=days&date={day(days_ago)}"
        )
        assert listed(client.get(html.unescape(href)).text) == shown(app, numbers)
    # The page's heatmap carries the same links.
    query = (
        "primary_event=signup&secondary_event=play&additional_event=pay"
        "&additional_op=or&time_group=days&num_rows=3&num_cols=3"
        + ("&with_replacement=1" if with_replacement else "")
    )
    assert cell_links(client.get(f"/bitmapist/cohort?{query}").text) == cells


def test_a_cell_page_says_which_users_it_lists(users_app: Flask) -> None:
    app = users_app
    seed_cohort(app)
    client = app.test_client()
    base = (
        "/bitmapist/users/cohort?primary_event=signup&secondary_event=play"
        "&additional_event=pay&additional_op=or&time_group=days&num_rows=3"
        f"&num_cols=3&date={TODAY}"
    )
    page = client.get(f"{base}&row=0&column=2").text
    assert body_text(page, "cell-description") == (
        f"Users who did signup on {day(2)}, then play or pay 2 days later, on "
        f"{day(0)}, and not from {day(2)} to {day(1)} (UTC; row 0, column +2 days)."
    )
    page = client.get(f"{base}&row=1&column=1&with_replacement=1").text
    assert body_text(page, "cell-description") == (
        f"Users who did signup on {day(1)}, then play or pay 1 day later, on "
        f"{day(0)} (UTC; row 1, column +1 days)."
    )
    assert listed(page) == shown(app, [10])
    page = client.get(f"{base}&row=2&column=0").text
    assert body_text(page, "cell-description") == (
        f"Users who did signup on {day(0)}, then play or pay on the same day "
        "(UTC; row 2, column +0 days)."
    )
    # Back to the cohort, without the cell's own fields.
    assert re.search(r'<a href="([^"]+)">The cohort</a>', page).group(1) == (  # type: ignore[union-attr]
        "/bitmapist/cohort?primary_event=signup&amp;secondary_event=play"
        "&amp;additional_event=pay&amp;additional_op=or&amp;time_group=days"
        "&amp;num_rows=3&amp;num_cols=3"
    )


def test_a_cell_link_keeps_its_cell_as_days_pass(users_app: Flask) -> None:
    """The heatmap's links name the last row's day: a link followed after
    midnight still lists the cell that was clicked."""
    app = users_app
    seed_cohort(app)
    client = app.test_client()
    yesterday = (
        "/bitmapist/users/cohort?primary_event=signup&secondary_event=play"
        "&time_group=days&num_rows=2&num_cols=2&with_replacement=1"
        f"&date={day(1)}"
    )
    # Yesterday's heatmap: row 1 is yesterday, row 0 the day before.
    assert listed(client.get(f"{yesterday}&row=1&column=0").text) == shown(
        app, range(10, 13)
    )
    assert listed(client.get(f"{yesterday}&row=0&column=1").text) == shown(
        app, [16, 17]
    )


def test_cell_pages_page_through_a_big_cell(users_app: Flask) -> None:
    app = users_app
    mark_days(app, "signup", {0: range(150)})
    mark_days(app, "play", {0: range(0, 150, 1)})
    client = app.test_client()
    url: str | None = (
        "/bitmapist/users/cohort?primary_event=signup&secondary_event=play"
        "&num_rows=1&num_cols=1&row=0&column=0"
    )
    pages = []
    while url is not None:
        page = client.get(url).text
        pages.append(listed(page))
        url = link(page, "next-page")
    expected = shown(app, range(150))
    assert pages == [expected[:100], expected[100:]]


# Escaping


HOSTILE = [
    XSS,
    '"quoted", with a comma',
    "it's",
    "=1+1",
    "+SUM(A1:A9)",
    "@cmd",
    "-x",
    "a&amp;b",
    "ü Ω 😀",
    "two  spaces",
    "</code></li></ul><h1>spoof",
]


def test_hostile_ids_are_escaped_and_round_trip(make_store_app: AppFactory) -> None:
    app = make_store_app(id_map=True)
    with app.app_context():
        for user in HOSTILE:
            mark_event("signup", user, now=NOW)
    client = app.test_client()
    store = app.extensions["bitmapist"].state(app).store
    dense = store.id_map.lookup(store, HOSTILE)
    expected = [user for _, user in sorted(zip(dense, HOSTILE, strict=True))]
    page = client.get(pages_url(TODAY)).text
    assert XSS not in page and "<h1>spoof" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert listed(page) == expected
    # The CSV gives back every id exactly, quoted where CSV needs it; ids
    # that a spreadsheet would take for a formula are left as they are (see
    # docs/dashboard.md), so that none is changed.
    download = client.get(pages_url(TODAY, format="csv"))
    assert list(csv.reader(io.StringIO(download.get_data(as_text=True)))) == [
        ["user"],
        *([user] for user in expected),
    ]
    assert '\r\n"""quoted"", with a comma"\r\n' in download.get_data(as_text=True)
    assert "\r\n=1+1\r\n" in download.get_data(as_text=True)
    # One id a page: each next link carries a hostile id as "after".
    url: str | None = pages_url(TODAY, limit="1")
    walked = []
    while url is not None:
        page = client.get(url).text
        assert XSS not in page
        walked += listed(page)
        url = link(page, "next-page")
    assert walked == expected
    data = client.get(pages_url(TODAY, format="json", limit="1")).get_json()
    assert data["users"] == expected[:1] == [data["next_after"]]


def test_event_names_are_escaped_on_the_users_pages(app: Flask) -> None:
    name = "<img/src=x/onerror=alert(1)>"
    with app.app_context():
        mark_event(name, 1, now=NOW)
        mark_event("play", 1, now=NOW)
    client = app.test_client()
    event = client.get(
        f"/bitmapist/users/event/%3Cimg/src=x/onerror=alert(1)%3E?date={TODAY}"
    )
    cell = client.get(
        "/bitmapist/users/cohort?primary_event=%3Cimg/src=x/onerror=alert(1)%3E"
        "&secondary_event=play&num_rows=1&num_cols=1&row=0&column=0"
    )
    for response in (event, cell):
        assert response.status_code == 200
        assert name not in response.text
        assert "&lt;img/src=x/onerror=alert(1)&gt;" in response.text
        assert listed(response.text) == ["1"]
    csv_download = client.get(
        f"/bitmapist/users/event/%3Cimg/src=x/onerror=alert(1)%3E?date={TODAY}&format=csv"
    )
    assert csv_download.headers["Content-Disposition"] == (
        f'attachment; filename="users--img-src-x-onerror-alert-1--{TODAY}.csv"'
    )
    cell_download = client.get(
        "/bitmapist/users/cohort?primary_event=%3Cimg/src=x/onerror=alert(1)%3E"
        f"&secondary_event=play&num_rows=1&num_cols=1&row=0&column=0&date={TODAY}"
        "&format=csv"
    )
    assert cell_download.headers["Content-Disposition"] == (
        'attachment; filename="users-cohort--img-src-x-onerror-alert-1--play-'
        f'{TODAY}-plus-0.csv"'
    )


# Errors

EVENT = f"/bitmapist/users/event/signup?date={TODAY}"
CELL = (
    "/bitmapist/users/cohort?primary_event=signup&secondary_event=play"
    "&num_rows=3&num_cols=3"
)
TIME_GROUP_ERROR = (
    "time_group: must be one of days, weeks, months, years (or the singular), "
    "got 'hours'."
)


def date_error(text: str) -> str:
    return (
        f"date: must be a day from 1970-01-01 to 2099-12-31 as YYYY-MM-DD, got {text}."
    )


BAD_REQUESTS = [
    (f"{EVENT}&time_group=hours", "time_group", TIME_GROUP_ERROR),
    (
        "/bitmapist/users/event/signup?date=2024-02-30",
        "date",
        date_error("'2024-02-30'"),
    ),
    ("/bitmapist/users/event/signup?date=20240105", "date", date_error("'20240105'")),
    (
        "/bitmapist/users/event/signup?date=2024-W01-5",
        "date",
        date_error("'2024-W01-5'"),
    ),
    (
        "/bitmapist/users/event/signup?date=1969-12-31",
        "date",
        date_error("'1969-12-31'"),
    ),
    (
        "/bitmapist/users/event/signup?date=2100-01-01",
        "date",
        date_error("'2100-01-01'"),
    ),
    ("/bitmapist/users/event/signup?date=", "date", date_error("''")),
    (
        "/bitmapist/users/event/signup?date=" + "9" * 100,
        "date",
        date_error(repr("9" * 100)[:60] + "... (100 characters)"),
    ),
    (f"{EVENT}&limit=0", "limit", "limit: must be from 1 to 1000, got 0."),
    (f"{EVENT}&limit=1001", "limit", "limit: must be from 1 to 1000, got 1001."),
    (f"{EVENT}&limit=ten", "limit", "limit: must be an int from 1 to 1000, got 'ten'."),
    (f"{EVENT}&limit=-1", "limit", "limit: must be an int from 1 to 1000, got '-1'."),
    (
        f"{EVENT}&after=" + "9" * 257,
        "after",
        "after: must be at most 256 characters, got 257.",
    ),
    (
        f"{EVENT}&after=" + "9" * 5000,
        "after",
        "after: must be at most 256 characters, got 5000.",
    ),
    (f"{CELL}&column=0", "row", "row: is required."),
    (f"{CELL}&row=-1&column=0", "row", "row: must be an int, got '-1'."),
    (f"{CELL}&row=one&column=0", "row", "row: must be an int, got 'one'."),
    (f"{CELL}&row=3&column=0", "row", "row: must be from 0 to 2, got 3."),
    (f"{CELL}&row=0&column=3", "column", "column: must be from 0 to 2, got 3."),
    (
        f"{CELL}&row=2&column=1",
        "column",
        "column: must be from 0 to 0 for row 2, whose later periods are in the future.",
    ),
    (
        "/bitmapist/users/cohort?secondary_event=play&row=0&column=0",
        "primary_event",
        "primary_event: is required.",
    ),
    (
        "/bitmapist/users/cohort?primary_event=signup&secondary_event=play"
        "&num_rows=0&row=0&column=0",
        "num_rows",
        "num_rows: must be from 1 to 366, got 0.",
    ),
    (f"{CELL}&row=0&column=0&time_group=hours", "time_group", TIME_GROUP_ERROR),
    (f"{CELL}&row=0&column=0&date=2024-1-5", "date", date_error("'2024-1-5'")),
    (
        f"{CELL}&row=0&column=0&limit=0",
        "limit",
        "limit: must be from 1 to 1000, got 0.",
    ),
]


@pytest.mark.parametrize(("url", "field", "message"), BAD_REQUESTS)
def test_bad_input_answers_400_naming_the_field(
    app: Flask, url: str, field: str, message: str
) -> None:
    mark_days(app, "signup", {0: [1]})
    client = app.test_client()
    page = client.get(url)
    assert page.status_code == 400
    assert page.mimetype == "text/html"
    assert body_text(page.text, "field-error") == message
    data = client.get(f"{url}&format=json")
    assert data.status_code == 400
    assert data.get_json() == {"error": message, "field": field}


@pytest.mark.parametrize(
    ("url", "field", "message"),
    [
        (f"{EVENT}&format=xml", "format", "format: must be html, json or csv."),
        (
            f"{EVENT}&format=csv&after=1",
            "after",
            "after: does not apply to format=csv, which holds every user.",
        ),
        (
            f"{CELL}&row=0&column=0&format=csv&limit=5",
            "limit",
            "limit: does not apply to format=csv, which holds every user.",
        ),
    ],
)
def test_format_errors_answer_400(
    app: Flask, url: str, field: str, message: str
) -> None:
    mark_days(app, "signup", {0: [1]})
    response = app.test_client().get(url)
    assert response.status_code == 400
    if "format=csv" in url:
        assert response.get_json() == {"error": message, "field": field}
    else:
        assert body_text(response.text, "field-error") == message


def test_after_must_be_a_user_of_the_set_s_kind(users_app: Flask) -> None:
    app = users_app
    mark_days(app, "signup", {0: [1, 2]})
    client = app.test_client()
    response = client.get(pages_url(TODAY, after="nobody", format="json"))
    assert response.status_code == 400
    message = (
        "after: 'nobody' is not a user of the id map."
        if is_map(app)
        else "after: must be a user id of 0 or more, got 'nobody'."
    )
    assert response.get_json() == {"error": message, "field": "after"}
    assert body_text(
        client.get(pages_url(TODAY, after="nobody")).text, "field-error"
    ) == (message)
    # After the last user, the page is empty and the last one.
    last = shown(app, [1, 2])[-1]
    data = client.get(pages_url(TODAY, after=last, format="json")).get_json()
    assert (data["users"], data["next_after"], data["count"]) == ([], None, 2)


def test_an_unknown_event_is_404_with_close_names(users_app: Flask) -> None:
    app = users_app
    mark_days(app, "play", {0: [1]})
    client = app.test_client()
    page = client.get("/bitmapist/users/event/plya")
    assert page.status_code == 404
    assert body_text(page.text, "unknown-event") == (
        "No event is named plya; did you mean play?"
    )
    for fmt in ("json", "csv"):
        response = client.get(f"/bitmapist/users/event/plya?format={fmt}")
        assert response.status_code == 404
        assert response.get_json() == {
            "error": "Unknown event 'plya'; did you mean play?"
        }
    for name in ("a%20b", "x" * 201, "bitop_x"):
        response = client.get(f"/bitmapist/users/event/{name}")
        assert response.status_code == 404
    # A known event without users in the period is an empty page.
    old = client.get(pages_url(day(40)).replace("signup", "play"))
    assert old.status_code == 200
    assert body_text(old.text, "users-count") == "0 users."


def test_event_names_with_a_slash_have_their_users_page(app: Flask) -> None:
    mark_days(app, "a/users", {0: [7]})
    mark_days(app, "a", {0: [8]})
    client = app.test_client()
    assert listed(client.get("/bitmapist/users/event/a/users").text) == ["7"]
    assert listed(client.get("/bitmapist/users/event/a").text) == ["8"]
    assert client.get("/bitmapist/event/a/users").status_code == 200
    assert (
        '<h1 class="event-name">a/users</h1>'
        in client.get("/bitmapist/event/a/users").text
    )


# Access and failures


USERS_URLS = [
    f"/bitmapist/users/event/signup?date={TODAY}",
    f"/bitmapist/users/event/signup?date={TODAY}&format=json",
    f"/bitmapist/users/event/signup?date={TODAY}&format=csv",
    f"{CELL}&row=2&column=0",
    f"{CELL}&row=2&column=0&format=csv",
]


def test_users_pages_are_closed_outside_debug_and_testing(
    make_app: AppFactory,
) -> None:
    # A testing app writes at once; the others in the background.
    mark_days(make_app(name="writer"), "signup", {0: [1]})
    app = make_app(testing=False)
    for url in USERS_URLS:
        response = app.test_client().get(url)
        assert response.status_code == 403
        if "format=" in url:
            assert response.get_json() == {
                "error": "The dashboard is closed: see BITMAPIST_DASHBOARD_ACCESS."
            }
        else:
            assert "<h1>The analytics dashboard is closed</h1>" in response.text
        assert "user\r\n" not in response.text
    opened = make_app(testing=False, dashboard_access=lambda: True, name="opened")
    for url in USERS_URLS:
        assert opened.test_client().get(url).status_code == 200


def test_users_pages_refuse_other_sites(app: Flask) -> None:
    mark_days(app, "signup", {0: [1]})
    client = app.test_client()
    for url in USERS_URLS:
        for site in ("same-origin", "same-site", "none", None):
            headers = {"Sec-Fetch-Site": site} if site else {}
            assert client.get(url, headers=headers).status_code == 200
        response = client.get(url, headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 403
        assert "user\r\n" not in response.text


def test_users_pages_send_the_dashboard_s_headers(app: Flask) -> None:
    mark_days(app, "signup", {0: [1]})
    client = app.test_client()
    for url in USERS_URLS:
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["Content-Security-Policy"].startswith(
            "default-src 'self'; script-src 'self'; style-src 'self'"
        )
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script>" not in response.text and " style=" not in response.text


def test_redis_unreachable_answers_503_before_any_download(
    make_app: AppFactory,
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    for url in USERS_URLS:
        response = client.get(url)
        assert response.status_code == 503
        if "format=" in url:
            assert response.get_json() == {"error": "analytics store unavailable"}
        else:
            assert "Analytics store unavailable" in response.text
        assert "Traceback" not in response.text


users_fields = st.sampled_from(
    [
        "time_group",
        "date",
        "limit",
        "after",
        "format",
        "row",
        "column",
        "primary_event",
        "secondary_event",
        "num_rows",
        "num_cols",
        "with_replacement",
        "other",
    ]
)


@pytest.fixture
def both_modes(make_app: AppFactory) -> list[Flask]:
    """A testing app in int mode and one with the map, each with users 1 and
    2 of signup today; built once for all of a property test's examples."""
    apps = [make_app(name="ints"), make_app(id_map=True, name="mapped")]
    for app in apps:
        mark_days(app, "signup", {0: [1, 2]})
    return apps


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pairs=st.lists(
        st.tuples(
            users_fields,
            st.text(max_size=12)
            | st.sampled_from(["0", "1", "2", "days", "years", "csv", "json", TODAY]),
        ),
        max_size=10,
    ),
    path=st.sampled_from(["/bitmapist/users/event/signup", "/bitmapist/users/cohort"]),
)
def test_no_query_string_makes_a_users_page_answer_500(
    both_modes: list[Flask], pairs: list[tuple[str, str]], path: str
) -> None:
    for app in both_modes:
        response = app.test_client().get(path, query_string=MultiDict(pairs))
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400 and response.mimetype == "application/json":
            assert set(response.get_json()) == {"error", "field"}
        elif response.status_code == 400:
            assert 'id="field-error"' in response.text


def test_a_first_time_rows_total_links_to_its_first_timers(users_app: Flask) -> None:
    """A first-time row counts only the users new in its period: its total
    links to the users page of the row (``row`` without ``column``), not to
    every user of the event's day."""
    app = users_app
    mark_days(app, "signup", {3: [1], 1: [1, 2], 0: [1, 3, 4]})
    client = app.test_client()
    query = (
        "primary_event=signup&secondary_event=play&num_rows=2&num_cols=2"
        "&cohort=first_time"
    )
    heatmap = client.get(f"/bitmapist/cohort?{query}").text
    totals = re.findall(
        r'<td class="num users"><a href="([^"]+)">(\d+)</a></td>', heatmap
    )
    assert [int(total) for _, total in totals] == [1, 2]
    for (href, total), numbers in zip(totals, ([2], [3, 4]), strict=True):
        href = html.unescape(href)
        assert urlsplit(href).path == "/bitmapist/users/cohort"
        assert "column" not in parse_qs(urlsplit(href).query)
        data = client.get(with_format(href, "json")).get_json()
        assert data["count"] == int(total) == len(numbers)
        assert data["users"] == as_json(app, shown(app, numbers))
        assert data["column"] is None
        page = client.get(href).text
        assert body_text(page, "cell-description").startswith(
            "Users who did signup for the first time on "
        )
        assert "<h1>Users of a cohort row</h1>" in page
        assert client.get(with_format(href, "csv")).get_data(
            as_text=True
        ) == "user\r\n" + "".join(f"{user}\r\n" for user in shown(app, numbers))

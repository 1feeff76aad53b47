"""The dashboard in a real Chromium (Debian's, driven by Playwright), against
the app served on 127.0.0.1, under its strict Content-Security-Policy.

Without Chromium the test is skipped with the reason, except under CI
(``CI=true``), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from flask_bitmapist import (
    get_cohort,
    get_cohort_cell,
    get_funnel,
    get_lifecycle,
    mark_event,
)

CHROMIUM = os.environ.get("BITMAPIST_CHROMIUM", "/usr/bin/chromium")
NOW = datetime.now(timezone.utc)


def _browser_missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser test (.ci/run installs it).")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("playwright is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        _browser_missing(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, "
            "or set BITMAPIST_CHROMIUM)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def seed(app: Flask) -> None:
    """Two weeks of signups, plays and payments with falling retention."""
    with app.app_context():
        for days_ago in range(14):
            when = NOW - timedelta(days=days_ago)
            first = days_ago * 20
            for user in range(first, first + 20):
                mark_event("signup", user, now=when)
            for back in range(days_ago + 1):
                later = NOW - timedelta(days=days_ago - back)
                for user in range(first, first + 20 - 3 * back, 2 + back % 2):
                    mark_event("play", user, now=later)
                if back == 2:
                    mark_event("pay", first, now=later)


def test_overview_filter_and_cohort_heatmap_match_get_cohort(
    app: Flask, served: str, browser: Any, tmp_path: Path
) -> None:
    seed(app)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    posted: list[str | None] = []
    page.on(
        "request",
        lambda request: (
            posted.append(request.headers.get("content-type"))
            if request.method == "POST"
            else None
        ),
    )

    page.goto(f"{served}/bitmapist/")
    rows = page.locator("#event-table tbody tr")
    assert rows.evaluate_all("rows => rows.map(row => row.dataset.event)") == [
        "pay",
        "play",
        "signup",
    ]
    page.get_by_label("Filter events").fill("si")
    assert page.locator("#event-table tbody tr:visible").all_inner_texts() == [
        rows.nth(2).inner_text()
    ]
    page.get_by_label("Filter events").fill("nothing")
    assert page.locator("#event-table-empty").is_visible()

    page.get_by_role("link", name="Cohorts").click()
    assert not page.get_by_role("link", name="Download CSV").is_visible()
    # A fresh form counts with replacement.
    assert page.get_by_label("With replacement").is_checked()
    page.get_by_label("Users who did").fill("signup")
    page.get_by_label("Came back and did").fill("play")
    page.get_by_role("button", name="Add an event").focus()
    page.keyboard.press("Enter")
    page.get_by_label("Operator").select_option("or")
    page.get_by_label("Additional event").fill("pay")
    page.get_by_label("Per", exact=True).select_option("days")
    page.get_by_label("Rows", exact=True).fill("12")
    page.get_by_label("Columns", exact=True).fill("8")
    page.get_by_role("button", name="Show cohort").click()
    page.locator("#heatmap").wait_for()

    cells = page.locator("#heatmap td.cell").evaluate_all(
        "cells => cells.map(cell => [+cell.dataset.row, +cell.dataset.col, cell.textContent.trim()])"
    )
    totals = page.locator("#heatmap td.users").all_inner_texts()
    with app.app_context():
        cohort, dates, expected_totals = get_cohort(
            "signup",
            "play",
            additional_events=[{"name": "pay", "op": "or"}],
            time_group="days",
            num_rows=12,
            num_cols=8,
            with_replacement=True,
        )
    shown: list[list[int | None]] = [[None] * 8 for _ in range(12)]
    for row, col, text in cells:
        shown[row][col] = int(text) if text else None
    assert shown == cohort
    assert [int(total) for total in totals] == expected_totals
    assert any(cell for row in cohort for cell in row), "the seed made an empty cohort"
    first_period = page.locator("#heatmap tbody th").first.inner_text()
    assert first_period == dates[0].date().isoformat()
    # The API takes JSON only, and the form's script sends it.
    assert posted == ["application/json"]

    # Today's cells (row i, column 11 - i) are hatched, under the CSP; the
    # numbers sit on their plain shade.
    hatched = page.locator("#heatmap td.running").evaluate_all(
        """cells => cells.map(cell => [+cell.dataset.row, +cell.dataset.col,
            getComputedStyle(cell).backgroundImage.startsWith("repeating-linear-gradient"),
            getComputedStyle(cell.querySelector(".value")).backgroundColor
              === getComputedStyle(cell).backgroundColor])"""
    )
    assert hatched == [
        [row, 11 - row, True, True]
        for row in range(4, 12)
        if cohort[row][11 - row] is not None
    ]
    assert (
        page.locator("#heatmap-running")
        .inner_text()
        .endswith("still running: its count can still grow.")
    )

    assert "primary_event=signup" in page.url and "additional_event=pay" in page.url
    csv_link = page.get_by_role("link", name="Download CSV")
    assert csv_link.is_visible()
    assert "format=csv" in (csv_link.get_attribute("href") or "")

    assert problems == [], "a script error or a Content-Security-Policy violation"

    # A cell links to its users: the page lists exactly the cell's users.
    link = page.locator("#heatmap td.cell a").first
    row, col = link.evaluate(
        "a => [+a.closest('td').dataset.row, +a.closest('td').dataset.col]"
    )
    users_page = browser.new_page()
    users_page.on("pageerror", lambda error: problems.append(str(error)))
    users_page.goto(f"{served}{link.get_attribute('href')}")
    with app.app_context():
        cell = get_cohort_cell(
            "signup",
            "play",
            additional_events=[{"name": "pay", "op": "or"}],
            num_rows=12,
            num_cols=8,
            with_replacement=True,
            row=row,
            column=col,
        )
        members = [str(user) for user in cell]
    assert members, "the first linked cell has users"
    assert users_page.locator("#users li").all_inner_texts() == members
    assert users_page.locator("#users-count").inner_text() == f"{len(members)} users."
    users_page.close()
    assert problems == [], "a script error on the users page"

    page.get_by_label("Rows", exact=True).fill("0")
    page.get_by_label("Rows", exact=True).evaluate(
        "input => input.form.noValidate = true"
    )
    page.get_by_role("button", name="Show cohort").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "num_rows: must be from 1 to 366, got 0."
    assert page.locator("#heatmap").count() == 0
    assert not csv_link.is_visible()

    cohort_url = page.url
    page.screenshot(path=tmp_path / "heatmap.png", full_page=True)
    assert (tmp_path / "heatmap.png").stat().st_size > 10_000
    assert problems == [
        "Failed to load resource: the server responded with a status of 400 "
        "(BAD REQUEST)"
    ]

    # On a phone the pages fit the screen; the wide heatmap scrolls in its box.
    page.set_viewport_size({"width": 390, "height": 844})
    wide_url = (
        f"{served}/bitmapist/cohort?primary_event=signup&secondary_event=play"
        "&num_rows=14&num_cols=30&with_replacement=1"
    )
    for url in (
        f"{served}/bitmapist/",
        cohort_url,
        f"{served}/bitmapist/event/play",
        wide_url,
    ):
        page.goto(url)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, url
    assert page.locator("#heatmap thead th").count() == 2 + 30
    box = page.get_by_role("region", name="Cohort table, scrolls sideways")
    assert box.evaluate("box => box.scrollWidth > box.clientWidth")
    # The keyboard reaches the box right after the form, and scrolls it. Chromium
    # focuses any scroller; tabindex="0" is for the browsers that do not.
    assert box.evaluate("box => box.tabIndex") == 0
    page.get_by_role("link", name="JSON").focus()
    page.keyboard.press("Tab")
    assert box.evaluate("box => box === document.activeElement")
    assert box.evaluate("box => box.scrollLeft") == 0
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('.heatmap-wrap').scrollLeft > 0"
    )
    page.screenshot(path=tmp_path / "phone.png", full_page=True)


def _watch_errors(page: Any) -> list[str]:
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def _proportional(sizes: list[tuple[float, int]]) -> bool:
    """Whether each drawn size is its value times one scale (to a tenth of a
    unit of the SVG)."""
    scale = max(size for size, _ in sizes) / max(value for _, value in sizes)
    return all(abs(size - value * scale) < 0.1 for size, value in sizes)


def test_funnel_page_lifecycle_chart_and_cohort_modes_match_the_api(
    app: Flask, served: str, browser: Any
) -> None:
    """The numbers read off the funnel page, the event page's lifecycle chart
    and a first-time, on-or-after heatmap are the API's, and the bars are
    drawn to scale."""
    seed(app)
    with app.app_context():
        # Some players start paying a few days after they first played.
        for user in range(0, 200, 3):
            mark_event("pay", user, now=NOW - timedelta(days=user % 5))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = _watch_errors(page)

    page.goto(f"{served}/bitmapist/")
    page.get_by_role("link", name="Funnels").click()
    steps = page.get_by_label("Step event")
    steps.nth(0).fill("signup")
    steps.nth(1).fill("play")
    page.get_by_role("button", name="Add a step").click()
    steps.nth(2).fill("pay")
    page.get_by_label("Per", exact=True).select_option("days")
    page.get_by_label("Entry periods").fill("14")
    page.get_by_label("Within (periods after entry)").fill("3")
    page.get_by_role("button", name="Show funnel").click()
    page.locator("#funnel-result").wait_for()
    with app.app_context():
        funnel = get_funnel(["signup", "play", "pay"], "days", num_periods=14, within=3)
    assert funnel.counts[2] > 0, "the seed made an empty funnel"
    table = page.locator("#funnel-steps-table tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.cells].map(cell => cell.textContent.trim()))"
    )
    assert [row[1] for row in table] == ["signup", "play", "pay"]
    assert [int(row[2]) for row in table] == funnel.counts
    assert [int(row[5]) for row in table] == funnel.drop_off
    assert [row[3] for row in table] == [
        f"{percent:.1f}%" for percent in funnel.conversion_from_previous
    ]
    periods = page.locator("#funnel-periods-table tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.cells].map(cell => cell.textContent.trim()))"
    )
    assert [row[0] for row in periods] == [
        date.date().isoformat() for date in funnel.dates
    ]
    assert [[int(cell) for cell in row[1:]] for row in periods] == funnel.rows
    widths = page.locator("#funnel-result rect.funnel-bar").evaluate_all(
        "bars => bars.map(bar => bar.width.baseVal.value)"
    )
    assert _proportional(list(zip(widths, funnel.counts, strict=True)))
    assert "steps=signup&steps=play&steps=pay" in page.url
    assert page.get_by_role("link", name="Download CSV").is_visible()

    page.goto(f"{served}/bitmapist/event/play")
    page.get_by_text("The lifecycle numbers").click()
    shown = page.locator("#lifecycle-table tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.cells].map(cell => cell.textContent.trim()))"
    )
    with app.app_context():
        lifecycle = get_lifecycle("play", "days", 30)
    assert [row[0] for row in reversed(shown)] == [
        row.date.date().isoformat() for row in lifecycle
    ]
    assert [[int(cell) for cell in row[1:5]] for row in reversed(shown)] == [
        [row.new, row.returning, row.resurrecting, row.dormant] for row in lifecycle
    ]
    assert any(row.resurrecting for row in lifecycle)
    assert any(row.dormant for row in lifecycle)
    segments = page.locator(
        'section[aria-labelledby="lifecycle-heading"] svg rect'
    ).evaluate_all(
        """rects => rects.map(rect => [rect.getAttribute("class"),
            rect.height.baseVal.value, rect.y.baseVal.value,
            rect.querySelector("title").textContent])"""
    )
    zero = page.locator(
        'section[aria-labelledby="lifecycle-heading"] svg line.zero'
    ).evaluate("line => line.y1.baseVal.value")
    drawn = {(kind, title.split(":")[0]): height for kind, height, _, title in segments}
    values = {
        (kind, row.date.date().isoformat()): getattr(row, kind)
        for row in lifecycle
        for kind in ("new", "returning", "resurrecting", "dormant")
        if getattr(row, kind)
    }
    assert set(drawn) == set(values)
    assert _proportional([(drawn[key], value) for key, value in values.items()])
    # Dormant users hang below the axis, the others stand on it.
    for kind, height, y, _ in segments:
        if kind == "dormant":
            assert abs(y - zero) < 0.01
        else:
            assert y + height <= zero + 0.01

    page.goto(f"{served}/bitmapist/cohort")
    page.get_by_label("Users who did").fill("signup")
    page.get_by_label("Came back and did").fill("pay")
    page.get_by_label("those who did it for the first time").check()
    page.get_by_label("came back in it or any later one").check()
    page.get_by_label("Rows", exact=True).fill("10")
    page.get_by_label("Columns", exact=True).fill("6")
    page.get_by_role("button", name="Show cohort").click()
    page.locator("#heatmap").wait_for()
    cells = page.locator("#heatmap td.cell").evaluate_all(
        "cells => cells.map(cell => [+cell.dataset.row, +cell.dataset.col, cell.textContent.trim()])"
    )
    with app.app_context():
        cohort, _, _ = get_cohort(
            "signup",
            "pay",
            num_rows=10,
            num_cols=6,
            cohort="first_time",
            retention="on_or_after",
        )
    heatmap: list[list[int | None]] = [[None] * 6 for _ in range(10)]
    for row, col, text in cells:
        heatmap[row][col] = int(text) if text else None
    assert heatmap == cohort
    assert page.locator("#heatmap-caption").inner_text() == (
        "Each row: the users who did signup for the first time on that day. "
        "Each cell: how many of them did pay N days later or on any later day."
    )
    assert "cohort=first_time" in page.url and "retention=on_or_after" in page.url
    assert problems == [], "a script error or a Content-Security-Policy violation"


def test_a_page_of_another_site_cannot_use_the_dashboard(
    app: Flask, served: str, browser: Any
) -> None:
    """A page on localhost is another site than 127.0.0.1: its text/plain form
    (valid JSON, the classic trick) and its link reach the dashboard with
    Chromium's Sec-Fetch-Site: cross-site, and get 403."""
    seed(app)
    dashboard = f"{served}/bitmapist"
    attack = f"""<!doctype html><title>Another site</title>
<form method="post" action="{dashboard}/cohort?format=json" enctype="text/plain">
<input type="hidden" name='{{"primary_event": "signup'
       value='", "secondary_event": "play", "num_rows": 54, "num_cols": 366}}'>
<button>Send</button></form>
<a href="{dashboard}/">Dashboard</a>"""
    app.add_url_rule("/attack", "attack", lambda: attack)
    page = browser.new_page()
    page.goto(served.replace("127.0.0.1", "localhost") + "/attack")
    with page.expect_response(f"{dashboard}/cohort?format=json") as posted:
        page.get_by_role("button", name="Send").click()
    assert posted.value.request.headers["content-type"] == "text/plain"
    assert posted.value.status == 403
    assert "only requests from its own site" in page.content()
    page.go_back()
    with page.expect_response(f"{dashboard}/") as followed:
        page.get_by_role("link", name="Dashboard").click()
    assert followed.value.status == 403
    assert page.get_by_role("heading").inner_text() == (
        "Requests from other sites are refused"
    )

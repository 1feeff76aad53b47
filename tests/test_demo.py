"""The demo that ``make demo`` serves works end to end: seeded on first start,
marking through Flask-Login, the mixin and the rules, shown by the dashboard."""

from __future__ import annotations

import re
import runpy
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from keys import day_key, users
from processes import (
    DEADLINE_SECONDS,
    app_environment,
    is_running,
    registry_pid,
    stopped_at_the_end,
    wait_until_gone,
)

from flask_bitmapist import flush
from flask_bitmapist.testing import free_port

DEMO = Path(__file__).parent.parent / "examples" / "demo.py"
STYLESHEET = '<link rel="stylesheet" href="/static/demo.css">'


@pytest.fixture
def demo(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("BITMAPIST_REDIS_URL", redis_url)
    monkeypatch.setenv("DEMO_INSTANCE_PATH", str(tmp_path / "instance"))
    return runpy.run_path(str(DEMO), run_name="demo")


def today_count(html: str, event: str) -> int:
    """The overview's count of ``event`` for today; 0 when it is not listed."""
    row = re.search(rf'<tr data-event="{re.escape(event)}">(.*?)</tr>', html, re.S)
    if row is None:
        return 0
    return int(re.findall(r'<td class="num">(\d+)</td>', row.group(1))[0])


def test_demo_seeds_once_then_marks_from_every_source(
    demo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    demo["prepare"](users=60, days=14)
    assert "Seeded " in capsys.readouterr().out
    demo["prepare"](users=60, days=14)
    assert "Seeded " not in capsys.readouterr().out

    app = demo["app"]
    web = app.test_client()
    events = (
        "user:logged_in",
        "home:viewed",
        "project:created",
        "project:viewed",
        "checkout:started",
    )

    def marked_today() -> dict[str, bool]:
        with app.app_context():
            flush(timeout=5)
            client = app.extensions["bitmapist"].redis
            today = datetime.now(timezone.utc)
            return {
                event: 4 in users(client, day_key(event, today)) for event in events
            }

    overview = web.get("/bitmapist/")
    assert overview.status_code == 200
    for event in ("user:created", "user:logged_in", "home:viewed", "project:created"):
        assert f'data-event="{event}"' in overview.text
    counts = {event: today_count(overview.text, event) for event in events}
    already = marked_today()

    assert web.post("/login", data={"user_id": "5000"}).status_code == 400
    assert web.post("/login", data={"user_id": "4"}).status_code == 302
    assert "Logged in as Margaret" in web.get("/").text
    created = web.post("/projects", data={"name": "Launch"})
    assert created.status_code == 302
    assert web.get(created.headers["Location"]).status_code == 200
    assert web.get("/checkout").status_code == 200

    assert marked_today() == dict.fromkeys(events, True)
    after = web.get("/bitmapist/").text
    for event in events:
        assert today_count(after, event) == counts[event] + (not already[event])


def test_demo_dashboard_is_closed_to_other_machines(demo: Any) -> None:
    demo["prepare"](users=5, days=2)
    app = demo["app"]
    assert not app.testing
    web = app.test_client()
    remote = web.get("/bitmapist/", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 403
    local = web.get("/bitmapist/", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert local.status_code == 200


COHORT_JSON = (
    "/bitmapist/cohort?format=json&primary_event=user:created"
    "&secondary_event=user:logged_in&time_group=days"
)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:5000", "localhost.evil.example", ""]
)
def test_demo_refuses_every_request_for_another_host(demo: Any, host: str) -> None:
    """A page on evil.example that resolves to 127.0.0.1 (DNS rebinding) reads
    nothing, not even from the dashboard, which is open to this machine."""
    demo["prepare"](users=5, days=2)
    web = demo["app"].test_client()
    headers = {"Host": host}
    for path in (
        "/",
        "/bitmapist/",
        COHORT_JSON,
        "/bitmapist/static/dashboard.css",
        "/static/demo.css",
        "/favicon.ico",
        "/checkout",
        "/no-such-page",
    ):
        response = web.get(path, headers=headers)
        assert (path, response.status_code) == (path, 400)
        assert "user:created" not in response.text
    login = web.post("/login", data={"user_id": "1"}, headers=headers)
    assert login.status_code == 400
    assert "Set-Cookie" not in login.headers


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:5000",
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]:5000",
        "[::1]",
    ],
)
def test_demo_answers_at_this_machines_host_names(demo: Any, host: str) -> None:
    demo["prepare"](users=5, days=2)
    web = demo["app"].test_client()
    headers = {"Host": host}
    assert web.get("/", headers=headers).status_code == 200
    cohort = web.get(COHORT_JSON, headers=headers)
    assert cohort.status_code == 200
    assert (
        cohort.json is not None
        and cohort.json["request"]["primary_event"] == "user:created"
    )


def main_part(html: str) -> str:
    return html.split('<main id="main">', 1)[1]


def test_demo_pages_are_styled_and_lead_back_home(demo: Any) -> None:
    demo["prepare"](users=5, days=2)
    app = demo["app"]
    web = app.test_client()
    logged_out = web.get("/")
    pages = {"/ (logged out)": logged_out}
    assert web.post("/login", data={"user_id": "1"}).status_code == 302
    created = web.post("/projects", data={"name": "Launch"})
    pages["/"] = web.get("/")
    pages["project"] = web.get(created.headers["Location"])
    pages["/checkout"] = web.get("/checkout")

    for name, page in pages.items():
        assert (name, page.status_code) == (name, 200)
        assert STYLESHEET in page.text, name
        # No inline style or script: the page keeps to its own CSP.
        assert re.search(r"<style|style=|<script", page.text) is None, name
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert '<a class="brand" href="/">' in page.text, name

    # The checkout page itself, not only its top bar, offers the way back.
    assert '<a href="/">Back to your projects</a>' in main_part(pages["/checkout"].text)
    assert '<a href="/">Back to your projects</a>' in main_part(pages["project"].text)

    missing = web.get("/no-such-page")
    assert missing.status_code == 404
    assert STYLESHEET in missing.text
    assert '<a href="/">Back to the home page</a>' in main_part(missing.text)

    stylesheet = web.get("/static/demo.css")
    assert stylesheet.status_code == 200
    assert stylesheet.mimetype == "text/css"
    assert "body" in stylesheet.text

    icon = web.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.mimetype == "image/svg+xml"
    assert icon.text.lstrip().startswith("<svg")
    assert (
        '<link rel="icon" type="image/svg+xml" href="/favicon.ico">' in logged_out.text
    )


def test_demo_sends_guests_from_checkout_to_the_login_form(demo: Any) -> None:
    demo["prepare"](users=5, days=2)
    web = demo["app"].test_client()
    checkout = web.get("/checkout")
    assert checkout.status_code == 302
    home = web.get(checkout.headers["Location"])
    assert "Please log in to access this page." in home.text
    assert "Log in as" in home.text


def test_example_cohort_link_shows_a_heatmap_of_the_seeded_data(demo: Any) -> None:
    """The link that ``make demo`` prints, on the demo's default seed."""
    demo["prepare"]()
    web = demo["app"].test_client()
    page = web.get(demo["EXAMPLE_COHORT"])
    assert page.status_code == 200
    rows = re.findall(r"<tr>\s*<th scope=\"row\">.*?</tr>", page.text, re.S)
    assert len(rows) == 12
    cells = [re.findall(r'data-count="(\d+)"', row) for row in rows]
    # Every week's sign-ups logged in that week, and some of the earliest
    # came back in each of the 7 weeks after.
    assert all(row and int(row[0]) > 0 for row in cells)
    assert len(cells[0]) == 8
    assert all(int(count) > 0 for count in cells[0])
    assert "100.0%" in page.text


def wait_for_http(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_sigterm_stops_the_demo_and_its_embedded_server(tmp_path: Path) -> None:
    port = free_port()
    instance = tmp_path / "instance"
    log = (tmp_path / "demo.log").open("w")
    environment = app_environment() | {
        "DEMO_PORT": str(port),
        "DEMO_INSTANCE_PATH": str(instance),
        "DEMO_SEED_USERS": "50",
        "DEMO_SEED_DAYS": "7",
    }
    process = subprocess.Popen(
        [sys.executable, str(DEMO)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    with log, stopped_at_the_end(process) as servers:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/", process)
        servers.append(registry_pid(instance / "demo.rdb"))
        assert is_running(servers[0])
        # The real server refuses another Host header too.
        rebound = urllib.request.Request(f"{base}/", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(rebound, timeout=5)
        assert refused.value.code == 400

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=DEADLINE_SECONDS)
        assert wait_until_gone(servers[0])
        assert process.returncode == 128 + signal.SIGTERM

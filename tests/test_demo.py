"""The demo that ``make demo`` serves works end to end: seeded on first start,
marking through Flask-Login, the mixin and the rules, shown by the dashboard."""

from __future__ import annotations

import re
import runpy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from flask_bitmapist import DayEvents, flush

DEMO = Path(__file__).parent.parent / "examples" / "demo.py"


@pytest.fixture
def demo(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("BITMAPIST_REDIS_URL", redis_url)
    monkeypatch.setenv("DEMO_DATABASE_URI", f"sqlite:///{tmp_path / 'demo.db'}")
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
                event: 4 in DayEvents.from_date(event, today, system=client)
                for event in events
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

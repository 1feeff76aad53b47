"""The demo that ``make demo`` serves works end to end."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

DEMO = Path(__file__).parent.parent / "examples" / "demo.py"


def test_demo_marks_and_reports(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BITMAPIST_REDIS_URL", redis_url)
    app = runpy.run_path(str(DEMO), run_name="demo")["app"]
    web = app.test_client()
    home = web.get("/")
    assert home.status_code == 200
    assert "You are user" in home.text
    assert web.post("/play").status_code == 302
    assert web.post("/play").status_code == 302
    assert web.post("/like").status_code == 302

    stats = web.get("/stats").get_json()
    assert stats["this_week"] == {"home:viewed": 1, "song:played": 1, "song:liked": 1}
    assert stats["cohort"][-1]["users"] == 1
    assert stats["cohort"][-1]["played"][0] == 1
    assert stats["writer"]["written"] == 4
    assert stats["writer"]["dropped"] == 0

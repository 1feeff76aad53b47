"""The fake data of flask_bitmapist.track.seed: realistic, repeatable, bounded."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from flask_bitmapist import get_cohort, get_event_data
from flask_bitmapist.track.seed import generate_marks, seed_events

NOW = datetime(2026, 11, 22, 15, 30, tzinfo=timezone.utc)


def test_same_seed_same_data_and_nothing_after_now() -> None:
    first = [list(user) for user in generate_marks(200, 30, seed=7, now=NOW)]
    again = [list(user) for user in generate_marks(200, 30, seed=7, now=NOW)]
    other = [list(user) for user in generate_marks(200, 30, seed=8, now=NOW)]
    assert first == again != other
    marks = [mark for user in first for mark in user]
    assert max(mark.when for mark in marks) <= NOW
    start = (NOW - timedelta(days=29)).replace(hour=0, minute=0)
    assert min(mark.when for mark in marks) >= start.replace(second=0, microsecond=0)
    assert {mark.user_id for mark in marks} <= set(range(1, 201))


def test_every_user_signs_up_then_fewer_come_back() -> None:
    users = list(generate_marks(500, 60, seed=1, now=NOW))
    signups = Counter(mark.event_name for user in users for mark in user)
    assert signups["user:created"] <= 500
    assert all(user[0].event_name == "user:created" for user in users if user)
    assert signups["user:logged_in"] > signups["user:created"]
    assert 0 < signups["plan:upgraded"] <= signups["checkout:started"]


@pytest.mark.parametrize(
    ("users", "days", "message"),
    [
        (0, 10, "users must be an int from 1 to 1000000, got 0."),
        (10, 0, "days must be an int from 1 to 3660, got 0."),
        (10, True, "days must be an int from 1 to 3660, got True."),
    ],
)
def test_out_of_range_arguments(users: int, days: int, message: str) -> None:
    with pytest.raises(ValueError) as error:
        next(generate_marks(users, days))
    assert str(error.value) == message


def test_seed_writes_the_marks_once_and_retention_falls(
    client: redis.Redis, default_system: redis.Redis
) -> None:
    done: list[int] = []
    written = seed_events(
        client, users=300, days=60, seed=3, now=NOW, progress=done.append
    )
    assert sum(done) == 300
    expected = sum(len(user) for user in generate_marks(300, 60, seed=3, now=NOW))
    assert written == expected
    keys = sorted(client.keys("trackist_*"))
    snapshot = {key: client.get(key) for key in keys}
    seed_events(client, users=300, days=60, seed=3, now=NOW)
    assert {
        key: client.get(key) for key in sorted(client.keys("trackist_*"))
    } == snapshot
    assert len(get_event_data("user:created", "months", NOW)) > 0
    cohort, _, totals = get_cohort(
        "user:created",
        "user:logged_in",
        time_group="weeks",
        num_rows=6,
        num_cols=4,
        with_replacement=True,
        now=NOW,
    )
    week_one = [
        row[1] / total
        for row, total in zip(cohort[:4], totals[:4], strict=True)
        if total
    ]
    week_three = [
        row[3] / total
        for row, total in zip(cohort[:3], totals[:3], strict=True)
        if total
    ]
    assert sum(week_three) / len(week_three) < sum(week_one) / len(week_one)
    assert len(get_event_data("user:logged_in", "days", NOW)) > 0


def test_seed_script_outside_flask(redis_url: str, client: redis.Redis) -> None:
    script = Path(__file__).parent.parent / "scripts" / "seed.py"
    result = subprocess.run(
        [sys.executable, str(script), "--redis-url", redis_url, "--users", "40",
         "--days", "5", "--seed", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"Seeded [1-9]\d* events of 40 users over 5 days.\n", result.stdout
    )
    assert client.exists(f"trackist_user:created_{datetime.now(timezone.utc).year}-"
                         f"{datetime.now(timezone.utc).month}")  # fmt: skip

"""The ``flask bitmapist`` commands: events, cohort, seed, purge and stats,
their output, and their one-line errors with exit code 1."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from conftest import AppFactory
from flask import Flask

from flask_bitmapist import count_events, get_cohort, get_event_data, mark_event
from flask_bitmapist.store.layout import BITMAPIST, Period
from flask_bitmapist.testing import free_port

NOW = datetime.now(timezone.utc)


def run(app: Flask, *args: str, input: str | None = None) -> Any:
    return app.test_cli_runner().invoke(args=["bitmapist", *args], input=input)


def all_keys(app: Flask) -> list[str]:
    """Every key of the app's store (on a cluster, of every primary) but the
    sharded layout's registry."""
    client = app.extensions["bitmapist"].state(app).client
    if isinstance(client, redis.RedisCluster):
        keys = client.keys("*", target_nodes=client.PRIMARIES)
    else:
        keys = client.keys("*")
    return sorted(key.decode() for key in keys if not key.endswith(b":shards"))


def key_names(app: Flask, names: list[str]) -> list[str]:
    """bitmapist's key names as the app's layout spells them, for users of
    shard 0."""
    layout = app.extensions["bitmapist"].state(app).store.layout
    found = []
    for name in names:
        parsed = BITMAPIST.parse(name)
        assert parsed is not None
        found.append(layout.key(*parsed, 0))
    return sorted(found)


@pytest.fixture
def seeded(store_app: Flask) -> Flask:
    """Three days of marks on each of conftest.STORES."""
    app = store_app
    with app.app_context():
        for days_ago, users in ((0, range(6)), (1, range(6, 10)), (2, range(10, 13))):
            when = NOW - timedelta(days=days_ago)
            for user in users:
                mark_event("signup", user, now=when)
            for user in list(users)[::2]:
                mark_event("play", user, now=when)
        mark_event("play", 10, now=NOW)
        mark_event("pay", 11, now=NOW)
        mark_event("pay", 1, now=NOW)
    return app


# events


def test_events_prints_a_table_of_the_four_counts(seeded: Flask) -> None:
    result = run(seeded, "events")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["event", "today", "week", "month", "year"]
    with seeded.app_context():
        counts = count_events(["pay", "play", "signup"])
    for line, (name, count) in zip(lines[1:], counts.items(), strict=True):
        assert line.split() == [
            name,
            *map(str, (count.day, count.week, count.month, count.year)),
        ]


def test_events_json_and_prefix(seeded: Flask) -> None:
    result = run(seeded, "events", "--json", "--prefix", "p")
    data = json.loads(result.output)
    assert [item["event"] for item in data] == ["pay", "play"]
    assert data[0] == {"event": "pay", "day": 2, "week": 2, "month": 2, "year": 2}


# cohort


def test_cohort_keeps_the_order_of_and_and_or(seeded: Flask) -> None:
    # signup, then play --or pay --and signup: (play | pay) & signup.
    result = run(
        seeded, "cohort", "signup", "play", "--or", "pay", "--and=signup",
        "--rows", "3", "--cols", "3", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with seeded.app_context():
        cohort, dates, totals = get_cohort(
            "signup",
            "play",
            [{"name": "pay", "op": "or"}, {"name": "signup", "op": "and"}],
            num_rows=3,
            num_cols=3,
        )
        reordered, _, _ = get_cohort(
            "signup",
            "play",
            [{"name": "signup", "op": "and"}, {"name": "pay", "op": "or"}],
            num_rows=3,
            num_cols=3,
        )
    data = json.loads(result.output)
    assert data["cohort"] == cohort
    assert data["row_totals"] == totals
    assert data["dates"] == [date.isoformat() for date in dates]
    assert data["request"]["additional_events"] == [
        {"name": "pay", "op": "or"},
        {"name": "signup", "op": "and"},
    ]
    assert reordered != cohort, "the test data cannot tell the orders apart"


def test_cohort_table_and_csv(seeded: Flask) -> None:
    with seeded.app_context():
        cohort, dates, totals = get_cohort("signup", "play", num_rows=3, num_cols=2)
    table = run(seeded, "cohort", "signup", "play", "--rows", "3", "--cols", "2")
    assert table.exit_code == 0
    # The table is headed by what it counts (tests/test_cli_reports.py).
    description, *lines = table.output.splitlines()
    assert description.startswith("Each row")
    assert lines[0].split() == ["period", "users", "+0", "days", "+1", "days"]
    for line, date, total, row in zip(lines[1:4], dates, totals, cohort, strict=True):
        assert line.split() == [
            date.date().isoformat(),
            str(total),
            *(str(cell) for cell in row if cell is not None),
        ]
    assert lines[4].split()[0] == "average" and lines[5].split()[0] == "total"
    rows = list(
        csv.reader(
            io.StringIO(
                run(seeded, "cohort", "signup", "play", "--rows", "3", "--cols", "2",
                    "--format", "csv").output
            )
        )
    )  # fmt: skip
    assert rows[1] == [
        dates[0].date().isoformat(),
        str(totals[0]),
        *map(str, cohort[0]),
    ]
    percent = run(
        seeded, "cohort", "signup", "play", "--rows", "3", "--cols", "2", "--percent"
    )
    assert f"{100 * cohort[0][0] / totals[0]:.1f}%" in percent.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["signup", "plya"], "Error: Unknown event 'plya'; did you mean play?"),
        (["signup", "play", "--or", "nothing"], "Error: Unknown event 'nothing'."),
        (["signup", "a b"], "Error: secondary_event: must not contain whitespace"),
    ],
)
def test_cohort_errors_are_one_line_and_exit_1(
    seeded: Flask, args: list[str], message: str
) -> None:
    result = run(seeded, "cohort", *args)
    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert len(result.output.splitlines()) == 1
    assert "Traceback" not in result.output


def test_cohort_bad_rows_is_a_usage_error(seeded: Flask) -> None:
    result = run(seeded, "cohort", "signup", "play", "--rows", "0")
    assert result.exit_code == 2
    assert "0 is not in the range 1<=x<=366" in result.output


# seed


def test_seed_fills_an_empty_store_and_asks_before_adding(store_app: Flask) -> None:
    app = store_app
    result = run(app, "seed", "--users", "30", "--days", "10", "--seed", "4")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("Seeded ")
    with app.app_context():
        assert len(get_event_data("user:created", "month", now=NOW)) > 0
    refused = run(app, "seed", "--users", "30", input="n\n")
    assert refused.exit_code == 1
    assert "Error: Nothing was seeded." in refused.output
    assert run(app, "seed", "--users", "30", "--yes").exit_code == 0


def test_seed_refuses_users_above_the_maximum_id(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(max_user_id=20)
    result = run(app, "seed", "--users", "21", "--yes")
    assert result.exit_code == 1
    assert (
        "Error: --users 21 needs ids up to 21, above BITMAPIST_MAX_USER_ID (20)."
        in result.output
    )
    assert client.dbsize() == 0
    assert run(app, "seed", "--users", "20", "--days", "5", "--yes").exit_code == 0


# purge


def test_purge_dry_run_lists_then_purge_deletes_only_ended_periods(
    store_app: Flask,
) -> None:
    app = store_app
    with app.app_context():
        mark_event("visit", 1, now=datetime(2026, 1, 31, 23), track_hourly=True)
        mark_event("visit", 2, now=datetime(2026, 2, 2, 8), track_unique=True)
    before = all_keys(app)
    assert before == key_names(app, [
        "trackist_visit_2026-1",
        "trackist_visit_2026-1-31",
        "trackist_visit_2026-1-31-23",
        "trackist_visit_2026-2",
        "trackist_visit_2026-2-2",
        "trackist_visit_W2026-5",
        "trackist_visit_W2026-6",
        "trackist_visit_u",
    ])  # fmt: skip
    dry = run(app, "purge", "--before", "2026-02-02", "--dry-run")
    assert dry.exit_code == 0
    gone = key_names(app, [
        "trackist_visit_2026-1",
        "trackist_visit_2026-1-31",
        "trackist_visit_2026-1-31-23",
        "trackist_visit_W2026-5",
    ])  # fmt: skip
    listed = [line.split("\t") for line in dry.stdout.splitlines()]
    assert [key for key, _ in listed] == gone
    sizes = [int(size) for _, size in listed]
    assert all(size > 0 for size in sizes)
    assert dry.stderr == f"Would delete 4 keys holding {sum(sizes)} B.\n"
    assert all_keys(app) == before

    result = run(app, "purge", "--before", "2026-02-02")
    assert result.exit_code == 0
    assert result.output == "Deleted 4 keys of periods that ended before 2026-02-02.\n"
    assert all_keys(app) == sorted(set(before) - set(gone))


def test_purge_bad_date_is_one_line_and_exit_1(app: Flask) -> None:
    result = run(app, "purge", "--before", "2026-13-01")
    assert result.exit_code == 1
    assert result.output == (
        "Error: --before must be a date as YYYY-MM-DD, got '2026-13-01'.\n"
    )


# stats


def test_stats_memory_per_event_and_writer_counters(seeded: Flask) -> None:
    text = run(seeded, "stats")
    layout = seeded.extensions["bitmapist"].state(seeded).store.layout
    assert text.exit_code == 0
    lines = text.output.splitlines()
    assert lines[0].split() == ["event", "keys", "memory"]
    assert [line.split()[0] for line in lines[1:4]] == ["pay", "play", "signup"]
    assert lines[4].startswith("3 events, ")
    assert lines[5].startswith("Writer (sync): queued 23, written 23, retried 0,")
    data = json.loads(run(seeded, "stats", "--json").output)
    signup = data["events"][2]
    assert signup["event"] == "signup"
    # A key per period and shard that holds a signup (the fixture's marks).
    expected = {
        layout.key("signup", Period.of(unit, NOW - timedelta(days=ago)), shard)
        for ago, users in ((0, range(6)), (1, range(6, 10)), (2, range(10, 13)))
        for shard in {layout.split(user)[0] for user in users}
        for unit in ("day", "week", "month")
    }
    assert signup["keys"] == len(expected)
    assert signup["bytes"] > 0
    assert data["writer"]["mode"] == "sync"


# errors


@pytest.mark.parametrize(
    "args",
    [
        ["events"],
        ["cohort", "a", "b"],
        ["stats"],
        ["purge", "--before", "2026-01-01"],
        ["seed", "--users", "3"],
    ],
)
def test_redis_unreachable_is_one_line_and_exit_1(
    make_app: AppFactory, args: list[str]
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    result = run(app, *args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: Redis is unreachable: ")
    assert len(result.output.splitlines()) == 1

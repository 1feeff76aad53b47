"""``flask bitmapist cohort --first-time --on-or-after``, ``funnel``,
``lifecycle`` and ``stickiness``: their exact output, JSON and one-line
errors, on each of conftest.STORES; and docs/reports.md's examples, Python
and command line, run as written."""

from __future__ import annotations

import doctest
import json
import re
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import AppFactory
from flask import Flask

from flask_bitmapist import (
    CohortRequest,
    get_cohort,
    get_funnel,
    get_lifecycle,
    get_stickiness,
    mark_event,
)
from flask_bitmapist import cli as cli_module
from flask_bitmapist.testing import free_port

UTC = timezone.utc
# A Wednesday of ISO week 2026-W48 (Monday 23 to Sunday 29 November).
NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
REPORTS_PAGE = Path(__file__).parent.parent / "docs" / "reports.md"


def day(number: int, hour: int = 12, month: int = 11) -> datetime:
    return datetime(2026, month, number, hour, tzinfo=UTC)


# User 6 signed up long before (not new on the 24th); user 4 played before
# signing up; user 3 played and paid on the day it signed up; user 8 plays
# without signing up, three days of the week.
MARKS = [
    ("signup", 7, day(20)),
    ("signup", 6, day(1, month=10)),
    ("signup", 1, day(23)),
    ("signup", 2, day(23)),
    ("signup", 3, day(24)),
    ("signup", 4, day(24)),
    ("signup", 6, day(24)),
    ("signup", 5, day(25, hour=8)),
    ("play", 7, day(21)),
    ("play", 4, day(22)),
    ("play", 1, day(23)),
    ("play", 8, day(23)),
    ("play", 1, day(24)),
    ("play", 3, day(24, hour=18)),
    ("play", 8, day(24)),
    ("play", 2, day(25, hour=8)),
    ("play", 4, day(25, hour=8)),
    ("play", 6, day(25, hour=8)),
    ("play", 8, day(25, hour=8)),
    ("pay", 3, day(24, hour=9)),
    ("pay", 2, day(24)),
    ("pay", 1, day(25, hour=8)),
]


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["bitmapist", *args])


def freeze_cli_clock(monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
    """Make the report commands run at ``now`` (they take the time once, from
    ``cli._now``)."""
    monkeypatch.setattr(cli_module, "_now", lambda: now)


@pytest.fixture
def marked(store_app: Flask, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """MARKS on each of conftest.STORES, the commands run at NOW."""
    with store_app.app_context():
        for event, user, when in MARKS:
            mark_event(event, user, now=when)
    freeze_cli_clock(monkeypatch, NOW)
    return store_app


@pytest.fixture
def one_store(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """MARKS in bitmapist's layout on one node, for the errors."""
    with app.app_context():
        for event, user, when in MARKS:
            mark_event(event, user, now=when)
    freeze_cli_clock(monkeypatch, NOW)
    return app


def table(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


# cohort


def test_cohort_first_time_on_or_after_is_headed_by_its_description(
    marked: Flask,
) -> None:
    # First-time rows: 23rd {1, 2}; 24th {3, 4} (user 6 signed up in
    # October); 25th {5}. A cell: those who played that day or any later one.
    result = run(
        marked, "cohort", "signup", "play", "--rows", "3", "--cols", "3",
        "--first-time", "--on-or-after",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    description = CohortRequest(
        "signup", "play", num_rows=3, num_cols=3,
        cohort="first_time", retention="on_or_after",
    ).description  # fmt: skip
    assert "for the first time" in description
    assert result.stdout == table(
        description,
        "period      users  +0 days  +1 days  +2 days",
        "2026-11-23      2        2        2        1",
        "2026-11-24      2        2        1",
        "2026-11-25      1        0",
        "average       1.7      1.3      1.5      1.0",
        "total           5        4        3        1",
    )
    assert result.stderr == ""


def test_cohort_without_the_flags_is_headed_by_its_description(
    marked: Flask,
) -> None:
    result = run(marked, "cohort", "signup", "play", "--rows", "3", "--cols", "2")
    assert result.exit_code == 0, result.output
    description = CohortRequest("signup", "play", num_rows=3, num_cols=2).description
    # Recurring rows: 23rd {1, 2}; 24th {3, 4, 6}; 25th {5}; without
    # replacement, each user in the first column they played in.
    assert result.stdout == table(
        description,
        "period      users  +0 days  +1 days",
        "2026-11-23      2        1        0",
        "2026-11-24      3        1        2",
        "2026-11-25      1        0",
        "average       2.0      0.7      1.0",
        "total           6        2        2",
    )


@pytest.mark.parametrize(
    ("flags", "cohort", "retention"),
    [
        ([], "recurring", "on"),
        (["--first-time"], "first_time", "on"),
        (["--on-or-after"], "recurring", "on_or_after"),
        (["--first-time", "--on-or-after"], "first_time", "on_or_after"),
    ],
)
def test_cohort_flags_are_the_two_modes_of_get_cohort(
    marked: Flask, flags: list[str], cohort: str, retention: str
) -> None:
    result = run(
        marked, "cohort", "signup", "play", "--rows", "4", "--cols", "3",
        "--format", "json", *flags,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["request"]["cohort"] == cohort
    assert data["request"]["retention"] == retention
    with marked.app_context():
        expected, dates, totals = get_cohort(
            "signup", "play", num_rows=4, num_cols=3, now=NOW,
            cohort=cohort, retention=retention,
        )  # fmt: skip
    assert data["cohort"] == expected
    assert data["row_totals"] == totals
    assert data["dates"] == [date.isoformat() for date in dates]


# funnel

# Entries (3 days to the 25th, within 1): 23rd {1, 2}; 24th {3, 4, 6};
# 25th {5}. Play: user 1 on the 23rd, user 3 on the 24th, users 4 and 6 on
# the 25th (user 2's is two days after entry). Pay: user 3 on the 24th
# (the same day as its play: in order); user 1's is two days after entry.
FUNNEL_TABLE = table(
    "Users who entered from 2026-11-23 to 2026-11-25 (UTC), and did each later "
    "step within 1 day of the day they entered:",
    "step       users  of previous  of step 1  dropped off",
    "1. signup      6       100.0%     100.0%            0",
    "2. play        4        66.7%      66.7%            2",
    "3. pay         1        25.0%      16.7%            3",
)


def test_funnel_prints_each_step_with_its_conversions_and_drop_off(
    marked: Flask,
) -> None:
    result = run(
        marked, "funnel", "signup", "play", "pay", "--periods", "3", "--within", "1"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == FUNNEL_TABLE
    assert result.stderr == ""


def test_funnel_json_is_get_funnel_s(marked: Flask) -> None:
    result = run(
        marked, "funnel", "signup", "play", "pay",
        "--periods", "3", "--within", "1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "steps": ["signup", "play", "pay"],
        "time_group": "days",
        "num_periods": 3,
        "within": 1,
        "dates": [
            "2026-11-23T00:00:00+00:00",
            "2026-11-24T00:00:00+00:00",
            "2026-11-25T00:00:00+00:00",
        ],
        "rows": [[2, 1, 0], [3, 3, 1], [1, 0, 0]],
        "counts": [6, 4, 1],
        "conversion_from_previous": [100.0, 400 / 6, 25.0],
        "conversion_from_first": [100.0, 400 / 6, 100 / 6],
    }


def test_funnel_defaults_are_30_days_within_7(marked: Flask) -> None:
    result = run(marked, "funnel", "signup", "play", "--json")
    assert result.exit_code == 0, result.output
    with marked.app_context():
        expected = get_funnel(["signup", "play"], "days", 30, 7, now=NOW)
    data = json.loads(result.stdout)
    assert data == json.loads(json.dumps(expected.to_json()))
    assert (data["num_periods"], data["within"]) == (30, 7)
    # Every signup but the October one (user 6 enters on the 24th); all
    # but user 5 played within 7 days, user 4 again after signing up.
    assert data["counts"] == [7, 6]


def test_funnel_per_week_within_0(marked: Flask) -> None:
    result = run(
        marked, "funnel", "signup", "play", "signup",
        "--per", "weeks", "--periods", "2", "--within", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # W47: user 7, who played in W47 too. W48: users 1 to 6 (user 6's
    # October signup is before the report); all but 5 played in W48. The last
    # step repeats the first: done in the same week, so in order.
    assert result.stdout == table(
        "Users who entered from 2026-W47 to 2026-W48 (UTC), and did each later "
        "step in the week they entered:",
        "step       users  of previous  of step 1  dropped off",
        "1. signup      7       100.0%     100.0%            0",
        "2. play        6        85.7%      85.7%            1",
        "3. signup      6       100.0%      85.7%            0",
    )


def test_funnel_without_entries_prints_dashes_for_its_conversions(
    marked: Flask,
) -> None:
    # Users 1, 2 and 3 paid in November, and played in it.
    result = run(
        marked, "funnel", "pay", "play", "--per", "months", "--periods", "1",
        "--within", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == table(
        "Users who entered in 2026-11 (UTC), and did each later step within 2 "
        "months of the month they entered:",
        "step     users  of previous  of step 1  dropped off",
        "1. pay       3       100.0%     100.0%            0",
        "2. play      3       100.0%     100.0%            0",
    )
    with marked.app_context():
        mark_event("refund", 9, now=day(2, month=10))
    empty = run(marked, "funnel", "refund", "play", "--periods", "2")
    assert empty.exit_code == 0, empty.output
    assert empty.stdout == table(
        "Users who entered from 2026-11-24 to 2026-11-25 (UTC), and did each "
        "later step within 7 days of the day they entered:",
        "step       users  of previous  of step 1  dropped off",
        "1. refund      0            -          -            0",
        "2. play        0            -          -            0",
    )


# lifecycle


def test_lifecycle_prints_a_period_a_line_dormant_positive(marked: Flask) -> None:
    result = run(marked, "lifecycle", "play", "--periods", "4")
    assert result.exit_code == 0, result.output
    # 22nd {4} (user 7 played the day before); 23rd {1, 8}; 24th {1, 3, 8};
    # 25th {2, 4, 6, 8}: 4 is back after the 22nd.
    assert result.stdout == table(
        "period      new  returning  resurrecting  dormant",
        "2026-11-22    1          0             0        1",
        "2026-11-23    2          0             0        1",
        "2026-11-24    1          2             0        0",
        "2026-11-25    2          1             1        2",
    )
    assert result.stderr == ""


def test_lifecycle_new_is_measured_against_every_earlier_mark(
    marked: Flask,
) -> None:
    # User 6 signed up in October: returning in November by months, and
    # resurrecting in W48 by weeks (not in W47, but before it).
    result = run(marked, "lifecycle", "signup", "--per", "months", "--periods", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout == table(
        "period   new  returning  resurrecting  dormant",
        "2026-09    0          0             0        0",
        "2026-10    1          0             0        0",
        "2026-11    6          1             0        0",
    )
    weeks = run(marked, "lifecycle", "signup", "--per", "weeks", "--periods", "2")
    assert weeks.stdout == table(
        "period    new  returning  resurrecting  dormant",
        "2026-W47    1          0             0        0",
        "2026-W48    5          0             1        1",
    )


def test_lifecycle_json_is_get_lifecycle_s_rows(marked: Flask) -> None:
    result = run(marked, "lifecycle", "signup", "--per", "years", "--json")
    assert result.exit_code == 0, result.output
    with marked.app_context():
        rows = get_lifecycle("signup", "years", 30, now=NOW)
    data = json.loads(result.stdout)
    assert data == [row.to_json() for row in rows]
    assert len(data) == 30
    assert data[-1] == {
        "date": "2026-01-01T00:00:00+00:00",
        "new": 7,
        "returning": 0,
        "resurrecting": 0,
        "dormant": 0,
    }


# stickiness


def test_stickiness_prints_a_line_per_number_of_days(marked: Flask) -> None:
    # In W48: user 8 played on 3 days, user 1 on 2, users 2, 3, 4 and 6 on 1
    # (user 4's other day is in W47).
    result = run(marked, "stickiness", "play")
    assert result.exit_code == 0, result.output
    assert result.stdout == table(
        "Users of play by the number of days of 2026-W48 (UTC) they did it on:",
        "1 day: 4",
        "2 days: 1",
        "3 days: 1",
        "4 days: 0",
        "5 days: 0",
        "6 days: 0",
        "7 days: 0",
    )
    assert result.stderr == ""


def test_stickiness_per_month_json(marked: Flask) -> None:
    result = run(marked, "stickiness", "play", "--per", "months", "--json")
    assert result.exit_code == 0, result.output
    # November: users 2, 3, 6 and 7 on 1 day; 1 and 4 on 2; 8 on 3.
    counts = [4, 2, 1] + [0] * 27
    with marked.app_context():
        assert get_stickiness("play", "months", now=NOW) == counts
    assert json.loads(result.stdout) == {
        "event": "play",
        "time_group": "months",
        "period": "2026-11",
        "counts": counts,
    }


# errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["funnel", "signup", "plya"], "Unknown event 'plya'; did you mean play?"),
        (["funnel", "nothing", "play", "pay"], "Unknown event 'nothing'."),
        (
            ["funnel", "signup", "a b"],
            "steps[1]: must not contain whitespace or control characters, got 'a b'.",
        ),
        (["lifecycle", "sigup"], "Unknown event 'sigup'; did you mean signup?"),
        (
            ["lifecycle", "a b"],
            "Event name must not contain whitespace or control characters, got 'a b'.",
        ),
        (["stickiness", "pya"], "Unknown event 'pya'; did you mean pay?"),
        (["stickiness", ""], "Event name must not be empty."),
        (
            ["cohort", "signup", "plya", "--first-time"],
            "Unknown event 'plya'; did you mean play?",
        ),
    ],
)
def test_errors_are_one_line_and_exit_1(
    one_store: Flask, args: list[str], message: str
) -> None:
    result = run(one_store, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {message}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["funnel", "signup"],
            "Invalid value for 'STEP STEP...': a funnel has 2 to 10 steps, got 1.",
        ),
        (
            ["funnel", *"abcdefghijk"],
            "Invalid value for 'STEP STEP...': a funnel has 2 to 10 steps, got 11.",
        ),
        (["funnel"], "Missing argument 'STEP STEP...'."),
        (
            ["funnel", "signup", "play", "--per", "years"],
            "Invalid value for '--per': 'years' is not one of 'days', 'weeks', "
            "'months'.",
        ),
        (
            ["funnel", "signup", "play", "--periods", "0"],
            "Invalid value for '--periods': 0 is not in the range 1<=x<=366.",
        ),
        (
            ["funnel", "signup", "play", "--within", "-1"],
            "Invalid value for '--within': -1 is not in the range 0<=x<=366.",
        ),
        (
            ["funnel", "signup", "play", "--within", "367"],
            "Invalid value for '--within': 367 is not in the range 0<=x<=366.",
        ),
        (
            ["funnel", "signup", "play", "pay", "--periods", "366", "--within", "27"],
            "Invalid value for '--within': --periods x (--within + 1) x "
            "(steps - 1) must be at most 20000, got 366 x 28 x 2 = 20496.",
        ),
        (
            ["lifecycle", "play", "--per", "hours"],
            "Invalid value for '--per': 'hours' is not one of 'days', 'weeks', "
            "'months', 'years'.",
        ),
        (
            ["lifecycle", "play", "--periods", "367"],
            "Invalid value for '--periods': 367 is not in the range 1<=x<=366.",
        ),
        (
            ["stickiness", "play", "--per", "days"],
            "Invalid value for '--per': 'days' is not one of 'weeks', 'months'.",
        ),
    ],
)
def test_bad_command_lines_are_usage_errors(
    one_store: Flask, args: list[str], message: str
) -> None:
    result = run(one_store, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"Error: {message}"


def test_the_largest_funnel_the_bound_allows_runs(one_store: Flask) -> None:
    # 366 x 27 x 2 = 19,764 BITOP pairs: just under the bound.
    result = run(
        one_store, "funnel", "signup", "play", "pay",
        "--periods", "366", "--within", "26", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == [7, 5, 2]


@pytest.mark.parametrize(
    "args",
    [
        ["funnel", "a", "b"],
        ["lifecycle", "a"],
        ["stickiness", "a"],
        ["cohort", "a", "b", "--first-time", "--on-or-after"],
    ],
)
def test_redis_unreachable_is_one_line_and_exit_1(
    make_app: AppFactory, args: list[str]
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    result = run(app, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: Redis is unreachable: ")
    assert len(result.stderr.splitlines()) == 1


# docs/reports.md


def test_the_reports_page_runs_as_written(
    app: Flask, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each section of docs/reports.md starts from an empty store (when it
    has Python examples): its ``pycon`` blocks run as doctests, in order and
    sharing their names, then each ``$ flask bitmapist ...`` line of its
    ``text`` blocks runs at the examples' ``now`` and prints exactly the lines
    below it."""
    page = REPORTS_PAGE.read_text()
    sections = page.split("\n## ")
    ran: dict[str, list[int]] = {}
    for section in sections:
        title = section.splitlines()[0]
        blocks = re.findall(r"```(pycon|text)\n(.*?)```", section, re.DOTALL)
        names: dict[str, Any] = {}
        counts = ran[title] = [0, 0]  # examples, commands
        if any(kind == "pycon" for kind, _ in blocks):
            client.flushdb()
        for kind, body in blocks:
            if kind == "pycon":
                line = page[: page.index(body)].count("\n")
                counts[0] += run_doctest(app, body, names, title, line)
            elif body.startswith("$ flask bitmapist "):
                if "now" in names:
                    freeze_cli_clock(monkeypatch, names["now"])
                for command, expected in cli_examples(body):
                    result = run(app, *shlex.split(command)[2:])
                    assert (command, result.output) == (command, expected)
                    counts[1] += 1
    # Each report's section has its worked example and its command.
    for title in ("Retention", "Funnels", "Lifecycle", "Stickiness"):
        examples, commands = ran[title]
        assert examples > 5 and commands == 1, title
    assert ran["Errors on the command line"] == [0, 2]


def run_doctest(
    app: Flask, body: str, names: dict[str, Any], title: str, line: int
) -> int:
    """Run ``body`` (from line ``line`` of the page, counted from 0) as
    doctest examples in an app context with ``names`` as their globals
    (updated with what they define); return how many ran."""
    test = doctest.DocTestParser().get_doctest(
        body, names, f"docs/reports.md: {title}", str(REPORTS_PAGE), line
    )
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    with app.app_context():
        runner.run(test, out=report.append, clear_globs=False)
    names.update(test.globs)
    assert runner.failures == 0, "".join(report)
    return runner.tries


def cli_examples(body: str) -> list[tuple[str, str]]:
    """The ``$ ...`` command lines of a text block, each with the lines that
    follow it up to the next command."""
    found: list[tuple[str, str]] = []
    for line in body.splitlines(keepends=True):
        if line.startswith("$ "):
            found.append((line[2:].rstrip("\n"), ""))
        else:
            command, output = found[-1]
            found[-1] = (command, output + line)
    return found

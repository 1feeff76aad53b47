"""``flask bitmapist users`` and ``flask bitmapist ids stats``, on each of
conftest.STORES, with ints as user ids and with the id map: exact pages, the
next-page hint, --all, and one-line errors."""

from __future__ import annotations

import json
import shlex
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from conftest import AppFactory
from flask import Flask

from flask_bitmapist import mark_event
from flask_bitmapist.testing import free_port

UTC = timezone.utc
DAY = datetime(2026, 11, 24, 10, tzinfo=UTC)  # Tuesday of ISO week 2026-W48
NEXT_DAY = datetime(2026, 11, 25, 8, tzinfo=UTC)  # the same week and month
DECEMBER = datetime(2026, 12, 1, 8, tzinfo=UTC)  # 2026-W49, the same year
MODES = ("int", "map")
# The buckets of the id map in bitmapist's layout, and in the sharded one.
ONE_BUCKET, SHARDED_BUCKETS = 1, 64


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["bitmapist", *args])


def lines(*users: int | str) -> str:
    return "".join(f"{user}\n" for user in users)


def hint(next_after: int | str) -> str:
    return (
        "More users follow: run again with --after "
        f"{shlex.quote(str(next_after))} for the next page.\n"
    )


@dataclass(frozen=True)
class Mark:
    event: str
    user: Any  # as marked: an int, a str in any spelling, a uuid.UUID
    canonical: int | str  # as printed
    when: datetime


def map_user(index: int) -> tuple[Any, str]:
    """A user id of the map as marked, and its canonical form: names with
    spaces, quotes and any unicode, ints past 64 bits, UUIDs, and decimal
    strings with a leading zero."""
    kind = index % 5
    if kind == 0:
        return f"Zoë Smith {index}", f"Zoë Smith {index}"
    if kind == 1:
        return 10**30 + index, str(10**30 + index)
    if kind == 2:
        return uuid.UUID(int=index), str(uuid.UUID(int=index))
    if kind == 3:
        return f"-0{index}", str(-index)
    return f"Ann O'Hara #{index} 日本", f"Ann O'Hara #{index} 日本"


def int_marks() -> list[Mark]:
    # Marked from the highest id down: the output is ascending all the same.
    day_users = [7 * index + 3 for index in reversed(range(250))]
    marks = [Mark("play", user, user, DAY) for user in day_users]
    # A decimal string is the same user as the int.
    marks += [Mark("play", str(user), user, DAY) for user in day_users[:20]]
    marks += [Mark("play", user, user, NEXT_DAY) for user in (0, 10, 17, 2000)]
    marks += [Mark("play", 5000, 5000, DECEMBER)]
    marks += [Mark("pay", user, user, DAY) for user in (3, 4)]
    return marks


def id_map_marks() -> list[Mark]:
    marks = [Mark("play", *map_user(index), DAY) for index in range(250)]
    # A user the map meets among DAY's players, who does not play.
    marks.insert(120, Mark("pay", "payer", "payer", DAY))
    # Other spellings of the same users: a UUID's braced upper-case hex, an
    # int's decimal string.
    marks += [
        Mark("play", f"{{{uuid.UUID(int=index).hex.upper()}}}", canonical, DAY)
        for index in range(2, 40, 5)
        for canonical in [str(uuid.UUID(int=index))]
    ]
    marks += [Mark("play", str(10**30 + 1), str(10**30 + 1), DAY)]
    marks += [
        Mark("play", user, user, NEXT_DAY) for user in ("bob", "Zoë Smith 0", "Ω")
    ]
    marks += [Mark("play", "carol carol", "carol carol", DECEMBER)]
    marks += [Mark("pay", 42, "42", DAY)]
    return marks


@dataclass(frozen=True)
class Data:
    app: Flask
    id_map: bool
    marks: list[Mark]
    # Each user's bit offset: the int itself, or what the id map handed out.
    dense: dict[int | str, int]
    buckets: int

    def users(self, event: str, *days: datetime) -> list[int | str]:
        """The users of ``event`` on ``days``, in the order they are printed."""
        found = {
            mark.canonical
            for mark in self.marks
            if mark.event == event and mark.when in days
        }
        return sorted(found, key=self.dense.__getitem__)


def dense_ids(marks: list[Mark], buckets: int) -> dict[int | str, int]:
    """The dense id the map gives each canonical id, in order of first
    appearance: bucket ``b`` (CRC-32 modulo the buckets) hands out ``b``,
    ``b + buckets``, ``b + 2 * buckets``..."""
    taken = [0] * buckets
    dense: dict[int | str, int] = {}
    for mark in marks:
        canonical = str(mark.canonical)
        if canonical in dense:
            continue
        bucket = zlib.crc32(canonical.encode()) % buckets
        dense[canonical] = taken[bucket] * buckets + bucket
        taken[bucket] += 1
    return dense


@pytest.fixture(params=MODES)
def data(
    request: pytest.FixtureRequest,
    make_store_app: AppFactory,
    store_config: dict[str, Any],
) -> Data:
    """The marks of int_marks or id_map_marks, on each of conftest.STORES."""
    id_map = request.param == "map"
    app = make_store_app(id_map=id_map)
    marks = id_map_marks() if id_map else int_marks()
    with app.app_context():
        for mark in marks:
            mark_event(mark.event, mark.user, now=mark.when)
    buckets = SHARDED_BUCKETS if "shard_bits" in store_config else ONE_BUCKET
    if id_map:
        dense = dense_ids(marks, buckets)
    else:
        dense = {mark.canonical: int(mark.canonical) for mark in marks}
    return Data(app, id_map, marks, dense, buckets)


# users


def test_users_prints_the_first_page_and_says_how_to_get_the_next(
    data: Data,
) -> None:
    users = data.users("play", DAY)
    assert len(users) == 250
    result = run(data.app, "users", "play", "--period", "2026-11-24")
    assert result.exit_code == 0, result.output
    assert result.stdout == lines(*users[:100])
    assert result.stderr == hint(users[99])


def test_users_pages_with_the_hints_after_cover_every_user_once(data: Data) -> None:
    users = data.users("play", DAY)
    pages = []
    args = ["users", "play", "--period", "2026-11-24", "--limit", "100"]
    result = run(data.app, *args)
    pages.append(result.stdout)
    while result.stderr:
        # The hint as a shell reads it: quoted ids come back as they are.
        after = shlex.split(result.stderr.split("--after ", 1)[1])[0]
        result = run(data.app, *args, "--after", after)
        assert result.exit_code == 0, result.output
        pages.append(result.stdout)
    assert pages == [
        lines(*users[:100]),
        lines(*users[100:200]),
        lines(*users[200:]),
    ]


def test_users_after_a_user_outside_the_set_starts_past_its_place(
    data: Data,
) -> None:
    # Not a player on DAY, but a user the store knows.
    outsider: int | str = "payer" if data.id_map else 4
    users = data.users("play", DAY)
    later = [user for user in users if data.dense[user] > data.dense[outsider]]
    assert 0 < len(later) < len(users)
    result = run(
        data.app, "users", "play", "--period", "2026-11-24",
        "--after", str(outsider), "--limit", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == lines(*later)
    assert result.stderr == ""


def test_users_limit_sets_the_page_size(data: Data) -> None:
    users = data.users("play", DAY, NEXT_DAY)
    result = run(data.app, "users", "play", "--period", "2026-W48", "--limit", "7")
    assert result.stdout == lines(*users[:7])
    assert result.stderr == hint(users[6])
    last = run(
        data.app, "users", "play", "--period", "2026-W48",
        "--limit", "3", "--after", str(users[-4]),
    )  # fmt: skip
    assert last.stdout == lines(*users[-3:])
    assert last.stderr == ""


@pytest.mark.parametrize(
    ("label", "days"),
    [
        ("2026-11-24", (DAY,)),
        ("2026-11-25", (NEXT_DAY,)),
        ("2026-W48", (DAY, NEXT_DAY)),
        ("2026-W49", (DECEMBER,)),
        ("2026-11", (DAY, NEXT_DAY)),
        ("2026-12", (DECEMBER,)),
        ("2026", (DAY, NEXT_DAY, DECEMBER)),
        ("2025", ()),
    ],
)
def test_users_all_prints_every_user_of_the_period(
    data: Data, label: str, days: tuple[datetime, ...]
) -> None:
    users = data.users("play", *days)
    result = run(data.app, "users", "play", "--period", label, "--all")
    assert result.exit_code == 0, result.output
    assert result.stdout == lines(*users)
    assert result.stderr == ""
    # The same users as a page of the most users a page holds.
    page = run(data.app, "users", "play", "--period", label, "--limit", "1000")
    assert page.stdout == result.stdout


def test_users_default_period_is_today(data: Data) -> None:
    user: int | str = "Today's user ✓" if data.id_map else 6
    with data.app.app_context():
        mark_event("visit", user)
    result = run(data.app, "users", "visit")
    assert result.exit_code == 0, result.output
    assert result.stdout == lines(user)
    assert result.stderr == ""


def test_users_of_an_event_without_users_in_the_period_prints_nothing(
    data: Data,
) -> None:
    result = run(data.app, "users", "pay", "--period", "2026-11-25")
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ("", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plya"], "Unknown event 'plya'; did you mean play?"),
        (["nothing", "--all"], "Unknown event 'nothing'."),
        (
            ["a b"],
            "Event name must not contain whitespace or control characters, got 'a b'.",
        ),
        *(
            (
                ["play", "--period", label],
                "--period must be a day (2026-11-24), an ISO week (2026-W48), a "
                f"month (2026-11) or a year (2026), got {label!r}.",
            )
            for label in (
                "2026-13",
                "2026-02-30",
                "2025-W53",
                "2026-W00",
                "26-11-24",
                "2026-11-24 10:00",
                "2026-w48",
                "today",
                "",
            )
        ),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_users_errors_are_one_line_and_exit_1(
    make_app: AppFactory, args: list[str], message: str, mode: str
) -> None:
    app = make_app(id_map=mode == "map")
    with app.app_context():
        mark_event("play", 1, now=DAY)
    result = run(app, "users", *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {message}\n"


@pytest.mark.parametrize(
    ("mode", "after", "message"),
    [
        ("int", "abc", "--after: must be a user id of 0 or more, got 'abc'."),
        ("int", "-1", "--after: must be a user id of 0 or more, got '-1'."),
        ("map", "nobody", "--after: 'nobody' is not a user of the id map."),
        ("map", "", "--after: the user id is an empty string."),
        ("map", "x" * 257, "--after: the user id has over 256 characters."),
    ],
)
def test_users_bad_after_is_one_line_and_exit_1(
    make_app: AppFactory, mode: str, after: str, message: str
) -> None:
    app = make_app(id_map=mode == "map")
    with app.app_context():
        mark_event("play", 1, now=DAY)
    result = run(app, "users", "play", "--period", "2026-11-24", "--after", after)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {message}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--limit", "0"],
            "Error: Invalid value for '--limit': 0 is not in the range 1<=x<=1000.",
        ),
        (
            ["--limit", "1001"],
            "Error: Invalid value for '--limit': 1001 is not in the range 1<=x<=1000.",
        ),
        (
            ["--limit", "ten"],
            "Error: Invalid value for '--limit': 'ten' is not a valid integer range.",
        ),
        (
            ["--all", "--limit", "100"],
            "Error: --all prints every user: it takes neither --limit nor --after.",
        ),
        (
            ["--all", "--after", "3"],
            "Error: --all prints every user: it takes neither --limit nor --after.",
        ),
    ],
)
def test_users_bad_command_line_is_a_usage_error(
    app: Flask, args: list[str], message: str
) -> None:
    result = run(app, "users", "play", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == message


# ids stats


def test_ids_stats_counts_the_ids_and_the_memory_of_the_map(
    make_store_app: AppFactory, store_config: dict[str, Any]
) -> None:
    app = make_store_app(id_map=True)
    marks = id_map_marks()
    with app.app_context():
        for mark in marks:
            mark_event(mark.event, mark.user, now=mark.when)
    sharded = "shard_bits" in store_config
    buckets = SHARDED_BUCKETS if sharded else ONE_BUCKET
    distinct = {str(mark.canonical) for mark in marks}
    # DAY's players; bob, Ω and carol carol; payer and 42.
    assert len(distinct) == 250 + 3 + 2
    keys = map_keys(app)
    if sharded:
        touched = {zlib.crc32(canonical.encode()) % buckets for canonical in distinct}
        assert keys == sorted(
            f"trackist:ids64{{{bucket}}}:{part}"
            for bucket in touched
            for part in ("next", "fwd", "rev")
        )
    else:
        assert keys == ["trackist:ids:fwd", "trackist:ids:next", "trackist:ids:rev"]
    memory = sum(memory_usage(app, key) for key in keys)
    assert memory > 0

    result = run(app, "ids", "stats")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"ids mapped:    {len(distinct)}\n"
        f"memory:        {memory} bytes ({human(memory)})\n"
        f"bytes per id:  {memory / len(distinct):.1f}\n"
        f"buckets:       {buckets}\n"
    )
    as_json = run(app, "ids", "stats", "--json")
    assert json.loads(as_json.stdout) == {
        "ids": len(distinct),
        "bytes": memory,
        "bytes_per_id": memory / len(distinct),
        "buckets": buckets,
    }


def test_ids_stats_of_an_empty_map(
    make_store_app: AppFactory, store_config: dict[str, Any]
) -> None:
    app = make_store_app(id_map=True)
    result = run(app, "ids", "stats")
    assert result.exit_code == 0, result.output
    buckets = SHARDED_BUCKETS if "shard_bits" in store_config else ONE_BUCKET
    assert result.stdout == (
        "ids mapped:    0\n"
        "memory:        0 bytes (0 B)\n"
        "bytes per id:  -\n"
        f"buckets:       {buckets}\n"
    )


@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_ids_stats_without_the_map_says_how_to_turn_it_on(
    make_store_app: AppFactory, as_json: list[str]
) -> None:
    app = make_store_app(max_user_id=1000)
    with app.app_context():
        mark_event("play", 7, now=DAY)
    result = run(app, "ids", "stats", *as_json)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: The id map is off: user ids are the ints from 0 to 1000 "
        "(BITMAPIST_MAX_USER_ID). Set BITMAPIST_ID_MAP = True to use UUIDs, "
        "other strings or any int.\n"
    )


@pytest.mark.parametrize(
    "args", [["users", "play"], ["users", "play", "--all"], ["ids", "stats"]]
)
def test_redis_unreachable_is_one_line_and_exit_1(
    make_app: AppFactory, args: list[str]
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0", id_map=True)
    result = run(app, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: Redis is unreachable: ")
    assert len(result.stderr.splitlines()) == 1


def map_keys(app: Flask) -> list[str]:
    """The id map's keys in the app's store (on a cluster, on every primary)."""
    client = app.extensions["bitmapist"].state(app).client
    if isinstance(client, redis.RedisCluster):
        keys = client.keys("trackist:ids*", target_nodes=client.PRIMARIES)
    else:
        keys = client.keys("trackist:ids*")
    return sorted(key.decode() for key in keys)


def memory_usage(app: Flask, key: str) -> int:
    client = app.extensions["bitmapist"].state(app).client
    used = client.memory_usage(key)
    assert isinstance(used, int)
    return used


def human(size: int) -> str:
    assert size < 1024 * 1024, "the test's maps hold kilobytes"
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"

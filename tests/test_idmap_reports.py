"""Reading mapped ids (BITMAPIST_ID_MAP): every report counts the same on
mapped ids as on the same data with plain ints (hypothesis), and the pages
of users, cohort cells and their errors answer exactly, on each of
conftest.STORES in both modes."""

from __future__ import annotations

import random
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import TEST_SHARD_BITS, AppFactory
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_bitmapist import get_cohort, mark_event, unmark_event
from flask_bitmapist.report.cohort import get_cohort_cell, get_cohort_users
from flask_bitmapist.report.events import (
    FieldError,
    UsersPage,
    chain_events,
    count_events,
    event_history,
    get_event_data,
    get_users,
)
from flask_bitmapist.store.idmap import SHARDED_BUCKETS
from flask_bitmapist.testing import ClusterProcess

UTC = timezone.utc
EVENTS = ("a", "b", "c")
NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


# --- the users of the differential test: n in 0..60, three kinds of ids


def user_uuid(n: int) -> uuid.UUID:
    """A UUID of user ``n``: uuid5 has hex letters, so that no spelling of it
    is 32 decimal digits (which the map takes as an int)."""
    return uuid.uuid5(NAMESPACE, str(n))


def canonical(n: int) -> str:
    """The canonical id of user ``n`` in map mode, spelled out by hand: a
    name, a UUID in lower-case hyphenated form, or a negative 21-digit int."""
    kind = n % 3
    if kind == 0:
        return f"user-{n}"
    if kind == 1:
        return str(user_uuid(n))
    return str(-(10**20 + n))


def spelling(n: int, which: int) -> Any:
    """One of the ways an app may give user ``n``'s id to mark_event."""
    kind = n % 3
    if kind == 0:
        return f"user-{n}"
    if kind == 1:
        found = user_uuid(n)
        return (
            found,
            str(found).upper(),
            found.hex,
            "{" + str(found) + "}",
        )[which]
    number = -(10**20 + n)
    return (number, str(number), f"-000{-number}", str(number))[which]


MAP_USERS = {canonical(n): n for n in range(61)}

marks_strategy = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        st.integers(0, 60),  # the user
        st.integers(0, 20),  # days before now
        st.sampled_from((1, 1, 1, 0)),  # set, mostly, or clear
        st.integers(0, 3),  # the spelling of a mapped id
    ),
    max_size=100,
)

# Each layout in int mode on the test db, against a mapped store on the db
# below it or on the cluster: its map's 64 buckets, one slot each.
PAIRS = ("bitmapist", "sharded", "cluster")


@pytest.fixture(params=PAIRS)
def pair(
    request: pytest.FixtureRequest, make_app: AppFactory, other_redis_url: str
) -> Callable[[], tuple[Flask, Flask]]:
    """Make an int-mode app and a map-mode app, both empty, with fresh id
    maps (their caches would remember the ids of the previous example)."""
    layout: dict[str, Any] = {}
    mapped: dict[str, Any] = {"redis_url": other_redis_url}
    cluster: ClusterProcess | None = None
    if request.param == "sharded":
        layout = {"key_layout": "sharded", "shard_bits": TEST_SHARD_BITS}
        mapped.update(layout)
    elif request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        mapped = {"redis_url": cluster.url, "shard_bits": TEST_SHARD_BITS}

    def make() -> tuple[Flask, Flask]:
        plain = make_app(name="plain", **layout)
        mapping = make_app(name="mapping", id_map=True, **mapped)
        store_of(plain).client.flushdb()
        if cluster is None:
            store_of(mapping).client.flushdb()
        else:
            cluster.flushall()
        return plain, mapping

    return make


def store_of(app: Flask) -> Any:
    return app.extensions["bitmapist"].state(app).store


Marks = list[tuple[str, int, int, int, int]]


def write(
    app: Flask,
    marks: Marks,
    now: datetime,
    user_id: Callable[[int, int], Any],
    *,
    mapped: bool,
) -> None:
    """Mark and unmark ``marks`` in ``app``. The map writes nothing to clear
    an id it never met (it has no bit), where int mode writes its keys: so
    in int mode those clears are left out, or the keys of an event only
    cleared would make it listed (on the dashboard) in one mode only."""
    met: set[int] = set()
    with app.app_context():
        for event, n, days, value, which in marks:
            if value:
                met.add(n)
            elif not mapped and n not in met:
                continue
            function = mark_event if value else unmark_event
            function(event, user_id(n, which), now=now - timedelta(days=days))


COHORT_BODY = {
    "primary_event": "a",
    "secondary_event": "b",
    "additional_events": [{"name": "c", "op": "or"}],
    "num_rows": 8,
    "num_cols": 8,
}


def answers(
    app: Flask,
    now: datetime,
    number: Callable[[Any], int],
    query_id: Callable[[int], Any],
) -> dict[str, Any]:
    """Every report on ``app``'s store, with users turned back into their
    numbers by ``number``; ``query_id`` spells user n for ``in``."""
    found: dict[str, Any] = {}
    with app.app_context():
        for group in ("days", "weeks", "months", "years"):
            for event in EVENTS:
                users = get_event_data(event, group, now=now)
                found[f"{event} {group}"] = (
                    len(users),
                    bool(users),
                    sorted(map(number, users)),
                    [n for n in range(61) if query_id(n) in users],
                )
            chained = chain_events(
                "a", [{"name": "b", "op": "and"}, {"name": "c", "op": "or"}], now, group
            )
            found[f"chain {group}"] = (len(chained), sorted(map(number, chained)))
            a, b, c = (get_event_data(name, group, now=now) for name in EVENTS)
            found[f"operators {group}"] = [
                sorted(map(number, a - b)), sorted(map(number, a ^ c)),
                len(a | b | c), sorted(map(number, (a & b) - c)),
            ]  # fmt: skip
        for replace in (False, True):
            for group, rows in (("days", 10), ("weeks", 4), ("months", 2)):
                for extra in (None, [{"name": "c", "op": "and"}]):
                    found[f"cohort {group} {replace} {extra}"] = get_cohort(
                        "a", "b", extra, time_group=group, num_rows=rows,
                        num_cols=rows, with_replacement=replace, now=now,
                    )  # fmt: skip
        found["counts"] = count_events(EVENTS, now=now)
        found["history"] = event_history("b", now=now, days=25, weeks=4, months=2)
    web = app.test_client()
    for replace in (False, True):
        body = {**COHORT_BODY, "with_replacement": replace}
        for fmt in ("json", "csv"):
            response = web.post(f"/bitmapist/cohort?format={fmt}", json=body)
            found[f"dashboard cohort {replace} {fmt}"] = (
                response.status_code,
                response.data,
            )
    for page in ("/bitmapist/event/a", "/bitmapist/event/c"):
        response = web.get(page)
        found[f"dashboard {page}"] = (response.status_code, response.data)
    return found


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(marks=marks_strategy)
def test_cohorts_chains_and_the_dashboard_on_mapped_ids_count_as_on_plain_ints(
    pair: Callable[[], tuple[Flask, Flask]], marks: Marks
) -> None:
    plain, mapping = pair()
    # The dashboard reads the current period: the marks are around now.
    now = datetime.now(UTC)
    write(plain, marks, now, lambda n, which: n, mapped=False)
    write(mapping, marks, now, spelling, mapped=True)
    expected = answers(plain, now, int, lambda n: n)
    assert answers(mapping, now, MAP_USERS.__getitem__, lambda n: spelling(n, 1)) == (
        expected
    )


# --- pages of users, and cohort cells, on each store in both modes

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
MODES = ("int", "map")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mode_app(make_store_app: AppFactory, mode: str) -> Flask:
    """An app on each of conftest.STORES, with ids as ints or mapped."""
    return make_store_app(id_map=mode == "map")


def page_user(mode: str, n: int) -> int | str:
    """User n of the paging tests, as reports give it back: in int mode
    ids spread over many shards of 8 (5 apart), in map mode a UUID."""
    return n * 5 if mode == "int" else str(user_uuid(n))


def dense_order(canonicals: list[str], buckets: int) -> list[str]:
    """``canonicals`` (in order of first appearance) in the order of their
    dense ids, as the id map's documentation hands them out: bucket b gives
    b, b + buckets, b + 2 * buckets, ..., the bucket being the CRC-32 of
    the id modulo the buckets."""
    count: dict[int, int] = {}
    dense: dict[str, int] = {}
    for name in canonicals:
        bucket = zlib.crc32(name.encode()) % buckets if buckets > 1 else 0
        dense[name] = count.get(bucket, 0) * buckets + bucket
        count[bucket] = count.get(bucket, 0) + 1
    return sorted(canonicals, key=dense.__getitem__)


def buckets_of(store_config: dict[str, Any]) -> int:
    return 1 if not store_config else SHARDED_BUCKETS


def mark_users(
    app: Flask, event: str, numbers: list[int], mode: str, when: datetime = NOW
) -> None:
    with app.app_context():
        for n in numbers:
            mark_event(event, page_user(mode, n), now=when)


def shuffled(count: int) -> list[int]:
    numbers = list(range(count))
    random.Random(14).shuffle(numbers)
    return numbers


def in_report_order(
    mode: str, numbers: list[int], store_config: dict[str, Any]
) -> list[int | str]:
    """The users of ``numbers`` (marked in that order) in the order every
    report gives them: ascending ints, or the map's dense order."""
    if mode == "int":
        return sorted(page_user(mode, n) for n in numbers)
    names = [str(page_user(mode, n)) for n in numbers]
    return list(dense_order(names, buckets_of(store_config)))


@pytest.fixture
def paged(mode_app: Flask, mode: str, store_config: dict[str, Any]) -> list[int | str]:
    """250 users who did "a" on NOW's day, marked in a shuffled order;
    returns them in report order."""
    numbers = shuffled(250)
    mark_users(mode_app, "a", numbers, mode)
    return in_report_order(mode, numbers, store_config)


def all_pages(read: Callable[[Any], UsersPage]) -> Iterator[UsersPage]:
    after = None
    while True:
        page = read(after)
        yield page
        after = page.next_after
        if after is None:
            return


def test_pages_of_100_give_every_user_in_order(
    mode_app: Flask, paged: list[int | str]
) -> None:
    with mode_app.app_context():
        users = get_event_data("a", "day", now=NOW)
        assert list(users) == paged
        expected = [
            UsersPage(paged[:100], paged[99]),
            UsersPage(paged[100:200], paged[199]),
            UsersPage(paged[200:], None),
        ]
        assert list(all_pages(lambda after: users.page(100, after))) == expected
        assert (
            list(all_pages(lambda after: get_users("a", "days", NOW, after=after)))
            == expected
        )
        # A last page that is exactly full ends the paging too.
        assert [
            (page.users, page.next_after)
            for page in all_pages(lambda after: users.page(125, after))
        ] == [(paged[:125], paged[124]), (paged[125:], None)]
        assert users.page(1000) == UsersPage(paged, None)
        assert users.page(1) == UsersPage(paged[:1], paged[0])
        # A week holds the day's users: the same pages.
        assert get_users("a", "weeks", NOW, limit=100, after=paged[99]) == expected[1]
        assert get_users("b", "days", NOW) == UsersPage([], None)


def test_after_takes_any_spelling_of_the_user(
    mode_app: Flask, mode: str, paged: list[int | str]
) -> None:
    last = paged[99]
    if mode == "int":
        spellings: list[Any] = [last, str(last), f"000{last}"]
    else:
        found = uuid.UUID(str(last))
        spellings = [
            found,
            str(found).upper(),
            found.hex,
            found.hex.upper(),
            "{" + str(found) + "}",
        ]
    with mode_app.app_context():
        users = get_event_data("a", "day", now=NOW)
        for after in spellings:
            assert users.page(100, after) == UsersPage(paged[100:200], paged[199])
            assert get_users("a", "day", NOW, after=after) == users.page(100, after)


BAD_LIMITS = [
    (0, "limit: must be from 1 to 1000, got 0."),
    (1001, "limit: must be from 1 to 1000, got 1001."),
    (True, "limit: must be an int, got True."),
    ("5", "limit: must be an int, got '5'."),
]


def reads_with(limit: Any, after: Any) -> list[Callable[[], UsersPage]]:
    """A page of users through each of the three functions that page."""
    return [
        lambda: get_event_data("a", "day", now=NOW).page(limit, after),
        lambda: get_users("a", "day", NOW, limit=limit, after=after),
        lambda: get_cohort_users(
            "a", "a", num_rows=2, num_cols=2, now=NOW, row=1, column=0,
            limit=limit, after=after,
        ),
    ]  # fmt: skip


@pytest.mark.parametrize(("limit", "message"), BAD_LIMITS)
def test_a_bad_limit_is_a_field_error(
    mode_app: Flask, mode: str, limit: Any, message: str
) -> None:
    mark_users(mode_app, "a", [1, 2], mode)
    with mode_app.app_context():
        for read in reads_with(limit, None):
            with pytest.raises(FieldError) as error:
                read()
            assert (str(error.value), error.value.field) == (message, "limit")


GHOST = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
BAD_AFTERS = {
    "int": [
        ("abc", "after: must be a user id of 0 or more, got 'abc'."),
        (-1, "after: must be a user id of 0 or more, got -1."),
        (True, "after: must be a user id of 0 or more, got True."),
        ("١٢", "after: must be a user id of 0 or more, got '١٢'."),
        (GHOST, f"after: must be a user id of 0 or more, got {GHOST!r}."),
    ],
    "map": [
        ("ghost", "after: 'ghost' is not a user of the id map."),
        (GHOST, f"after: {GHOST!r} is not a user of the id map."),
        (str(GHOST).upper(), f"after: {str(GHOST).upper()!r} is not a user of the id map."),
        (7, "after: 7 is not a user of the id map."),
        ("", "after: the user id is an empty string."),
        ("a\x00b", "after: the user id holds a control character."),
        ("x" * 257, "after: the user id has over 256 characters."),
        (True, "after: the user id must be an int, a uuid.UUID or a str."),
        (1.5, "after: the user id must be an int, a uuid.UUID or a str."),
        (10**300, "after: the user id has over 256 characters in decimal."),
    ],
}  # fmt: skip


def test_an_unknown_or_bad_after_is_a_field_error(mode_app: Flask, mode: str) -> None:
    mark_users(mode_app, "a", [1, 2], mode)
    with mode_app.app_context():
        for after, message in BAD_AFTERS[mode]:
            for read in reads_with(100, after):
                with pytest.raises(FieldError) as error:
                    read()
                assert (str(error.value), error.value.field) == (message, "after")


def test_an_int_after_past_every_id_gives_the_last_page(
    make_store_app: AppFactory,
) -> None:
    """In int mode any id of 0 or more is a position, however large: a
    decimal string of 5,000 digits too, past the digits int() converts."""
    app = make_store_app()
    mark_users(app, "a", [1, 2], "int")
    with app.app_context():
        for after in (11, 2**24, 2**40, "4294967296", "9" * 5000):
            for read in reads_with(100, after):
                assert read() == UsersPage([], None)


def test_after_a_user_of_another_event_starts_after_it(
    mode_app: Flask, mode: str, store_config: dict[str, Any]
) -> None:
    """``after`` is a position: a user who is not in the set (but whom the
    map knows) pages from the next user on."""
    with mode_app.app_context():
        for n in range(40):
            mark_event("b" if n % 2 else "a", page_user(mode, n), now=NOW)
    order = in_report_order(mode, list(range(40)), store_config)
    evens = {page_user(mode, n) for n in range(0, 40, 2)}
    odd = page_user(mode, 21)
    expected = [user for user in order[order.index(odd) + 1 :] if user in evens]
    with mode_app.app_context():
        assert get_users("a", "day", NOW, limit=1000, after=odd) == UsersPage(
            expected, None
        )


def test_cohort_users_page_through_a_cell_of_250(
    mode_app: Flask, mode: str, store_config: dict[str, Any]
) -> None:
    numbers = shuffled(250)
    mark_users(mode_app, "signup", numbers, mode, NOW - timedelta(days=1))
    mark_users(mode_app, "play", numbers[::-1], mode)
    order = in_report_order(mode, numbers, store_config)
    with mode_app.app_context():

        def read(after: Any) -> UsersPage:
            return get_cohort_users(
                "signup", "play", num_rows=3, num_cols=3, now=NOW, row=1, column=1,
                limit=100, after=after,
            )  # fmt: skip

        assert list(all_pages(read)) == [
            UsersPage(order[:100], order[99]),
            UsersPage(order[100:200], order[199]),
            UsersPage(order[200:], None),
        ]
        cohort, _, totals = get_cohort(
            "signup", "play", num_rows=3, num_cols=3, now=NOW
        )
        assert (cohort, totals) == (
            [[None] * 3, [0, 250, None], [None] * 3],
            [0, 250, 0],
        )


# --- cohort cells against a plain-Python reference

ROWS, COLS = 6, 4


def cohort_marks() -> list[tuple[str, int, int]]:
    """(event, user, days before NOW): 40 users, the primary event p, the
    secondary s, and x, which is ORed with s."""
    rng = random.Random(2026)
    return [
        (rng.choice("psx"), rng.randrange(40), rng.randrange(ROWS + 1))
        for _ in range(260)
    ]


def reference_cell(
    marks: list[tuple[str, int, int]], row: int, column: int, replace: bool
) -> set[int]:
    """The users of cell [row][column] by the definition of get_cohort."""

    def did(events: str, days: int) -> set[int]:
        return {n for event, n, ago in marks if event in events and ago == days}

    primary_days = ROWS - 1 - row
    cell = did("p", primary_days) & did("sx", primary_days - column)
    if not replace:
        for earlier in range(column):
            cell -= did("sx", primary_days - earlier)
    return cell


@pytest.mark.parametrize("replace", [False, True])
def test_each_cohort_cell_holds_the_users_it_counts(
    mode_app: Flask, mode: str, replace: bool
) -> None:
    marks = cohort_marks()
    with mode_app.app_context():
        for event, n, days in marks:
            mark_event(
                f"cohort:{event}", page_user(mode, n), now=NOW - timedelta(days=days)
            )
        number = {page_user(mode, n): n for n in range(40)}
        arguments: dict[str, Any] = {
            "primary_event_name": "cohort:p",
            "secondary_event_name": "cohort:s",
            "additional_events": [{"name": "cohort:x", "op": "or"}],
            "num_rows": ROWS,
            "num_cols": COLS,
            "with_replacement": replace,
            "now": NOW,
        }
        cohort, _, totals = get_cohort(**arguments)
        cells = 0
        for row in range(ROWS):
            for column in range(min(COLS, ROWS - row)):
                expected = reference_cell(marks, row, column, replace)
                cell = get_cohort_cell(**arguments, row=row, column=column)
                assert {number[user] for user in cell} == expected
                assert len(cell) == len(expected)
                assert cohort[row][column] == (len(expected) if totals[row] else None)
                page = get_cohort_users(**arguments, row=row, column=column, limit=1000)
                assert page == UsersPage(list(cell), None)
                cells += bool(expected)
        # The data gives most cells users: the comparison is not of empties.
        assert cells >= 12


CELL_ERRORS = [
    ({"row": ROWS, "column": 0}, f"row: must be from 0 to {ROWS - 1}, got {ROWS}."),
    ({"row": -1, "column": 0}, f"row: must be from 0 to {ROWS - 1}, got -1."),
    ({"row": True, "column": 0}, "row: must be an int, got True."),
    ({"row": "1", "column": 0}, "row: must be an int, got '1'."),
    ({"row": 0, "column": COLS}, f"column: must be from 0 to {COLS - 1}, got {COLS}."),
    ({"row": 0, "column": -1}, f"column: must be from 0 to {COLS - 1}, got -1."),
    ({"row": 0, "column": 1.0}, "column: must be an int, got 1.0."),
    ({"row": ROWS - 1, "column": 1},
     f"column: must be from 0 to 0 for row {ROWS - 1}, whose later periods are in the future."),
    ({"row": ROWS - 3, "column": 3},
     f"column: must be from 0 to 2 for row {ROWS - 3}, whose later periods are in the future."),
]  # fmt: skip


@pytest.mark.parametrize(("cell", "message"), CELL_ERRORS)
def test_a_cell_out_of_range_or_in_the_future_is_a_field_error(
    mode_app: Flask, mode: str, cell: dict[str, Any], message: str
) -> None:
    mark_users(mode_app, "p", [1, 2], mode)
    field = message.split(":")[0]
    with mode_app.app_context():
        for read in (get_cohort_cell, get_cohort_users):
            with pytest.raises(FieldError) as error:
                read("p", "p", num_rows=ROWS, num_cols=COLS, now=NOW, **cell)
            assert (str(error.value), error.value.field) == (message, field)

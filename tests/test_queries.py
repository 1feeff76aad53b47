"""get_event_data, chain_events and get_cohort on hand-built data in a real Redis."""

from __future__ import annotations

import copy
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_bitmapist import (
    EventSet,
    chain_events,
    count_events,
    get_cohort,
    get_event_data,
    mark_event,
)
from flask_bitmapist.report import cohort as cohort_module
from flask_bitmapist.report.events import PeriodCounts
from flask_bitmapist.store.layout import Period
from flask_bitmapist.store.program import EventKey, Program

UTC = timezone.utc
NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)


def day(n: int) -> datetime:
    return datetime(2026, 3, n, 9, tzinfo=UTC)


def mark_all(event: str, when: datetime, users: list[int]) -> None:
    for user in users:
        mark_event(event, user, now=when)


@pytest.fixture
def days_data(store_app: Flask) -> Flask:
    """Marks of a few days, on each of the stores of conftest.STORES."""
    return mark_days(store_app)


@pytest.fixture
def bitmapist_days_data(app: Flask) -> Flask:
    """The same marks, in bitmapist's layout on one node."""
    return mark_days(app)


def mark_days(app: Flask) -> Flask:
    with app.app_context():
        mark_all("signup", day(12), [1, 2, 3, 4])
        mark_all("signup", day(13), [5, 6])
        mark_all("signup", day(14), [7])
        mark_all("active", day(12), [1, 2])
        mark_all("active", day(13), [1, 3, 5])
        mark_all("active", day(14), [1, 2, 5, 7])
        mark_all("paid", day(13), [3])
        mark_all("paid", day(14), [1])
        mark_all("invited", day(12), [4])
    return app


def no_temporary_keys(app: Flask) -> bool:
    """Whether the app's store holds no query's temporary key (on a cluster,
    on no primary)."""
    client = app.extensions["bitmapist"].state(app).client
    if isinstance(client, redis.RedisCluster):
        return client.keys("trackist*bitop_*", target_nodes=client.PRIMARIES) == []
    return client.keys("trackist*bitop_*") == []


def test_cohort_by_days_without_replacement(days_data: Flask) -> None:
    with days_data.app_context():
        cohort, dates, totals = get_cohort(
            "signup", "active", num_rows=4, num_cols=3, now=NOW
        )
    assert cohort == [[None, None, None], [2, 1, 0], [1, 0, None], [1, None, None]]
    assert totals == [0, 4, 2, 1]
    assert dates == [datetime(2026, 3, n, tzinfo=UTC) for n in (11, 12, 13, 14)]
    assert no_temporary_keys(days_data)


def test_cohort_by_days_with_replacement(days_data: Flask) -> None:
    with days_data.app_context():
        cohort, _, totals = get_cohort(
            "signup", "active", num_rows=3, num_cols=3, now=NOW, with_replacement=True
        )
    assert cohort == [[2, 2, 2], [1, 1, None], [1, None, None]]
    assert totals == [4, 2, 1]


def test_cohort_with_an_and_chain(days_data: Flask) -> None:
    with days_data.app_context():
        cohort, _, _ = get_cohort(
            "signup",
            "active",
            [{"name": "paid", "op": "and"}],
            num_rows=3,
            num_cols=3,
            now=NOW,
        )
    assert cohort == [[0, 1, 1], [0, 0, None], [0, None, None]]


def test_cohort_with_an_or_chain(days_data: Flask) -> None:
    events = [{"name": "invited", "op": "or"}]
    with days_data.app_context():
        cohort, _, _ = get_cohort(
            "signup", "active", events, num_rows=3, num_cols=3, now=NOW
        )
    assert cohort == [[3, 1, 0], [1, 0, None], [1, None, None]]
    assert events == [{"name": "invited", "op": "or"}]


def test_cohort_by_weeks_across_the_new_year(store_app: Flask) -> None:
    app = store_app
    now = datetime(2026, 1, 2, tzinfo=UTC)  # ISO 2026-W01 starts on Monday 2025-12-29
    with app.app_context():
        mark_all("signup", datetime(2025, 12, 15, tzinfo=UTC), [1, 2])  # W51
        mark_all("signup", datetime(2025, 12, 24, tzinfo=UTC), [3])  # W52
        mark_all("active", datetime(2025, 12, 21, tzinfo=UTC), [1])  # W51
        mark_all("active", datetime(2025, 12, 22, tzinfo=UTC), [1, 2, 3])  # W52
        mark_all("active", datetime(2025, 12, 31, tzinfo=UTC), [2, 3])  # 2026-W01
        cohort, dates, totals = get_cohort(
            "signup", "active", time_group="week", num_rows=3, num_cols=3, now=now
        )
    assert totals == [2, 1, 0]
    assert cohort == [[1, 1, 0], [1, 0, None], [None, None, None]]
    assert dates == [
        datetime(2025, 12, 15, tzinfo=UTC),
        datetime(2025, 12, 22, tzinfo=UTC),
        datetime(2025, 12, 29, tzinfo=UTC),
    ]
    assert no_temporary_keys(app)


def test_cohort_by_months(store_app: Flask) -> None:
    app = store_app
    now = datetime(2026, 1, 31, tzinfo=UTC)
    with app.app_context():
        mark_all("signup", datetime(2025, 11, 30, tzinfo=UTC), [1, 2, 3])
        mark_all("active", datetime(2025, 12, 1, tzinfo=UTC), [1, 2])
        mark_all("active", datetime(2026, 1, 1, tzinfo=UTC), [1, 2, 3])
        cohort, dates, totals = get_cohort(
            "signup", "active", time_group="months", num_rows=3, num_cols=4, now=now
        )
        replaced, _, _ = get_cohort(
            "signup", "active", time_group="month", num_rows=3, num_cols=4, now=now,
            with_replacement=True,
        )  # fmt: skip
    assert totals == [3, 0, 0]
    assert cohort == [[0, 2, 1, None], [None] * 4, [None] * 4]
    assert replaced[0] == [0, 2, 3, None]
    assert dates == [
        datetime(2025, 11, 1, tzinfo=UTC),
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    ]


def test_cohort_by_years_unions_the_months(store_app: Flask) -> None:
    app = store_app
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with app.app_context():
        mark_all("signup", datetime(2025, 2, 1, tzinfo=UTC), [1, 2])
        mark_all("signup", datetime(2025, 11, 1, tzinfo=UTC), [3])
        mark_all("signup", datetime(2026, 1, 1, tzinfo=UTC), [4])
        mark_all("active", datetime(2025, 12, 1, tzinfo=UTC), [2])
        mark_all("active", datetime(2026, 5, 1, tzinfo=UTC), [1, 2, 4])
        cohort, dates, totals = get_cohort(
            "signup", "active", time_group="years", num_rows=2, num_cols=2, now=now
        )
    assert totals == [3, 1]
    assert cohort == [[1, 1], [1, None]]
    assert dates == [datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]
    assert no_temporary_keys(app)


def test_get_event_data_for_each_time_group(days_data: Flask) -> None:
    with days_data.app_context():
        daily = get_event_data("signup", "days", now=day(12))
        weekly = get_event_data("signup", "week", now=day(12))
        monthly = get_event_data("signup", "months", now=day(12))
        yearly = get_event_data("signup", "years", now=day(12))
        assert isinstance(daily, EventSet) and len(daily) == 4
        assert isinstance(weekly, EventSet) and len(weekly) == 7
        assert isinstance(monthly, EventSet) and list(monthly) == [1, 2, 3, 4, 5, 6, 7]
        assert isinstance(yearly, EventSet) and len(yearly) == 7
        assert [5 in weekly, 8 in weekly, 7 in daily, 7 in yearly] == [
            True,
            False,
            False,
            True,
        ]
        assert [bool(daily), bool(get_event_data("never", now=day(12)))] == [
            True,
            False,
        ]
    assert [result.period for result in (daily, weekly, monthly, yearly)] == [
        Period("day", datetime(2026, 3, 12, tzinfo=UTC)),
        Period("week", datetime(2026, 3, 9, tzinfo=UTC)),
        Period("month", datetime(2026, 3, 1, tzinfo=UTC)),
        Period("year", datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    assert {result.event_name for result in (daily, weekly, monthly, yearly)} == {
        "signup"
    }
    assert no_temporary_keys(days_data)


def test_event_sets_name_their_keys_in_bitmapists_layout(
    app: Flask, client: redis.Redis
) -> None:
    with app.app_context():
        mark_all("signup", day(12), [1, 2])
        daily = get_event_data("signup", "days", now=day(12))
        weekly = get_event_data("signup", "week", now=day(12))
        monthly = get_event_data("signup", "months", now=day(12))
        yearly = get_event_data("signup", "years", now=day(12))
    # One stored period reads the event's own key; a year is its months' union,
    # stored in a temporary key on demand.
    assert daily.redis_key == "trackist_signup_2026-3-12"
    assert weekly.redis_key == "trackist_signup_W2026-11"
    assert monthly.redis_key == "trackist_signup_2026-3"
    assert 0 < client.ttl(yearly.redis_key) <= 300
    assert client.bitcount(yearly.redis_key) == 2
    yearly.delete()
    assert no_temporary_keys(app)


def test_a_sharded_set_has_no_single_key(store_app: Flask) -> None:
    state = store_app.extensions["bitmapist"].state(store_app)
    with store_app.app_context():
        daily = get_event_data("signup", "days", now=day(12))
        if state.settings.key_layout == "bitmapist":
            assert daily.redis_key == "trackist_signup_2026-3-12"
            return
        with pytest.raises(ValueError) as error:
            daily.redis_key  # noqa: B018
    assert str(error.value) == (
        "EventSet redis_key needs bitmapist's key layout; this set is in "
        "ShardedLayout(shard_bits=3), with a key per shard."
    )


def test_get_event_data_defaults_to_now(app: Flask) -> None:
    with app.app_context():
        mark_event("today", 3)
        assert list(get_event_data("today")) == [3]


def test_outside_an_app_queries_read_bitmapist_default(
    default_system: redis.Redis,
) -> None:
    mark_event("signup", 1, now=day(12))
    mark_event("active", 1, now=day(13))
    assert len(get_event_data("signup", now=day(12))) == 1
    cohort, _, _ = get_cohort("signup", "active", num_rows=2, num_cols=2, now=day(13))
    assert cohort == [[0, 1], [None, None]]


SETS = {
    "A": [1, 2, 3, 4, 5, 6],
    "B": [1, 2, 3, 7],
    "C": [1, 8],
    "D": [2, 9],
    "E": [3, 4, 10],
}


@pytest.fixture
def chain_data(store_app: Flask) -> Flask:
    app = store_app
    with app.app_context():
        for event, users in SETS.items():
            mark_all(event, day(14), users)
    return app


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ([], {1, 2, 3, 4, 5, 6}),
        ([("B", "and"), ("C", "and"), ("D", "or")], {1, 2}),  # A & B & (C | D)
        ([("B", "and"), ("C", "or"), ("E", "and")], {3}),  # A & (B | C) & E
        ([("C", "or"), ("B", "and")], {1, 2, 3}),  # (A | C) & B
        ([("B", "or"), ("C", "or")], {1, 2, 3, 4, 5, 6, 7, 8}),
        ([("E", "and"), ("D", "or"), ("C", "or")], {1, 2, 3, 4}),  # A & (E | D | C)
    ],
)
def test_or_binds_to_its_direct_predecessor(
    chain_data: Flask,
    chain: list[tuple[str, str]],
    expected: set[int],
) -> None:
    events = [{"name": name, "op": op} for name, op in chain]
    original = copy.deepcopy(events)
    with chain_data.app_context():
        result = chain_events("A", events, day(14), "days")
        assert set(result) == expected
        assert len(result) == len(expected)
    assert events == original
    assert no_temporary_keys(chain_data)


def test_a_chain_is_stored_for_bitmapist_on_demand(
    app: Flask, client: redis.Redis
) -> None:
    with app.app_context():
        for event, users in SETS.items():
            mark_all(event, day(14), users)
        chained = chain_events("A", [{"name": "B", "op": "and"}], day(14), "days")
        alone = chain_events("A", [], day(14), "days")
        assert alone.redis_key == "trackist_A_2026-3-14"
        assert 0 < client.ttl(chained.redis_key) <= 300
        assert client.bitcount(chained.redis_key) == 3
        chained.delete()
        alone.delete()
        assert client.exists("trackist_A_2026-3-14") == 1
    assert no_temporary_keys(app)


def original_chain(
    sets: dict[str, set[int]], base: str, chain: list[dict[str, str]]
) -> set[int]:
    """The original flask-bitmapist chaining, on Python sets: ORs fold into their
    predecessor from the back, then the rest are applied left to right."""
    chain = copy.deepcopy(chain)
    operands = [set(sets[item["name"]]) for item in chain]
    for index in reversed([i for i, item in enumerate(chain) if item["op"] == "or"]):
        if index > 0:
            operands[index - 1] |= operands.pop(index)
            chain.pop(index)
    result = set(sets[base])
    for item, operand in zip(chain, operands, strict=True):
        result = result | operand if item["op"] == "or" else result & operand
    return result


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(list(SETS)), "op": st.sampled_from(["and", "or"])}
        ),
        max_size=4,
    )
)
def test_chains_match_the_original_algorithm(
    chain_data: Flask, chain: list[dict[str, str]]
) -> None:
    sets = {name: set(users) for name, users in SETS.items()}
    with chain_data.app_context():
        result = chain_events("A", chain, day(14), "days")
        assert set(result) == original_chain(sets, "A", chain)
        result.delete()


def test_chain_over_a_year(store_app: Flask) -> None:
    app = store_app
    with app.app_context():
        mark_all("A", datetime(2025, 1, 5, tzinfo=UTC), [1, 2])
        mark_all("A", datetime(2025, 12, 5, tzinfo=UTC), [3])
        mark_all("B", datetime(2025, 7, 5, tzinfo=UTC), [2, 3])
        assert set(chain_events("A", [], datetime(2025, 3, 1), "years")) == {1, 2, 3}
        assert set(
            chain_events(
                "A", [{"name": "B", "op": "and"}], datetime(2025, 3, 1), "year"
            )
        ) == {2, 3}


def test_queries_cost_one_round_trip(
    bitmapist_days_data: Flask, round_trips: Any
) -> None:
    days_data = bitmapist_days_data
    with days_data.app_context():
        days_data.extensions["bitmapist"].redis.ping()
        for rows, cols, group in [(3, 3, "days"), (30, 30, "days"), (12, 12, "years")]:
            round_trips.count = 0
            get_cohort(
                "signup", "active", [{"name": "paid", "op": "or"}],
                time_group=group, num_rows=rows, num_cols=cols, now=NOW,
            )  # fmt: skip
            assert round_trips.count == 1, (rows, cols, group)
        round_trips.count = 0
        chained = chain_events("signup", [{"name": "paid", "op": "and"}], NOW, "days")
        assert round_trips.count == 0  # nothing is read until it is used
        assert len(chained) == 0
        assert round_trips.count == 1
        assert set(chain_events("signup", [], NOW, "years")) == set(range(1, 8))
        assert round_trips.count == 2


def test_concurrent_cohorts_from_four_threads(days_data: Flask) -> None:
    queries: list[dict[str, Any]] = [
        {"time_group": "days", "with_replacement": False},
        {"time_group": "days", "with_replacement": True},
        {"time_group": "weeks", "additional_events": [{"name": "paid", "op": "or"}]},
        {"time_group": "days", "additional_events": [{"name": "paid", "op": "and"}]},
    ]
    with days_data.app_context():
        expected = [
            get_cohort("signup", "active", num_rows=5, num_cols=5, now=NOW, **query)
            for query in queries
        ]
    failures: list[str] = []

    def run(index: int) -> None:
        with days_data.app_context():
            for _ in range(25):
                got = get_cohort(
                    "signup",
                    "active",
                    num_rows=5,
                    num_cols=5,
                    now=NOW,
                    **queries[index],
                )
                if got != expected[index]:
                    failures.append(f"query {index}: {got} != {expected[index]}")

    threads = [threading.Thread(target=run, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len({str(result) for result in expected}) == 4


def test_a_failing_query_leaves_no_temporary_key(
    bitmapist_days_data: Flask, client: redis.Redis
) -> None:
    days_data = bitmapist_days_data
    client.hset("trackist_paid_2026-3-12", "not", "a bitmap")
    with days_data.app_context(), pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        get_cohort(
            "signup",
            "active",
            [{"name": "paid", "op": "or"}],
            num_rows=3,
            num_cols=3,
            now=NOW,
        )
    assert no_temporary_keys(days_data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_group": "hours"}, "time_group: must be one of days, weeks, months, years (or the singular), got 'hours'."),
        ({"time_group": None}, "time_group: must be one of days, weeks, months, years (or the singular), got None."),
        ({"num_rows": 0}, "num_rows: must be from 1 to 1000, got 0."),
        ({"num_cols": 1001}, "num_cols: must be from 1 to 1000, got 1001."),
        ({"num_rows": True}, "num_rows: must be an int from 1 to 1000, got True."),
        ({"num_cols": "5"}, "num_cols: must be an int from 1 to 1000, got '5'."),
        ({"additional_events": "paid"}, "additional_events: must be a list of {name, op} dicts, got 'paid'."),
        ({"additional_events": [{"name": "paid"}]}, "additional_events[0]: must be a dict with exactly the keys name and op, got {'name': 'paid'}."),
        ({"additional_events": [{"name": "paid", "op": "and", "x": 1}]}, "additional_events[0]: must be a dict with exactly the keys name and op"),
        ({"additional_events": [{"name": "paid", "op": "xor"}]}, "additional_events[0].op: must be 'and' or 'or', got 'xor'."),
        ({"additional_events": [{"name": "", "op": "and"}]}, "additional_events[0].name: must not be empty."),
        ({"primary_event_name": "a b"}, "primary_event_name: must not contain whitespace"),
        ({"secondary_event_name": 5}, "secondary_event_name: must be a str, got 5."),
        ({"now": 1700000000}, "now must be a datetime, got 1700000000."),
    ],
)  # fmt: skip
def test_bad_cohort_arguments(app: Flask, kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "primary_event_name": "signup",
        "secondary_event_name": "active",
    }
    arguments.update(kwargs)
    with app.app_context(), pytest.raises(ValueError) as error:
        get_cohort(**arguments)
    assert str(error.value).startswith(message)


def test_bad_chain_and_event_data_arguments(app: Flask) -> None:
    with app.app_context():
        with pytest.raises(
            ValueError, match=r"events_to_chain\[0\]\.op: must be 'and' or 'or'"
        ):
            chain_events("a", [{"name": "b", "op": "nand"}], NOW, "days")
        with pytest.raises(ValueError, match="time_group: must be one of"):
            chain_events("a", [], NOW, "fortnights")
        with pytest.raises(ValueError, match="time_group: must be one of"):
            get_event_data("a", "hour")
        with pytest.raises(ValueError, match="Event name must be a str"):
            get_event_data(None)  # type: ignore[arg-type]


def test_a_sharded_query_costs_a_round_trip_per_node_and_one_for_the_shards(
    days_data: Flask, round_trips: Any
) -> None:
    state = days_data.extensions["bitmapist"].state(days_data)
    client = state.client
    with days_data.app_context():
        mark_all("signup", day(14), [200, 300, 400])  # more shards, more slots
        shards = state.store.shards()
        if isinstance(client, redis.RedisCluster):
            nodes = {client.get_node_from_key(f"{{{shard}}}").name for shard in shards}
            expected = 1 + len(nodes)  # the registry, then each node once
            assert len(nodes) == 3
        elif state.settings.key_layout == "sharded":
            expected = 2  # the registry, then one pipeline
        else:
            expected = 1
        for query in (
            lambda: get_cohort("signup", "active", num_rows=30, num_cols=30, now=NOW),
            lambda: len(get_event_data("signup", "months", now=NOW)),
            lambda: list(get_event_data("signup", "years", now=NOW).get_uuids()),
        ):
            round_trips.count = 0
            query()
            assert round_trips.count == expected


@pytest.mark.parametrize("cells", [1, 7, 500])
def test_a_cohort_cut_into_programs_counts_the_same(
    days_data: Flask, monkeypatch: pytest.MonkeyPatch, cells: int
) -> None:
    queries: list[dict[str, Any]] = [
        {"with_replacement": False},
        {"with_replacement": True},
        {"additional_events": [{"name": "paid", "op": "or"}]},
    ]
    with days_data.app_context():
        whole = [
            get_cohort("signup", "active", num_rows=6, num_cols=4, now=NOW, **query)
            for query in queries
        ]
        monkeypatch.setattr(cohort_module, "_CELLS_PER_PROGRAM", cells)
        cut = [
            get_cohort("signup", "active", num_rows=6, num_cols=4, now=NOW, **query)
            for query in queries
        ]
    assert cut == whole
    assert whole[0][0][-3:] == [
        [2, 1, 0, None],
        [1, 0, None, None],
        [1, None, None, None],
    ]
    assert no_temporary_keys(days_data)


def test_the_overview_counts_thousands_of_events_at_once(store_app: Flask) -> None:
    names = [f"e{number}" for number in range(2_001)]
    with store_app.app_context():
        mark_event("e2000", 5, now=NOW)
        counts = count_events(names, now=NOW)
    assert len(counts) == 2_001
    assert counts["e2000"] == PeriodCounts(1, 1, 1, 1)
    assert counts["e0"] == PeriodCounts(0, 0, 0, 0)


def test_a_program_deletes_thousands_of_scratch_keys(store_app: Flask) -> None:
    # One DEL of a script takes about 8,000 keys at most (Lua's unpack).
    store = store_app.extensions["bitmapist"].state(store_app).store
    with store_app.app_context():
        mark_event("a", 5, now=NOW)
    program = Program()
    day = Period.of("day", NOW)
    copies = [program.bitop("OR", [EventKey("a", day)]) for _ in range(8_001)]
    program.count(copies[-1])
    results = store.run([(program, shard) for shard in store.shards()], 60)
    assert sum(result[0] for result in results) == 1
    assert no_temporary_keys(store_app)

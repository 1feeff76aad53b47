"""EventSet: counts, membership, iteration and every operator against Python
sets on random data, each read in one round trip, temporary keys cleaned up."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_bitmapist import EventSet, chain_events, get_event_data
from flask_bitmapist.store.layout import BITMAPIST, Period

NOW = datetime(2026, 3, 14, 15, tzinfo=timezone.utc)
DAY = Period.of("day", NOW)
id_sets = st.sets(st.integers(0, 3000), max_size=60)


def store(client: redis.Redis, event: str, ids: set[int], period: Period = DAY) -> None:
    key = BITMAPIST.key(event, period)
    client.delete(key)
    pipeline = client.pipeline(transaction=False)
    for user_id in ids:
        pipeline.setbit(key, user_id, 1)
    pipeline.execute()


def temporary_keys(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match="trackist_bitop_*"))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(id_sets, id_sets, id_sets)
def test_operators_match_python_sets(
    client: redis.Redis, a_ids: set[int], b_ids: set[int], c_ids: set[int]
) -> None:
    for event, ids in (("a", a_ids), ("b", b_ids), ("c", c_ids)):
        store(client, event, ids)
    a, b, c = (EventSet.of_period(name, DAY, client) for name in "abc")
    cases = {
        "a & b": (a & b, a_ids & b_ids),
        "a | b": (a | b, a_ids | b_ids),
        "a ^ b": (a ^ b, a_ids ^ b_ids),
        "a - b": (a - b, a_ids - b_ids),
        "(a | b) & c": ((a | b) & c, (a_ids | b_ids) & c_ids),
        "a & b & c": (a & b & c, a_ids & b_ids & c_ids),
        "a - (b | c)": (a - (b | c), a_ids - (b_ids | c_ids)),
        "(a ^ b) - c": ((a ^ b) - c, (a_ids ^ b_ids) - c_ids),
    }
    for text, (result, expected) in cases.items():
        assert list(result) == sorted(expected), text
        assert len(result) == len(expected), text
        assert bool(result) == bool(expected), text
        for user_id in [*list(expected)[:3], 3001, 0]:
            assert (user_id in result) == (user_id in expected), (text, user_id)
    assert temporary_keys(client) == []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(id_sets.filter(bool))
def test_not_is_bitmapists_not_up_to_the_last_byte(
    client: redis.Redis, ids: set[int]
) -> None:
    store(client, "a", ids)
    size = (max(ids) // 8 + 1) * 8
    inverse = ~EventSet.of_period("a", DAY, client)
    assert list(inverse) == [user for user in range(size) if user not in ids]
    assert temporary_keys(client) == []


def test_each_read_is_one_round_trip(client: redis.Redis, round_trips: Any) -> None:
    store(client, "a", {1, 2, 3})
    store(client, "b", {2, 3, 4})
    store(client, "c", {3, 9})
    a, b, c = (EventSet.of_period(name, DAY, client) for name in "abc")
    combined = (a | b) - c
    round_trips.count = 0
    assert len(combined) == 3
    assert round_trips.count == 1
    assert [user for user in combined] == [1, 2, 4]
    assert 4 in combined and 3 not in combined
    assert combined
    assert round_trips.count == 5
    # list() asks len() first, to size the list: one round trip more.
    assert list(combined) == [1, 2, 4]
    assert round_trips.count == 7
    assert temporary_keys(client) == []


def test_a_year_is_the_union_of_its_months(client: redis.Redis) -> None:
    store(
        client, "y", {1}, Period.of("month", datetime(2026, 1, 5, tzinfo=timezone.utc))
    )
    store(
        client,
        "y",
        {2, 1},
        Period.of("month", datetime(2026, 12, 5, tzinfo=timezone.utc)),
    )
    store(
        client, "y", {3}, Period.of("month", datetime(2025, 12, 5, tzinfo=timezone.utc))
    )
    year = EventSet.of_period("y", Period.of("year", NOW), client)
    assert list(year) == [1, 2]
    assert year.event_name == "y" and year.period == Period.of("year", NOW)


def test_redis_key_stores_a_combination_once_and_delete_frees_it(
    client: redis.Redis,
) -> None:
    store(client, "a", {1, 2})
    store(client, "b", {2})
    a = EventSet.of_period("a", DAY, client)
    assert a.redis_key == "trackist_a_2026-3-14"
    a.delete()  # an event's own key is never deleted
    assert client.exists("trackist_a_2026-3-14") == 1
    both = a & EventSet.of_period("b", DAY, client)
    key = both.redis_key
    assert key.startswith("trackist_bitop_fb_") and both.redis_key == key
    assert 0 < client.ttl(key) <= 300
    assert client.getbit(key, 2) == 1 and client.bitcount(key) == 1
    both.delete()
    assert client.exists(key) == 0


def test_bitmapists_method_names(client: redis.Redis) -> None:
    store(client, "a", {5, 7})
    a = EventSet.of_period("a", DAY, client)
    assert a.get_count() == 2
    assert a.has_events_marked()
    assert list(a.get_uuids()) == [5, 7]
    assert not EventSet.of_period("never", DAY, client).has_events_marked()


def test_membership_of_what_is_not_an_id_is_false(client: redis.Redis) -> None:
    store(client, "a", {0, 1})
    a = EventSet.of_period("a", DAY, client)
    for value in (-1, "1", 1.0, None, True):
        assert value not in a


def test_combining_refuses_other_clients_and_other_types(
    client: redis.Redis, redis_url: str
) -> None:
    a = EventSet.of_period("a", DAY, client)
    other = redis.Redis.from_url(redis_url)
    with pytest.raises(
        ValueError, match="Sets of two Redis clients or key layouts cannot be combined"
    ):
        a & EventSet.of_period("a", DAY, other)
    with pytest.raises(
        TypeError, match="combines with another EventSet or an object with a redis_key"
    ):
        a | 5
    other.close()


def test_get_event_data_and_chain_events_return_event_sets(
    make_app: Any, client: redis.Redis
) -> None:
    app: Flask = make_app()
    store(client, "a", {1, 2, 3})
    store(client, "b", {2})
    store(client, "c", {3})
    with app.app_context():
        day = get_event_data("a", "day", now=NOW)
        chained = chain_events(
            "a", [{"name": "b", "op": "and"}, {"name": "c", "op": "or"}], NOW, "days"
        )
        assert isinstance(day, EventSet) and day.period == DAY
        assert isinstance(chained, EventSet) and list(chained) == [2, 3]
        assert repr(chained) == (
            "<EventSet (a 2026-03-14 & (b 2026-03-14 | c 2026-03-14))>"
        )

"""How the import reads and orders what it writes: orjson parses each line as
:mod:`json` would, or hands it to :mod:`json`; marks are written grouped by
event and day, which leaves Redis as writing them one by one does."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_bitmapist.store.writer import Mark, write_marks
from flask_bitmapist.track import importer
from flask_bitmapist.track.importer import import_marks, read_marks

# Lines json and orjson may read differently: numbers beyond 64 bits, NaN,
# lone surrogates, a byte-order mark, repeated keys, odd whitespace.
ODD_LINES = [
    '{"event": "e", "user": 18446744073709551616, "time": "2026-01-01"}\n',
    '{"event": "e", "user": -9223372036854775809, "time": "2026-01-01"}\n',
    '{"event": "e", "user": NaN, "time": "2026-01-01"}\n',
    '{"event": "e", "user": Infinity, "time": "2026-01-01"}\n',
    '{"event": "\\ud800", "user": 1, "time": "2026-01-01"}\n',
    '\ufeff{"event": "e", "user": 1, "time": "2026-01-01"}\n',
    '{"event": "e", "user": 1, "user": 2, "time": "2026-01-01"}\n',
    ' \t{"event": "e", "user": 1, "time": "2026-01-01"} \r\n',
    '{"event": "e", "user": 1.0000000000000002, "time": "2026-01-01"}\n',
    '{"event": "e", "user": 1e400, "time": "2026-01-01"}\n',
    '{"event": "e", "user": 1, "time": "2026-01-01"}{}\n',
    "[1, 2,]\n",
    "",
    "\n",
]

# Values for a line's fields: valid ones, and those json and orjson read
# differently.
field_values = st.one_of(
    st.sampled_from(["e", "song:played", "", " ", "bitop_x", "2026-03-14T15:09Z"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", '"\\ud800"']).map(
        lambda raw: ("raw", raw)
    ),
    st.text(max_size=12),
    st.none(),
    st.lists(st.integers(min_value=2**63, max_value=2**65), max_size=2),
)
times = st.one_of(
    st.sampled_from(
        [
            "2026-03-14T15:09:00Z",
            "2026-03-14T23:30:00-05:00",
            "2026-03-14",
            "1969-12-31",
        ]
    ),
    field_values,
)


def field(value: Any) -> str:
    """``value`` as JSON, or the raw text of a ("raw", text) pair."""
    if isinstance(value, tuple):
        return str(value[1])
    return json.dumps(value)


records = st.fixed_dictionaries(
    {"event": field_values | st.just("e"), "user": field_values, "time": times}
).map(
    lambda fields: (
        "{" + ", ".join(f'"{k}": {field(v)}' for k, v in fields.items()) + "}\n"
    )
)
lines = st.lists(records | st.text(max_size=30), min_size=1, max_size=8)


def read_without_orjson(
    monkeypatch: pytest.MonkeyPatch, lines: list[str], **options: Any
) -> list[Any]:
    with monkeypatch.context() as patched:
        patched.setattr(importer, "_orjson_loads", lambda: None)
        return [repr(item) for item in read_marks(lines, "jsonl", **options)]


def test_orjson_is_used_when_installed() -> None:
    import orjson

    assert importer._orjson_loads() is orjson.loads


@pytest.mark.parametrize("id_map", [False, True])
def test_odd_lines_give_what_json_gives(
    monkeypatch: pytest.MonkeyPatch, id_map: bool
) -> None:
    with_orjson = [repr(item) for item in read_marks(ODD_LINES, "jsonl", id_map=id_map)]
    assert with_orjson == read_without_orjson(monkeypatch, ODD_LINES, id_map=id_map)
    # The id beyond 64 bits is an id of the map, and an error without it.
    assert (
        "Mark(event_name='e', user_id='18446744073709551616'" in with_orjson[0]
    ) == id_map


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(lines=lines, id_map=st.booleans())
def test_any_line_gives_what_json_gives(
    monkeypatch: pytest.MonkeyPatch, lines: list[str], id_map: bool
) -> None:
    with_orjson = [repr(item) for item in read_marks(lines, "jsonl", id_map=id_map)]
    assert with_orjson == read_without_orjson(monkeypatch, lines, id_map=id_map)


def test_the_same_marks_or_errors_without_orjson_installed() -> None:
    lines = [*ODD_LINES, '{"event": "e", "user": 5, "time": "2026-03-14T15:09Z"}\n']
    with_orjson = [repr(item) for item in read_marks(lines, "jsonl")]
    code = f"""
import sys
sys.modules["orjson"] = None
from flask_bitmapist.track.importer import _orjson_loads, read_marks
print(_orjson_loads())
for item in read_marks({lines!r}, "jsonl"):
    print(repr(item))
"""
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert output[0] == "None"
    assert output[1:] == with_orjson
    assert with_orjson[-1] == repr(
        (
            15,
            Mark(
                "e", 5, datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc), False, False
            ),
        )
    )


T0 = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)

lines_of_marks = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c:d"]),
        st.integers(min_value=0, max_value=5_000),
        st.integers(min_value=-200_000, max_value=200_000),
        st.sampled_from(["+00:00", "Z", "-05:00", "+09:30", ""]),
    ),
    min_size=1,
    max_size=120,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(records=lines_of_marks, hourly=st.booleans())
def test_grouped_writes_leave_redis_as_marks_written_one_by_one(
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    records: list[tuple[str, int, int, str]],
    hourly: bool,
) -> None:
    """Small windows and batches, so that a file spans several of each and
    a group of one event and day is cut between batches."""
    monkeypatch.setattr(importer, "BATCH", 7)
    monkeypatch.setattr(importer, "WINDOW", 23)
    text = "".join(
        json.dumps(
            {
                "event": event,
                "user": user,
                "time": (T0 + timedelta(minutes=minutes))
                .replace(tzinfo=None)
                .isoformat()
                + zone,
            }
        )
        + "\n"
        for event, user, minutes, zone in records
    )
    client.flushdb()
    marks = list(read_marks(io.StringIO(text), "jsonl", track_hourly=hourly))
    assert all(isinstance(mark, Mark) for _, mark in marks)
    result = import_marks(client, iter(marks))
    assert result.imported == len(records)
    imported = {key: client.get(key) for key in client.keys("*")}
    client.flushdb()
    for _, mark in marks:
        write_marks(client, [mark])  # type: ignore[list-item]
    assert {key: client.get(key) for key in client.keys("*")} == imported
    client.flushdb()


@pytest.mark.parametrize(
    ("text", "year"),
    [
        ("1970-01-01T00:00:00+00:00", 1970),
        ("1970-01-01T00:00:00Z", 1970),
        ("2099-12-31T23:59:59.999999+00:00", 2099),
        ("1970-01-01T00:59:59+01:00", None),
        ("1969-12-31T23:59:59.999999+00:00", None),
        ("2100-01-01T00:00:00+00:00", None),
        ("2099-12-31T19:00:00-05:00", None),
    ],
)
def test_utc_times_at_the_edges_of_the_years_marks_may_have(
    text: str, year: int | None
) -> None:
    """A time already in UTC is checked by its year alone: the same verdict
    as converting it."""
    if year is None:
        with pytest.raises(ValueError, match="1970"):
            importer.parse_time(text)
    else:
        assert importer.parse_time(text).year == year
        assert importer.parse_time(text).tzinfo is timezone.utc

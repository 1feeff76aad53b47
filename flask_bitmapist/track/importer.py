"""Bulk import of event logs: JSON Lines or CSV, written in batches.

Each line is ``{"event": ..., "user": ..., "time": ISO 8601}`` (JSON Lines) or
a CSV row with the columns ``event``, ``user`` and ``time``. The marks go to
the same keys as :func:`~flask_bitmapist.mark_event`, in batches of
:data:`BATCH` marks: one EVAL each, whose SETBITs are grouped by key (the
writer's :func:`~flask_bitmapist.store.writer.write_marks`), rather than a round trip
per event. SETBIT is idempotent, so importing a file twice leaves Redis as the
first import left it.

Marks are read :data:`WINDOW` at a time and written grouped by event and
day, so that a batch holds many marks of few keys: the writer sends a key
with many marks close together as one bitmap rather than a SETBIT a mark
(:func:`~flask_bitmapist.store.writer.dense_pieces`). Importing only sets
bits, so the order in which they are written changes nothing, except with
the id map, which gives new ids their dense ids in the order they are
written: there the marks are written in the order of the file.

JSON Lines are parsed with orjson when it is installed (the ``fast``
extra), about four times as fast as :mod:`json`. A line that orjson's
parse does not turn into a mark is read again with :mod:`json`, so each
line gives the same mark, or the same error, with or without orjson: the
two differ only on what makes a line malformed (orjson reads an integer
beyond 64 bits as a float, and refuses ``NaN``), and every value a mark
takes is a str or an int within 64 bits. The one exception is a line nested
deeper than :mod:`json` can read (995 levels on Python 3.10 and 3.11) in
a field the import ignores: orjson reads up to 1,024 levels, so with it the
line gives its mark, without it a malformed line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, NoReturn

from ..config import DEFAULT_MAX_USER_ID
from ..store.backend import Client, Store, as_store
from ..store.layout import (
    FIRST_MARK_TIME,
    LAST_MARK_TIME,
    to_mark_time,
    validate_event_name,
)
from ..store.writer import Mark, PartialWrite, write_marks
from .ids import to_user_id

Format = Literal["jsonl", "csv"]
#: Marks per write: one script run of this size holds Redis for some 20 ms.
BATCH = 10_000
#: Marks read before they are grouped by event and day and written, in
#: batches of :data:`BATCH`: writing 300,000 marks of 3 events over 30 days
#: took 1.63 us a mark this way, 1.97 us in the order of the file.
WINDOW = 10 * BATCH
_FIRST_YEAR = FIRST_MARK_TIME.year
_END_YEAR = LAST_MARK_TIME.year
CSV_COLUMNS = ("event", "user", "time")


class MalformedLine(ValueError):
    """A line that cannot be imported, with its 1-based number."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass
class ImportResult:
    """What an import did: how many events it wrote, and the lines it skipped."""

    imported: int = 0
    skipped: list[MalformedLine] = field(default_factory=list)


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time as an aware UTC datetime; naive times are UTC.

    :raises ValueError: for anything else, or a time before 1970 or after
        2099.
    """
    if not isinstance(value, str):
        raise ValueError(f"time must be an ISO 8601 string, got {value!r}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time must be an ISO 8601 string, got {value!r}") from None
    if moment.tzinfo is timezone.utc and _FIRST_YEAR <= moment.year < _END_YEAR:
        # A time already in UTC, as most logs write them: nothing to convert
        # (a third of the time a line took to read), and its year tells
        # whether it is within the years marks may have.
        return moment
    return to_mark_time(moment)


def _orjson_loads() -> Callable[[str], Any] | None:
    """orjson's ``loads`` when orjson is installed (the ``fast`` extra)."""
    try:
        import orjson
    except ImportError:
        return None
    return orjson.loads


def _mark(
    record: Any,
    track_hourly: bool,
    track_unique: bool,
    max_user_id: int,
    id_map: bool,
) -> Mark:
    if not isinstance(record, dict):
        _explain_record(record)
    try:
        event, user, time = record["event"], record["user"], record["time"]
    except KeyError:
        _explain_record(record)
    event_name = validate_event_name(event)
    user_id: int | str | None
    if user.__class__ is int and not id_map and 0 <= user <= max_user_id:
        # to_user_id's answer for the commonest id, without the call.
        user_id = user
    else:
        user_id = to_user_id(event_name, user, max_user_id=max_user_id, id_map=id_map)
    if user_id is None:
        raise ValueError("user must not be empty")
    return Mark(event_name, user_id, parse_time(time), track_hourly, track_unique)


def _explain_record(record: Any) -> NoReturn:
    """Why ``record`` is not an object with event, user and time."""
    if not isinstance(record, dict):
        raise ValueError(
            f"expected an object with event, user and time, got {record!r}"
        )
    missing = [key for key in CSV_COLUMNS if key not in record]
    raise ValueError(f"missing {', '.join(missing)}")


def read_marks(
    lines: Iterable[str],
    fmt: Format,
    track_hourly: bool = False,
    track_unique: bool = False,
    max_user_id: int = DEFAULT_MAX_USER_ID,
    *,
    id_map: bool = False,
) -> Iterator[tuple[int, Mark | MalformedLine]]:
    """Each data line's number and its mark, or why it is malformed.

    Blank lines are passed over. A CSV file needs a header naming the columns
    event, user and time (in any order; more columns are ignored). A user id
    above ``max_user_id`` (the app's ``BITMAPIST_MAX_USER_ID``) makes its line
    malformed. With ``id_map`` (the app's ``BITMAPIST_ID_MAP``), a user is any
    id the map takes (a UUID, a name, any int), written through the map.
    """
    if fmt == "jsonl":
        fast = _orjson_loads()
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            if fast is not None:
                try:
                    mark = _mark(
                        fast(text), track_hourly, track_unique, max_user_id, id_map
                    )
                except ValueError:
                    # Read again below, so that the line gives json's error:
                    # orjson reads a number beyond 64 bits as a float, and
                    # refuses NaN, which json reads.
                    pass
                else:
                    yield number, mark
                    continue
            try:
                yield (
                    number,
                    _mark(
                        json.loads(text),
                        track_hourly,
                        track_unique,
                        max_user_id,
                        id_map,
                    ),
                )
            except ValueError as error:
                yield number, MalformedLine(number, _reason(error))
            except RecursionError:
                yield number, MalformedLine(number, "invalid JSON: nested too deeply")
        return
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    absent = [column for column in CSV_COLUMNS if column not in header]
    if absent:
        yield 1, MalformedLine(1, f"the CSV header lacks {', '.join(absent)}")
        return
    for row in reader:
        number = reader.line_num
        try:
            yield (
                number,
                _mark(row, track_hourly, track_unique, max_user_id, id_map),
            )
        except ValueError as error:
            yield number, MalformedLine(number, _reason(error))


def _reason(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {error.msg}"
    return str(error).rstrip(".")


def import_marks(
    store: Store | Client,
    marks: Iterator[tuple[int, Mark | MalformedLine]],
    *,
    strict: bool = False,
) -> ImportResult:
    """Write the marks of :func:`read_marks` in batches.

    :param strict: stop at the first malformed line, before anything is
        written (the whole input is read first).
    :raises MalformedLine: in strict mode.
    :raises redis.RedisError: when Redis cannot be reached (on a cluster,
        when a node could not take its part; importing again converges, as
        SETBIT is idempotent).
    """
    result = ImportResult()
    store = as_store(store)
    known_shards: set[int] = set()
    window: list[Mark] = []
    for _, item in marks:
        if isinstance(item, MalformedLine):
            if strict:
                raise item
            result.skipped.append(item)
            continue
        window.append(item)
        if not strict and len(window) >= WINDOW:
            _write(store, window, known_shards)
            result.imported += len(window)
            window = []
    _write(store, window, known_shards)
    result.imported += len(window)
    return result


def _grouped(marks: list[Mark]) -> list[Mark]:
    """``marks`` grouped by event and day, each group in the order given."""
    groups: dict[tuple[str, int, int, int], list[Mark]] = {}
    for mark in marks:
        when = mark.when
        group = (mark.event_name, when.year, when.month, when.day)
        found = groups.get(group)
        if found is None:
            groups[group] = [mark]
        else:
            found.append(mark)
    return [mark for group in groups.values() for mark in group]


def _write(store: Store, marks: list[Mark], known_shards: set[int]) -> None:
    """Write ``marks`` grouped by event and day (in the order given with the
    id map), :data:`BATCH` at a time."""
    ordered = marks if store.id_map is not None else _grouped(marks)
    try:
        for start in range(0, len(ordered), BATCH):
            write_marks(store, ordered[start : start + BATCH], known_shards)
    except PartialWrite as partial:
        raise partial.error from None

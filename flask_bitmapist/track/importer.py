"""Bulk import of event logs: JSON Lines or CSV, written in batches.

Each line is ``{"event": ..., "user": ..., "time": ISO 8601}`` (JSON Lines) or
a CSV row with the columns ``event``, ``user`` and ``time``. The marks go to
the same keys as :func:`~flask_bitmapist.mark_event`, in batches of
:data:`BATCH` marks: one EVAL each, whose SETBITs are grouped by key (the
writer's :func:`~flask_bitmapist.store.writer.write_marks`), rather than a round trip
per event. SETBIT is idempotent, so importing a file twice leaves Redis as the
first import left it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..config import DEFAULT_MAX_USER_ID
from ..store.backend import Client, Store
from ..store.layout import to_mark_time, validate_event_name
from ..store.writer import Mark, PartialWrite, write_marks
from .ids import to_user_id

Format = Literal["jsonl", "csv"]
#: Marks per write: one script run of this size holds Redis for some 20 ms.
BATCH = 10_000
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
    return to_mark_time(moment)


def _mark(
    record: Any,
    track_hourly: bool,
    track_unique: bool,
    max_user_id: int,
    id_map: bool,
) -> Mark:
    if not isinstance(record, dict):
        raise ValueError(
            f"expected an object with event, user and time, got {record!r}"
        )
    missing = [key for key in CSV_COLUMNS if key not in record]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    event_name = validate_event_name(record["event"])
    user_id = to_user_id(
        event_name, record["user"], max_user_id=max_user_id, id_map=id_map
    )
    if user_id is None:
        raise ValueError("user must not be empty")
    return Mark(
        event_name, user_id, parse_time(record["time"]), track_hourly, track_unique
    )


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
        for number, text in enumerate(lines, 1):
            if not text.strip():
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
    known_shards: set[int] = set()
    batch: list[Mark] = []
    for _, item in marks:
        if isinstance(item, MalformedLine):
            if strict:
                raise item
            result.skipped.append(item)
            continue
        batch.append(item)
        if not strict and len(batch) >= BATCH:
            _write(store, batch, known_shards)
            result.imported += len(batch)
            batch = []
    for start in range(0, len(batch), BATCH):
        _write(store, batch[start : start + BATCH], known_shards)
    result.imported += len(batch)
    return result


def _write(store: Store | Client, batch: list[Mark], known_shards: set[int]) -> None:
    try:
        write_marks(store, batch, known_shards)
    except PartialWrite as partial:
        raise partial.error from None

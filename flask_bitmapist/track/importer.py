"""Bulk import of event logs: JSON Lines or CSV, written in batches.

Each line is ``{"event": ..., "user": ..., "time": ISO 8601}`` (JSON Lines) or
a CSV row with the columns ``event``, ``user`` and ``time``. The marks go to
the same keys as :func:`~flask_bitmapist.mark_event`. Setting a bit is
idempotent, so importing a file twice leaves Redis as the first import left
it.

Lines are read :data:`WINDOW` at a time, and each line's user id goes into
the group of its event and day (or hour): each key of a window is written
once, as a bitmap built on the client and ORed into the key when its ids are
close together, else as SETBITs
(:func:`~flask_bitmapist.store.bulk.write_user_ids`). Importing only sets
bits, so the order in which they are written changes nothing, except with
the id map, which gives new ids their dense ids in the order they are
written: there the marks are written in the order of the file, :data:`BATCH`
marks to a script (:func:`~flask_bitmapist.store.writer.write_marks`).

The common line (an event name seen before, an int id or one of decimal
digits, a time in UTC or naive) is read in a few steps: 1,000,000 lines
took 1.5 us each with orjson, 0.93 to read and 0.56 to group and write
(``scripts/bench_queries.py`` (f)); any other is read by the same checks as
:func:`~flask_bitmapist.mark_event`'s, which give its error.

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
from ..store.bulk import write_user_ids
from ..store.layout import (
    FIRST_MARK_TIME,
    LAST_MARK_TIME,
    to_mark_time,
    validate_event_name,
)
from ..store.writer import Mark, PartialWrite, write_marks
from .ids import to_user_id

Format = Literal["jsonl", "csv"]
#: Marks per script with the id map: one script of this size holds Redis for
#: some 20 ms.
BATCH = 10_000
#: Lines read before their marks are grouped and written: each key of a
#: window is written once, so a larger window sends fewer bytes a mark.
#: Importing 1,000,000 lines of 3 events over 30 days: 610,000 lines/s with
#: windows of 100,000, 660,000 with 250,000, 570,000 with 1,000,000 (the
#: lists outgrow the CPU's caches).
WINDOW = 250_000
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


def _mark_fields(number: int, record: Any, max_user_id: int, id_map: bool) -> Fields:
    """The fields of line ``number``'s mark, read from ``record``.

    :raises ValueError: saying why the record gives no mark.
    """
    if not isinstance(record, dict):
        _explain_record(record)
    try:
        event, user, time = record["event"], record["user"], record["time"]
    except KeyError:
        _explain_record(record)
    event_name = validate_event_name(event)
    user_id = to_user_id(event_name, user, max_user_id=max_user_id, id_map=id_map)
    if user_id is None:
        raise ValueError("user must not be empty")
    return number, event_name, user_id, parse_time(time)


def _explain_record(record: Any) -> NoReturn:
    """Why ``record`` is not an object with event, user and time."""
    if not isinstance(record, dict):
        raise ValueError(
            f"expected an object with event, user and time, got {record!r}"
        )
    missing = [key for key in CSV_COLUMNS if key not in record]
    raise ValueError(f"missing {', '.join(missing)}")


Fields = tuple[int, str, "int | str", datetime]
"""A line's number, event name, user id and time: its mark's fields."""


class MarkReader(Iterator[tuple[int, "Mark | MalformedLine"]]):
    """The lines of an event log read into marks: what :func:`read_marks`
    returns.

    Iterated, it gives each data line's number and its mark, or why it is
    malformed. :func:`import_marks` reads its :meth:`fields` instead, and
    groups them without a :class:`~flask_bitmapist.store.writer.Mark` a line.
    """

    def __init__(
        self,
        fields: Iterator[Fields | MalformedLine],
        track_hourly: bool,
        track_unique: bool,
    ) -> None:
        self._fields = fields
        self.track_hourly = track_hourly
        self.track_unique = track_unique

    def fields(self) -> Iterator[Fields | MalformedLine]:
        """The lines still unread, each as its :data:`Fields` or a
        :exc:`MalformedLine` (shared with this iterator: what one reads, the
        other does not)."""
        return self._fields

    def __iter__(self) -> MarkReader:
        return self

    def __next__(self) -> tuple[int, Mark | MalformedLine]:
        item = next(self._fields)
        if isinstance(item, MalformedLine):
            return item.line, item
        number, event_name, user_id, when = item
        return number, Mark(
            event_name, user_id, when, self.track_hourly, self.track_unique
        )


def read_marks(
    lines: Iterable[str],
    fmt: Format,
    track_hourly: bool = False,
    track_unique: bool = False,
    max_user_id: int = DEFAULT_MAX_USER_ID,
    *,
    id_map: bool = False,
) -> MarkReader:
    """Each data line's number and its mark, or why it is malformed.

    Blank lines are passed over. A CSV file needs a header naming the columns
    event, user and time (in any order; more columns are ignored). A user id
    above ``max_user_id`` (the app's ``BITMAPIST_MAX_USER_ID``) makes its line
    malformed. With ``id_map`` (the app's ``BITMAPIST_ID_MAP``), a user is any
    id the map takes (a UUID, a name, any int), written through the map.
    """
    records = _json_records(lines) if fmt == "jsonl" else _csv_records(lines)
    return MarkReader(_fields(records, max_user_id, id_map), track_hourly, track_unique)


# A record as read, with what reads it again when it is not the common case:
# the line's text (JSON Lines) or the row (CSV).
_Record = tuple[int, Any, "str | dict[str, str]"]


def _json_records(lines: Iterable[str]) -> Iterator[_Record | MalformedLine]:
    fast = _orjson_loads()
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        if fast is not None:
            try:
                yield number, fast(text), text
                continue
            except ValueError:
                pass
        yield number, None, text


def _csv_records(lines: Iterable[str]) -> Iterator[_Record | MalformedLine]:
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    absent = [column for column in CSV_COLUMNS if column not in header]
    if absent:
        yield MalformedLine(1, f"the CSV header lacks {', '.join(absent)}")
        return
    for row in reader:
        yield reader.line_num, row, row


def _fields(
    records: Iterator[_Record | MalformedLine], max_user_id: int, id_map: bool
) -> Iterator[Fields | MalformedLine]:
    """Each record's fields, or why its line is malformed.

    The common line (an event name seen before, an int id or one of decimal
    digits, a time in UTC) is read here in a few steps; any other goes
    through :func:`_read_again`, which gives every line's mark or its error."""
    valid_names: set[str] = set()
    utc = timezone.utc
    from_iso = datetime.fromisoformat
    for record in records:
        if isinstance(record, MalformedLine):
            yield record
            continue
        number, parsed, source = record
        if parsed.__class__ is dict and not id_map:
            event, user, time = (
                parsed.get("event"),
                parsed.get("user"),
                parsed.get("time"),
            )
            if user.__class__ is str and user.isdecimal() and len(user) <= 10:
                # to_user_id's reading of a str id, -1 for one it refuses.
                user = int(user) if user.isascii() else -1
            if (
                event.__class__ is str
                and event in valid_names
                and user.__class__ is int
                and 0 <= user <= max_user_id
                and time.__class__ is str
            ):
                if time.endswith(("Z", "z")):
                    time = time[:-1] + "+00:00"
                try:
                    moment = from_iso(time)
                except ValueError:
                    pass
                else:
                    # A time in UTC, or naive (taken as UTC), as most logs
                    # write them: nothing to convert, and its year tells
                    # whether it is within the years marks may have.
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=utc)
                    if moment.tzinfo is utc and _FIRST_YEAR <= moment.year < _END_YEAR:
                        yield number, event, user, moment
                        continue
        item = _read_again(number, parsed, source, max_user_id, id_map)
        if item.__class__ is not MalformedLine and len(valid_names) < _NAMES_KEPT:
            valid_names.add(item[1])  # type: ignore[index]
        yield item


#: The most event names :func:`_fields` keeps as checked.
_NAMES_KEPT = 10_000


def _read_again(
    number: int,
    parsed: Any,
    source: str | dict[str, str],
    max_user_id: int,
    id_map: bool,
) -> Fields | MalformedLine:
    """A line's fields as :func:`_mark_fields` reads them, or why it is malformed.
    A JSON line that orjson read and that gives no mark is read again with
    :mod:`json`, so that it gives json's error: orjson reads a number beyond
    64 bits as a float, and refuses NaN, which json reads."""
    if parsed is not None:
        try:
            return _mark_fields(number, parsed, max_user_id, id_map)
        except ValueError as error:
            if not isinstance(source, str):
                return MalformedLine(number, _reason(error))
    try:
        return _mark_fields(number, json.loads(source), max_user_id, id_map)  # type: ignore[arg-type]
    except ValueError as error:
        return MalformedLine(number, _reason(error))
    except RecursionError:
        return MalformedLine(number, "invalid JSON: nested too deeply")


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

    Marks are written :data:`WINDOW` at a time, grouped by event and day
    (see the module's docstring); with the store's id map, in the order given.

    :param strict: stop at the first malformed line, before anything is
        written (the whole input is read first).
    :raises MalformedLine: in strict mode.
    :raises redis.RedisError: when Redis cannot be reached (on a cluster,
        when a node could not take its part; importing again converges, as
        SETBIT is idempotent).
    """
    store = as_store(store)
    if isinstance(marks, MarkReader) and store.id_map is None:
        return _import_fields(store, marks, strict)
    result = ImportResult()
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


def _import_fields(store: Store, reader: MarkReader, strict: bool) -> ImportResult:
    """:func:`import_marks` of a :class:`MarkReader` without the id map: each
    line's user id goes straight into its event and day's group (hour's,
    with hourly keys), and each group's ids are written at once
    (:func:`~flask_bitmapist.store.bulk.write_user_ids`)."""
    result = ImportResult()
    known_shards: set[int] = set()
    hourly = reader.track_hourly
    # Without the id map, every user id is an int.
    groups: dict[tuple[str, int, int, int, int], list[Any]] = {}
    pending = 0
    for item in reader.fields():
        if isinstance(item, MalformedLine):
            if strict:
                raise item
            result.skipped.append(item)
            continue
        _, event_name, user_id, when = item
        group = (
            event_name,
            when.year,
            when.month,
            when.day,
            when.hour if hourly else 0,
        )
        found = groups.get(group)
        if found is None:
            groups[group] = [user_id]
        else:
            found.append(user_id)
        pending += 1
        if not strict and pending >= WINDOW:
            _write_groups(store, reader, groups, known_shards)
            result.imported += pending
            groups, pending = {}, 0
    _write_groups(store, reader, groups, known_shards)
    result.imported += pending
    return result


def _write_groups(
    store: Store,
    reader: MarkReader,
    groups: dict[tuple[str, int, int, int, int], list[Any]],
    known_shards: set[int],
) -> None:
    ids_by_group = {
        (event_name, datetime(year, month, day, hour, tzinfo=timezone.utc)): user_ids
        for (event_name, year, month, day, hour), user_ids in groups.items()
    }
    try:
        write_user_ids(
            store, ids_by_group, reader.track_hourly, reader.track_unique, known_shards
        )
    except PartialWrite as partial:
        raise partial.error from None


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

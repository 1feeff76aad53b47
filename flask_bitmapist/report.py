"""A cohort as a report: the request that asks for it, validated field by
field, and the resulting table with its totals and averages, as JSON and CSV.

The dashboard and the ``flask bitmapist cohort`` command share it, so both
show the numbers of :func:`~flask_bitmapist.queries.get_cohort`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .ids import validate_event_name
from .queries import Cohort, get_cohort, validate_time_group

MAX_PERIODS = 366
MAX_ADDITIONAL_EVENTS = 10
_FIELDS = (
    "primary_event",
    "secondary_event",
    "additional_events",
    "time_group",
    "num_rows",
    "num_cols",
    "as_percent",
    "with_replacement",
)
_TRUE_WORDS = ("1", "true", "on", "yes")
_FALSE_WORDS = ("", "0", "false", "off", "no")


class FieldError(ValueError):
    """A cohort request field has a value that cannot be used.

    :ivar field: the field's name, as the JSON body spells it.
    :ivar reason: what is wrong with it, in one sentence.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class CohortRequest:
    """The parameters of a cohort, as the dashboard's ``POST /cohort`` JSON
    body names them (the body of the original flask-bitmapist).

    ``additional_events`` holds ``(event name, "and" | "or")`` pairs. Rows and
    columns are limited to 1..366, so one request cannot ask Redis for more
    than a year of days.
    """

    primary_event: str
    secondary_event: str
    additional_events: tuple[tuple[str, str], ...] = ()
    time_group: str = "days"
    num_rows: int = 10
    num_cols: int = 10
    as_percent: bool = False
    with_replacement: bool = False

    @classmethod
    def from_json(cls, body: Any) -> CohortRequest:
        """Validate a decoded JSON body.

        :raises FieldError: naming the first field that is missing, unknown
            or of the wrong type or range.
        """
        if not isinstance(body, Mapping):
            raise FieldError("body", "must be a JSON object.")
        for name in body:
            if name not in _FIELDS:
                raise FieldError(
                    str(name)[:100], f"is not a field; the fields are {_field_list()}."
                )
        return cls(
            primary_event=_event(body, "primary_event"),
            secondary_event=_event(body, "secondary_event"),
            additional_events=_additional_events(body.get("additional_events", [])),
            time_group=_time_group(body.get("time_group", "days")),
            num_rows=_period_count(body, "num_rows"),
            num_cols=_period_count(body, "num_cols"),
            as_percent=_flag(body, "as_percent"),
            with_replacement=_flag(body, "with_replacement"),
        )

    @classmethod
    def from_query(cls, args: Any) -> CohortRequest:
        """Validate the fields of a query string or form (a werkzeug
        ``MultiDict``): the JSON fields as text, with each additional event as
        a repeated ``additional_event`` and ``additional_op`` pair.

        :raises FieldError: as :meth:`from_json`.
        """
        names = args.getlist("additional_event")
        operators = args.getlist("additional_op")
        if len(operators) != len(names):
            raise FieldError(
                "additional_events", "needs one additional_op per additional_event."
            )
        body: dict[str, Any] = {
            "additional_events": [
                {"name": name, "op": op}
                for name, op in zip(names, operators, strict=True)
                if name
            ]
        }
        for name in ("primary_event", "secondary_event", "time_group"):
            if name in args:
                body[name] = args[name]
        for name in ("num_rows", "num_cols"):
            if name in args:
                body[name] = _int_text(name, args[name])
        for name in ("as_percent", "with_replacement"):
            if name in args:
                body[name] = _flag_text(name, args[name])
        return cls.from_json(body)

    def to_json(self) -> dict[str, Any]:
        """The request as a JSON body that :meth:`from_json` reads back."""
        return {
            "primary_event": self.primary_event,
            "secondary_event": self.secondary_event,
            "additional_events": [
                {"name": name, "op": op} for name, op in self.additional_events
            ],
            "time_group": self.time_group,
            "num_rows": self.num_rows,
            "num_cols": self.num_cols,
            "as_percent": self.as_percent,
            "with_replacement": self.with_replacement,
        }

    def to_query(self) -> list[tuple[str, str]]:
        """The request as query-string pairs that :meth:`from_query` reads back."""
        pairs = [
            ("primary_event", self.primary_event),
            ("secondary_event", self.secondary_event),
        ]
        for name, op in self.additional_events:
            pairs += [("additional_event", name), ("additional_op", op)]
        pairs += [
            ("time_group", self.time_group),
            ("num_rows", str(self.num_rows)),
            ("num_cols", str(self.num_cols)),
        ]
        pairs += [
            (name, "1")
            for name in ("as_percent", "with_replacement")
            if getattr(self, name)
        ]
        return pairs

    def run(
        self, now: datetime | None = None, system: str | None = None
    ) -> CohortReport:
        """Compute the cohort with :func:`~flask_bitmapist.queries.get_cohort`."""
        cohort, dates, totals = get_cohort(
            self.primary_event,
            self.secondary_event,
            additional_events=[
                {"name": name, "op": op} for name, op in self.additional_events
            ],
            time_group=self.time_group,
            num_rows=self.num_rows,
            num_cols=self.num_cols,
            system=system,
            with_replacement=self.with_replacement,
            now=now,
        )
        return CohortReport(self, cohort, dates, totals)


@dataclass(frozen=True)
class CohortReport:
    """A computed cohort with what the heatmap shows around it.

    ``cohort``, ``dates`` and ``row_totals`` are what ``get_cohort`` returned.
    A column's total adds its cells that are not ``None``, and its average is
    their mean (``None`` when the column has none). ``percentages[i][j]`` is
    cell ``[i][j]`` as a percent of row ``i``'s users, and
    ``average_percentages`` are the columns' means of those.
    """

    request: CohortRequest
    cohort: Cohort
    dates: list[datetime]
    row_totals: list[int]
    column_totals: list[int] = field(init=False)
    averages: list[float | None] = field(init=False)
    percentages: list[list[float | None]] = field(init=False)
    average_percentages: list[float | None] = field(init=False)

    def __post_init__(self) -> None:
        columns = list(zip(*self.cohort, strict=True)) if self.cohort else []
        percentages = [
            [None if cell is None else 100.0 * cell / total for cell in row]
            for row, total in zip(self.cohort, self.row_totals, strict=True)
        ]
        percent_columns = list(zip(*percentages, strict=True)) if percentages else []
        set_field = object.__setattr__
        set_field(
            self,
            "column_totals",
            [sum(cell for cell in column if cell is not None) for column in columns],
        )
        set_field(self, "averages", [_mean(column) for column in columns])
        set_field(self, "percentages", percentages)
        set_field(
            self, "average_percentages", [_mean(column) for column in percent_columns]
        )

    @property
    def users_total(self) -> int:
        """The users of all rows (a user in two rows counts twice)."""
        return sum(self.row_totals)

    @property
    def users_average(self) -> float:
        """The mean number of users per row."""
        return self.users_total / len(self.row_totals)

    def period_label(self, row: int) -> str:
        """Row ``row``'s period, for people: 2026-11-22, 2026-W47, 2026-11, 2026."""
        date = self.dates[row]
        if self.request.time_group == "weeks":
            year, week, _ = date.isocalendar()
            return f"{year}-W{week:02d}"
        formats = {"days": "%Y-%m-%d", "months": "%Y-%m", "years": "%Y"}
        return date.strftime(formats[self.request.time_group])

    def column_label(self, column: int) -> str:
        """Column ``column``'s offset from its row: "+0 days", "+1 days", ..."""
        return f"+{column} {self.request.time_group}"

    def to_json(self) -> dict[str, Any]:
        """The data as JSON: the request, then the cohort with ISO 8601 dates,
        row totals, column totals and averages."""
        return {
            "request": self.request.to_json(),
            "dates": [date.isoformat() for date in self.dates],
            "cohort": self.cohort,
            "row_totals": self.row_totals,
            "column_totals": self.column_totals,
            "averages": self.averages,
            "percentages": self.percentages,
            "average_percentages": self.average_percentages,
        }

    def to_csv(self) -> str:
        """The table as CSV: a header, one line per period (its start as an
        ISO 8601 date), then the averages and totals. Cells are counts, or
        percents of the row's users with ``as_percent``; an empty cell is a
        period in the future or a row without users.
        """
        cells: Sequence[Sequence[float | int | None]] = (
            self.percentages if self.request.as_percent else self.cohort
        )
        averages = (
            self.average_percentages if self.request.as_percent else self.averages
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(
            ["period", "users", *map(self.column_label, range(self.request.num_cols))]
        )
        for date, total, row in zip(self.dates, self.row_totals, cells, strict=True):
            writer.writerow([date.date().isoformat(), total, *map(_csv_number, row)])
        writer.writerow(
            [
                "average",
                _csv_number(self.users_average),
                *map(_csv_number, averages),
            ]
        )
        writer.writerow(["total", self.users_total, *self.column_totals])
        return buffer.getvalue()


def _mean(values: Sequence[float | int | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _csv_number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def _field_list() -> str:
    return ", ".join(_FIELDS)


def _event(body: Mapping[str, Any], name: str) -> str:
    if name not in body:
        raise FieldError(name, "is required.")
    try:
        return validate_event_name(body[name])
    except ValueError as error:
        raise FieldError(name, _event_reason(error)) from None


def _event_reason(error: ValueError) -> str:
    return str(error).removeprefix("Event name ")


def _additional_events(value: Any) -> tuple[tuple[str, str], ...]:
    name = "additional_events"
    if not isinstance(value, list):
        raise FieldError(name, "must be a list of {name, op} objects.")
    if len(value) > MAX_ADDITIONAL_EVENTS:
        raise FieldError(name, f"can hold at most {MAX_ADDITIONAL_EVENTS} events.")
    pairs = []
    for index, item in enumerate(value):
        item_name = f"{name}[{index}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "op"}:
            raise FieldError(
                item_name, "must be an object with exactly the keys name and op."
            )
        if item["op"] not in ("and", "or"):
            raise FieldError(f"{item_name}.op", "must be 'and' or 'or'.")
        try:
            pairs.append((validate_event_name(item["name"]), item["op"]))
        except ValueError as error:
            raise FieldError(f"{item_name}.name", _event_reason(error)) from None
    return tuple(pairs)


def _time_group(value: Any) -> str:
    try:
        return validate_time_group(value)
    except ValueError:
        raise FieldError(
            "time_group", "must be one of days, weeks, months or years."
        ) from None


def _period_count(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name, 10)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(name, f"must be an integer from 1 to {MAX_PERIODS}.")
    if not 1 <= value <= MAX_PERIODS:
        raise FieldError(name, f"must be from 1 to {MAX_PERIODS}, got {value}.")
    return value


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise FieldError(name, "must be true or false.")
    return value


def _int_text(name: str, text: str) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 6:
        raise FieldError(name, f"must be an integer from 1 to {MAX_PERIODS}.")
    return int(stripped)


def _flag_text(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise FieldError(name, "must be true or false.")

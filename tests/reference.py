"""The original flask-bitmapist cohort algorithm, built directly on bitmapist's
classes, one Redis round trip after another: the yardstick that the pipelined
queries are compared with (tests/test_differential.py) and measured against
(scripts/bench.py).

Two fixes are applied to the original on purpose, as the README documents:
week periods come from ``WeekEvents.from_date`` (ISO year and week; the
original paired the calendar year with the ISO week), and a chain whose base
event is empty in a period is still computed (the original returned nothing
there, even when an OR would have added users).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import bitmapist
from bitmapist import (
    BitOpAnd,
    BitOpOr,
    BitOpXor,
    DayEvents,
    MonthEvents,
    WeekEvents,
    YearEvents,
)
from dateutil.relativedelta import relativedelta

Events = Any


def events_at(event_name: str, time_group: str, when: datetime, client: Any) -> Events:
    if time_group == "days":
        return DayEvents.from_date(event_name, when, system=client)
    if time_group == "weeks":
        return WeekEvents.from_date(event_name, when, system=client)
    if time_group == "months":
        return MonthEvents.from_date(event_name, when, system=client)
    return YearEvents(event_name, when.year, system=client)


def reference_chain(
    base: str, chain: list[dict[str, str]], when: datetime, time_group: str, client: Any
) -> Events:
    """The original chain_events: ORs fold into their predecessor from the back,
    then the rest apply left to right."""
    events_to_chain = [dict(item) for item in chain]
    base_event = events_at(base, time_group, when, client)
    chained = [
        events_at(item["name"], time_group, when, client) for item in events_to_chain
    ]
    for index in reversed(
        [i for i, item in enumerate(events_to_chain) if item["op"] == "or"]
    ):
        if index > 0:
            chained[index - 1] = BitOpOr(client, chained[index - 1], chained.pop(index))
            events_to_chain.pop(index)
    for item, event in zip(events_to_chain, chained, strict=True):
        base_event = (
            BitOpOr(client, base_event, event)
            if item["op"] == "or"
            else BitOpAnd(client, base_event, event)
        )
    return base_event


def reference_cohort(
    primary: str,
    secondary: str,
    additional: list[dict[str, str]],
    time_group: str,
    num_rows: int,
    num_cols: int,
    with_replacement: bool,
    now: datetime,
    client: Any,
) -> tuple[list[list[int | None]], list[int]]:
    """The original get_cohort: a round trip or more per cell."""

    def delta(count: int) -> relativedelta:
        return relativedelta(**{time_group: count})

    event_time = now - delta(num_rows - 1)
    if time_group == "months":
        event_time -= relativedelta(days=event_time.day - 1)
    cohort: list[list[int | None]] = []
    totals = []
    try:
        for _ in range(num_rows):
            primary_event = events_at(primary, time_group, event_time, client)
            total = len(primary_event)
            totals.append(total)
            if not total:
                cohort.append([None] * num_cols)
                event_time += delta(1)
                continue
            row: list[int | None] = []
            for column in range(num_cols):
                moment = event_time + delta(column)
                if moment > now:
                    row.append(None)
                    continue
                chained = reference_chain(
                    secondary, additional, moment, time_group, client
                )
                combined = BitOpAnd(client, chained, primary_event)
                row.append(len(combined))
                if not with_replacement:
                    primary_event = BitOpXor(client, primary_event, combined)
            cohort.append(row)
            event_time += delta(1)
    finally:
        bitmapist.delete_runtime_bitop_keys()
    return cohort, totals

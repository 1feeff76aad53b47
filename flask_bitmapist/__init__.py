"""flask-bitmapist: real-time user analytics for Flask on Redis bitmaps.

Everything public is importable from here; the submodules own one thing each.
``Bitmapistable`` is imported on first use, since it needs SQLAlchemy (the
``sqlalchemy`` extra) and registers session listeners.
"""

from typing import Any

from bitmapist import (
    BitOpAnd,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    DayEvents,
    HourEvents,
    MonthEvents,
    UniqueEvents,
    WeekEvents,
    YearEvents,
    delete_all_events,
    get_event_names,
)

from .config import DEFAULT_MAX_USER_ID, MAX_USER_ID, ConfigError, Settings
from .extension import FlaskBitmapist
from .report.cohort import CohortReport, CohortRequest, get_cohort
from .report.events import (
    EventHistory,
    FieldError,
    PeriodCounts,
    TemporaryBitmap,
    chain_events,
    count_events,
    event_history,
    get_event_data,
    list_event_names,
    validate_time_group,
)
from .store.layout import validate_event_name
from .store.writer import WriterStats
from .track.ids import to_user_id
from .track.marking import flush, mark, mark_event, unmark_event
from .track.rules import RulesError

__all__ = [
    "DEFAULT_MAX_USER_ID",
    "MAX_USER_ID",
    "BitOpAnd",
    "BitOpNot",
    "BitOpOr",
    "BitOpXor",
    "Bitmapistable",
    "CohortReport",
    "CohortRequest",
    "ConfigError",
    "DayEvents",
    "EventHistory",
    "FieldError",
    "FlaskBitmapist",
    "HourEvents",
    "MonthEvents",
    "PeriodCounts",
    "RulesError",
    "Settings",
    "TemporaryBitmap",
    "UniqueEvents",
    "WeekEvents",
    "WriterStats",
    "YearEvents",
    "chain_events",
    "count_events",
    "delete_all_events",
    "event_history",
    "flush",
    "get_cohort",
    "get_event_data",
    "get_event_names",
    "list_event_names",
    "mark",
    "mark_event",
    "to_user_id",
    "unmark_event",
    "validate_event_name",
    "validate_time_group",
]


def __getattr__(name: str) -> Any:
    if name == "Bitmapistable":
        from .track.mixins import Bitmapistable

        return Bitmapistable
    raise AttributeError(f"module 'flask_bitmapist' has no attribute {name!r}")

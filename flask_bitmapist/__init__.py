"""flask-bitmapist: real-time user analytics for Flask on Redis bitmaps.

Everything public is importable from here; the submodules own one thing each.
Two kinds of names are imported on first use:

- ``Bitmapistable``, since it needs SQLAlchemy (the ``sqlalchemy`` extra) and
  registers session listeners;
- bitmapist's own classes and functions (``DayEvents``, ``BitOpAnd``, ...),
  re-exported for 0.1.x code, which need the ``bitmapist`` extra. Without it
  they raise :exc:`ImportError` that says how to install it, and the rest of
  the package works.
"""

from typing import TYPE_CHECKING, Any

from .config import DEFAULT_MAX_USER_ID, MAX_USER_ID, ConfigError, Settings
from .extension import FlaskBitmapist
from .report.cohort import (
    CohortReport,
    CohortRequest,
    get_cohort,
    get_cohort_cell,
    get_cohort_row,
    get_cohort_users,
)
from .report.events import (
    EventHistory,
    EventSet,
    FieldError,
    PeriodCounts,
    UsersPage,
    chain_events,
    count_events,
    event_history,
    get_event_data,
    get_users,
    list_event_names,
    validate_time_group,
)
from .report.funnel import Funnel, FunnelRequest, get_funnel
from .report.lifecycle import LifecycleRow, get_lifecycle
from .report.stickiness import get_stickiness
from .store.idmap import IdMapStats, canonical_id
from .store.layout import validate_event_name
from .store.systems import INSTALL_HINT, bitmapist_module
from .store.writer import WriterStats
from .track.ids import to_user_id
from .track.marking import flush, mark, mark_event, unmark_event
from .track.rules import RulesError

__all__ = [
    "DEFAULT_MAX_USER_ID",
    "MAX_USER_ID",
    "Bitmapistable",
    "CohortReport",
    "CohortRequest",
    "ConfigError",
    "EventHistory",
    "EventSet",
    "FieldError",
    "FlaskBitmapist",
    "Funnel",
    "FunnelRequest",
    "IdMapStats",
    "LifecycleRow",
    "PeriodCounts",
    "RulesError",
    "Settings",
    "UsersPage",
    "WriterStats",
    "canonical_id",
    "chain_events",
    "count_events",
    "event_history",
    "flush",
    "get_cohort",
    "get_cohort_cell",
    "get_cohort_row",
    "get_cohort_users",
    "get_event_data",
    "get_funnel",
    "get_lifecycle",
    "get_stickiness",
    "get_users",
    "list_event_names",
    "mark",
    "mark_event",
    "to_user_id",
    "unmark_event",
    "validate_event_name",
    "validate_time_group",
]


#: bitmapist's names that 0.1.x re-exported, found in bitmapist on first use.
BITMAPIST_NAMES = (
    "BitOpAnd",
    "BitOpNot",
    "BitOpOr",
    "BitOpXor",
    "DayEvents",
    "HourEvents",
    "MonthEvents",
    "UniqueEvents",
    "WeekEvents",
    "YearEvents",
    "delete_all_events",
    "get_event_names",
)

if TYPE_CHECKING:
    # Redundant aliases mark re-exports for type checkers.
    from bitmapist import BitOpAnd as BitOpAnd
    from bitmapist import BitOpNot as BitOpNot
    from bitmapist import BitOpOr as BitOpOr
    from bitmapist import BitOpXor as BitOpXor
    from bitmapist import DayEvents as DayEvents
    from bitmapist import HourEvents as HourEvents
    from bitmapist import MonthEvents as MonthEvents
    from bitmapist import UniqueEvents as UniqueEvents
    from bitmapist import WeekEvents as WeekEvents
    from bitmapist import YearEvents as YearEvents
    from bitmapist import delete_all_events as delete_all_events
    from bitmapist import get_event_names as get_event_names

    from .track.mixins import Bitmapistable as Bitmapistable

if bitmapist_module() is not None:
    __all__ += BITMAPIST_NAMES


def __getattr__(name: str) -> Any:
    if name == "Bitmapistable":
        from .track.mixins import Bitmapistable

        return Bitmapistable
    if name in BITMAPIST_NAMES:
        bitmapist = bitmapist_module()
        if bitmapist is None:
            raise ImportError(
                f"flask_bitmapist.{name} is bitmapist's {name}, and bitmapist is "
                f"not installed: {INSTALL_HINT}."
            )
        return getattr(bitmapist, name)
    raise AttributeError(f"module 'flask_bitmapist' has no attribute {name!r}")

"""Every bad argument of the reports of issue 15 (retention modes, funnels,
lifecycle, stickiness, and the requests the dashboard and the CLI build)
raises a :exc:`FieldError` that names the argument and says exactly what is
wrong, before anything is read from Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.datastructures import MultiDict

from flask_bitmapist import (
    CohortRequest,
    FieldError,
    FunnelRequest,
    get_cohort,
    get_cohort_cell,
    get_cohort_users,
    get_funnel,
    get_lifecycle,
    get_stickiness,
)

COHORT_MODE = "must be 'recurring' or 'first_time', got {}."
RETENTION_MODE = "must be 'on' or 'on_or_after', got {}."
STEPS_COUNT = "must hold from 2 to 10 event names, got {}."
STEPS_TYPE = "must be a list of 2 to 10 event names, got {}."
TIME_GROUP = "must be one of days, weeks, months, years (or the singular), got {}."
STICKINESS_GROUP = "must be weeks or months (or the singular), got {}."
WHITESPACE = "must not contain whitespace or control characters, got {}."


STEPS = (("steps", "visit"), ("steps", "pay"))
COHORT_BODY = {"primary_event": "a", "secondary_event": "b"}
CELL = {"row": 0, "column": 0}


def case(
    name: str,
    field: str,
    reason: str,
    function: Callable[..., object],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """A case of the table: ``function(*args, **kwargs)`` raises a
    :exc:`FieldError` of ``field`` and ``reason``."""
    return pytest.param(function, args, kwargs, field, reason, id=name)


def funnel_query(*pairs: tuple[str, str]) -> FunnelRequest:
    return FunnelRequest.from_query(MultiDict(pairs))


# One case a line: the table reads best unwrapped.
# fmt: off
CASES = [
    # get_cohort's modes, and the cells' and users' that take them.
    case("cohort x", "cohort", COHORT_MODE.format("'x'"), get_cohort, "a", "b", cohort="x"),
    case("cohort None", "cohort", COHORT_MODE.format("None"), get_cohort, "a", "b", cohort=None),
    case("retention On", "retention", RETENTION_MODE.format("'On'"), get_cohort, "a", "b", retention="On"),
    case("retention list", "retention", RETENTION_MODE.format("['on']"), get_cohort, "a", "b", retention=["on"]),
    case("cell cohort", "cohort", COHORT_MODE.format("'first'"), get_cohort_cell, "a", "b", **CELL, cohort="first"),
    case("cell retention", "retention", RETENTION_MODE.format("'after'"), get_cohort_cell, "a", "b", **CELL, retention="after"),
    case("users cohort", "cohort", COHORT_MODE.format("'new'"), get_cohort_users, "a", "b", **CELL, cohort="new"),
    case("users retention", "retention", RETENTION_MODE.format("''"), get_cohort_users, "a", "b", **CELL, retention=""),
    # get_funnel's steps, periods and window.
    case("1 step", "steps", STEPS_COUNT.format(1), get_funnel, ["a"]),
    case("no step", "steps", STEPS_COUNT.format(0), get_funnel, []),
    case("11 steps", "steps", STEPS_COUNT.format(11), get_funnel, ["a"] * 11),
    case("steps str", "steps", STEPS_TYPE.format("'ab'"), get_funnel, "ab"),
    case("steps None", "steps", STEPS_TYPE.format("None"), get_funnel, None),
    case("steps int", "steps", STEPS_TYPE.format(5), get_funnel, 5),
    case("step with a space", "steps[2]", WHITESPACE.format("'c d'"), get_funnel, ["a", "b", "c d"]),
    case("step int", "steps[1]", "must be a str, got 3.", get_funnel, ["a", 3]),
    case("step empty", "steps[1]", "must not be empty.", get_funnel, ["a", ""]),
    case("within -1", "within", "must be from 0 to 1000, got -1.", get_funnel, ["a", "b"], within=-1),
    case("within 1001", "within", "must be from 0 to 1000, got 1001.", get_funnel, ["a", "b"], within=1001),
    case("within True", "within", "must be an int from 0 to 1000, got True.", get_funnel, ["a", "b"], within=True),
    case("within str", "within", "must be an int from 0 to 1000, got '3'.", get_funnel, ["a", "b"], within="3"),
    case("within float", "within", "must be an int from 0 to 1000, got 1.5.", get_funnel, ["a", "b"], within=1.5),
    case("funnel periods 0", "num_periods", "must be from 1 to 1000, got 0.", get_funnel, ["a", "b"], num_periods=0),
    case("funnel periods 1001", "num_periods", "must be from 1 to 1000, got 1001.", get_funnel, ["a", "b"], num_periods=1001),
    case("funnel periods True", "num_periods", "must be an int from 1 to 1000, got True.", get_funnel, ["a", "b"], num_periods=True),
    case("funnel time group", "time_group", TIME_GROUP.format("'fortnights'"), get_funnel, ["a", "b"], time_group="fortnights"),
    # get_lifecycle.
    case("lifecycle event empty", "event_name", "must not be empty.", get_lifecycle, ""),
    case("lifecycle event space", "event_name", WHITESPACE.format("'a b'"), get_lifecycle, "a b"),
    case("lifecycle event None", "event_name", "must be a str, got None.", get_lifecycle, None),
    case("lifecycle hours", "time_group", TIME_GROUP.format("'hours'"), get_lifecycle, "a", time_group="hours"),
    case("lifecycle periods 0", "num_periods", "must be from 1 to 1000, got 0.", get_lifecycle, "a", num_periods=0),
    case("lifecycle periods 1001", "num_periods", "must be from 1 to 1000, got 1001.", get_lifecycle, "a", num_periods=1001),
    case("lifecycle periods True", "num_periods", "must be an int from 1 to 1000, got True.", get_lifecycle, "a", num_periods=True),
    # get_stickiness: weeks and months only.
    case("stickiness days", "time_group", STICKINESS_GROUP.format("'days'"), get_stickiness, "a", "days"),
    case("stickiness years", "time_group", STICKINESS_GROUP.format("'years'"), get_stickiness, "a", "years"),
    case("stickiness day", "time_group", STICKINESS_GROUP.format("'day'"), get_stickiness, "a", "day"),
    case("stickiness None", "time_group", STICKINESS_GROUP.format("None"), get_stickiness, "a", None),
    case("stickiness event", "event_name", WHITESPACE.format("'a b'"), get_stickiness, "a b"),
    # The requests of the dashboard and the CLI, with narrower bounds.
    case("request cohort", "cohort", COHORT_MODE.format("'first'"), CohortRequest.from_json, {**COHORT_BODY, "cohort": "first"}),
    case("request retention", "retention", RETENTION_MODE.format("True"), CohortRequest.from_json, {**COHORT_BODY, "retention": True}),
    case("query retention", "retention", RETENTION_MODE.format("'later'"), CohortRequest.from_query, MultiDict({**COHORT_BODY, "retention": "later"})),
    case("query 1 step", "steps", STEPS_COUNT.format(1), funnel_query, ("steps", "visit")),
    case("query step", "steps[1]", WHITESPACE.format("'pay now'"), funnel_query, ("steps", "visit"), ("steps", "pay now")),
    case("query periods 0", "num_periods", "must be from 1 to 366, got 0.", funnel_query, *STEPS, ("num_periods", "0")),
    case("query periods 367", "num_periods", "must be from 1 to 366, got 367.", funnel_query, *STEPS, ("num_periods", "367")),
    case("query within 367", "within", "must be from 0 to 366, got 367.", funnel_query, *STEPS, ("within", "367")),
    case("query within -1", "within", "must be an int from 0 to 366, got '-1'.", funnel_query, *STEPS, ("within", "-1")),
    case("query within x", "within", "must be an int from 0 to 366, got 'x'.", funnel_query, *STEPS, ("within", "x")),
    case("query time group", "time_group", TIME_GROUP.format("'x'"), funnel_query, *STEPS, ("time_group", "x")),
    case("query too many cells", "within", "num_periods x (within + 1) x (steps - 1) must be at most 20000, got 366 x 61 x 1 = 22326.", funnel_query, *STEPS, ("num_periods", "366"), ("within", "60")),
]
# fmt: on


@pytest.mark.parametrize(("function", "args", "kwargs", "field", "reason"), CASES)
def test_a_bad_argument_is_a_field_error_naming_it(
    app: Flask,
    client: redis.Redis,
    function: Callable[..., object],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    with app.app_context(), pytest.raises(FieldError) as raised:
        function(*args, **kwargs)
    assert (raised.value.field, raised.value.reason) == (field, reason)
    assert str(raised.value) == f"{field}: {reason}"
    assert isinstance(raised.value, ValueError)
    assert client.keys("*") == []


def test_a_funnel_query_leaves_out_empty_steps() -> None:
    """A form's unused step inputs send empty steps: they are no step."""
    request = FunnelRequest.from_query(
        MultiDict([("steps", "visit"), ("steps", ""), ("steps", "pay")])
    )
    assert request == FunnelRequest(("visit", "pay"))

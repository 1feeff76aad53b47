"""The dashboard's views, its access guard, security headers and error pages.

The event page charts an event's daily users, its lifecycle (new, returning,
resurrecting and dormant users per day) and its stickiness this week and
this month; ``/cohort`` draws a cohort's heatmap, ``/funnel`` a funnel's
steps, each with its data as JSON and CSV behind a GET link.

The users behind a number: ``/users/event/<name>`` lists the users of an
event in a period, ``/users/cohort`` those of a cohort's cell, 100 a page,
with a CSV of all of them (``format=csv``). The event page links each count
of its days, weeks and months, and the heatmap each of its cells and row
totals, to these pages.

Besides its own endpoints, the blueprint keeps those of 0.1.x, so that an
app's ``url_for("bitmapist.index")``, ``"bitmapist.events"`` and
``"bitmapist.cohort"`` still build: they serve the same views.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import redis
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import ClientDisconnected, HTTPException

from ..report.cohort import (
    CohortReport,
    CohortRequest,
    get_cohort_cell,
    get_cohort_row,
)
from ..report.events import (
    MAX_PAGE_SIZE,
    EventHistory,
    EventSet,
    FieldError,
    UsersPage,
    close_event_names,
    count_events,
    event_history,
    get_event_data,
    list_event_names,
    period_of,
    unknown_event_message,
    validate_page_size,
    validate_time_group,
)
from ..report.funnel import Funnel, FunnelRequest
from ..report.lifecycle import get_lifecycle
from ..report.stickiness import get_stickiness
from ..state import current_state
from ..store.idmap import MAX_ID_LENGTH, shown
from ..store.layout import (
    FIRST_MARK_TIME,
    LAST_MARK_TIME,
    TIME_GROUPS,
    Period,
    Unit,
    to_utc,
    unit_of_time_group,
    validate_event_name,
)
from .chart import bar_chart, funnel_chart, stacked_bar_chart, stickiness_chart

logger = logging.getLogger("flask_bitmapist.dashboard")

blueprint = Blueprint(
    "bitmapist",
    __name__,
    template_folder="templates",
    static_folder="static",
)

# A page lists at most this many events; the filter narrows a longer list.
MAX_LISTED_EVENTS = 2000
MAX_BODY_BYTES = 64 * 1024
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_FORMATS = ("html", "json", "csv")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_CROSS_SITE_REFUSED = (
    "The dashboard answers only requests from its own site; "
    "open it from its address or a bookmark."
)
_CLOSED = "The dashboard is closed: see BITMAPIST_DASHBOARD_ACCESS."


@blueprint.before_request
def _guard() -> Any:
    """Answer 403 to a request from another site, and unless the dashboard is
    open to this request."""
    # Browsers say in Sec-Fetch-Site where a request comes from: another
    # site's form, link or script must not reach the dashboard with an
    # admin's cookies. The static files too: no other site needs them, and a
    # rule without exceptions is simpler to state and to check. Browsers
    # without the header still meet the JSON-only cohort POST.
    if request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
        return _forbidden(_CROSS_SITE_REFUSED, cross_site=True)
    # The static files stay served while closed: the 403 page uses them.
    if request.endpoint == "bitmapist.static" or _access_granted():
        return None
    return _forbidden(_CLOSED, cross_site=False)


def _forbidden(message: str, cross_site: bool) -> tuple[Any, int]:
    if _wants_json():
        return jsonify(error=message), 403
    return render_template("bitmapist/forbidden.html", cross_site=cross_site), 403


def _access_granted() -> bool:
    # A configured access callable decides alone, also in debug and testing
    # mode, so that an app can test the rule it ships with.
    state = current_state()
    access = state.settings.dashboard_access if state else None
    if access is None:
        return bool(current_app.debug or current_app.testing)
    try:
        return access() is True
    except Exception:
        logger.exception("BITMAPIST_DASHBOARD_ACCESS raised; access denied.")
        return False


@blueprint.after_request
def _secure(response: Response) -> Response:
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "bitmapist.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.errorhandler(redis.RedisError)
def _store_unavailable(error: redis.RedisError) -> tuple[Any, int]:
    logger.warning("Dashboard: analytics store unavailable: %s", error)
    message = "analytics store unavailable"
    if _wants_json():
        return jsonify(error=message), 503
    return render_template("bitmapist/unavailable.html", message=message), 503


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    if _wants_json():
        return jsonify(error=error.description), error.code
    return error


def _wants_json() -> bool:
    return request.method == "POST" or request.args.get("format") in ("json", "csv")


@blueprint.route("/")
def overview() -> str:
    """Every event with its users today, this week, this month and this year."""
    prefix = request.args.get("prefix", "")
    if prefix and not _is_event_name(prefix):
        abort(400, "prefix must be the start of an event name.")
    names = list_event_names(prefix)
    listed = names[:MAX_LISTED_EVENTS]
    state = current_state()
    return render_template(
        "bitmapist/overview.html",
        counts=count_events(listed),
        hidden=len(names) - len(listed),
        prefix=prefix,
        stats=state.writer.stats() if state else None,
    )


def _is_event_name(prefix: str) -> bool:
    try:
        validate_event_name(prefix)
    except ValueError:
        return False
    return True


#: The days the event page's lifecycle chart spans: as many as its daily one.
LIFECYCLE_DAYS = 30


@blueprint.route("/event/<path:name>")
def event(name: str) -> Any:
    """An event's daily counts over 30 days as a chart, its weekly and
    monthly counts, its lifecycle over the 30 days and its stickiness this
    week and this month; 404 with the names close to it for an unknown
    event."""
    if not _is_event_name(name):
        abort(404, "There is no event of that name.")
    # One time for every query of the page, so that its numbers agree at
    # midnight too.
    now = datetime.now(timezone.utc)
    history = event_history(name, now)
    # Listing the event names costs a SCAN of every key, so only an event
    # without a count in the periods shown pays it: one with older data still
    # exists, and shows its zeros.
    if not _has_counts(history):
        names = list_event_names()
        if name not in names:
            return _unknown_event(name, names)
    chart = bar_chart(
        [(start.date().isoformat(), count) for start, count in history.days]
    )
    lifecycle = get_lifecycle(name, "days", LIFECYCLE_DAYS, now)
    lifecycle_chart = stacked_bar_chart(
        [row.date.date().isoformat() for row in lifecycle],
        above=[
            (series, [getattr(row, series) for row in lifecycle])
            for series in ("new", "returning", "resurrecting")
        ],
        below=[("dormant", [row.dormant for row in lifecycle])],
    )
    stickiness = [_stickiness(name, "week", now), _stickiness(name, "month", now)]
    return render_template(
        "bitmapist/event.html",
        name=name,
        history=history,
        chart=chart,
        lifecycle=lifecycle,
        lifecycle_chart=lifecycle_chart,
        stickiness=stickiness,
    )


def _stickiness(name: str, unit: Unit, now: datetime) -> dict[str, Any]:
    """The event page's stickiness of ``name`` in the week or month of
    ``now``: its period, its counts (index 0: the users of exactly 1 day) and
    their chart."""
    counts = get_stickiness(name, f"{unit}s", now)
    return {
        "period": Period.of(unit, now),
        "counts": counts,
        "chart": stickiness_chart(counts),
    }


def _has_counts(history: EventHistory) -> bool:
    return any(
        count
        for series in (history.days, history.weeks, history.months)
        for _, count in series
    )


def _unknown_event(name: str, names: list[str]) -> tuple[Any, int]:
    """404 for an event without keys, with up to 3 close names (as ``flask
    bitmapist cohort`` suggests them)."""
    close = close_event_names(name, names)
    if _wants_json():
        return jsonify(error=unknown_event_message(name, close)), 404
    return render_template("bitmapist/unknown_event.html", name=name, close=close), 404


@blueprint.errorhandler(FieldError)
def _bad_field(error: FieldError) -> tuple[Response, int]:
    return jsonify(error=str(error), field=error.field), 400


def _requested_format() -> str:
    fmt = request.args.get("format", "html")
    if fmt not in _FORMATS:
        raise FieldError("format", "must be html, json or csv.")
    return fmt


@blueprint.route("/cohort", methods=["GET"])
def cohort_page() -> Any:
    """The cohort form; with the fields in the query string, also the heatmap
    (or, with ``format=json`` or ``format=csv``, the data alone, and bad
    input as a JSON 400)."""
    fmt = _requested_format()
    if fmt != "html":
        return _formatted(CohortRequest.from_query(request.args).run(), fmt)
    report = error = None
    if "primary_event" in request.args:
        try:
            report = CohortRequest.from_query(request.args).run()
        except FieldError as field_error:
            error = field_error
    return render_template(
        "bitmapist/cohort.html",
        event_names=list_event_names()[:MAX_LISTED_EVENTS],
        time_groups=TIME_GROUPS,
        report=report,
        error=error,
        form=request.args,
    ), (400 if error else 200)


@blueprint.route("/cohort", methods=["POST"])
def cohort_api() -> Any:
    """The heatmap of the JSON body's cohort, as an HTML fragment; with
    ``?format=json`` the data, with ``?format=csv`` a CSV download.

    Bad input answers 400 with ``{"error": ..., "field": ...}``.
    """
    # JSON only: a page of another site can send a form's text/plain or
    # urlencoded body with the user's cookies, but not application/json
    # without a CORS preflight, which the dashboard never grants.
    if request.mimetype != "application/json":
        got = request.mimetype[:100] or "none"
        response = jsonify(error=f"Content-Type must be application/json, got {got}.")
        response.headers["Accept-Post"] = "application/json"
        return response, 415
    fmt = _requested_format()
    raw = _read_body()
    if len(raw) > MAX_BODY_BYTES:
        raise FieldError("body", "is larger than 64 KiB.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise FieldError("body", "is not valid JSON.") from None
    return _formatted(CohortRequest.from_json(body).run(), fmt)


def _read_body() -> bytes:
    """The body, up to one byte past the limit, so a body of any size costs at
    most that.

    A read may return less than asked (a socket hands over what has come), so
    it reads until the limit or the end. A body that ends before its
    Content-Length is a 400, not a truncated body taken for a whole one.
    """
    raw = bytearray()
    try:
        while len(raw) <= MAX_BODY_BYTES:
            chunk = request.stream.read(MAX_BODY_BYTES + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    except ClientDisconnected:
        raise FieldError("body", "ended before its Content-Length.") from None
    return bytes(raw)


@blueprint.route("/cohort", methods=["GET", "POST"], endpoint="cohort")
def cohort_either() -> Any:
    """0.1.x's ``bitmapist.cohort`` endpoint, for ``url_for``: the page on GET,
    the API on POST. Requests to ``/cohort`` reach the two views directly."""
    return cohort_api() if request.method == "POST" else cohort_page()


# 0.1.x's other endpoints: "/" was "index", and "/events" listed every event
# with its counts, which the overview does.
blueprint.add_url_rule("/", endpoint="index", view_func=overview)
blueprint.add_url_rule("/events", endpoint="events", view_func=overview)


def _formatted(report: CohortReport, fmt: str) -> Any:
    if fmt == "json":
        return jsonify(report.to_json())
    if fmt == "csv":
        request_ = report.request
        # The modes, when not the defaults, tell the downloads apart.
        modes = [
            mode
            for mode, default in (
                (request_.cohort, "recurring"),
                (request_.retention, "on"),
            )
            if mode != default
        ]
        name = _UNSAFE_FILENAME_CHARS.sub(
            "-",
            "-".join(
                ["cohort", request_.primary_event, request_.secondary_event, *modes]
            ),
        )[:120]
        return Response(
            report.to_csv(),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return render_template("bitmapist/_heatmap.html", report=report)


# Funnels


@blueprint.route("/funnel")
def funnel_page() -> Any:
    """The funnel form; with ``steps`` in the query string, also the funnel's
    chart and tables (or, with ``format=json`` or ``format=csv``, the data
    alone, and bad input as a JSON 400).

    The query string holds :func:`~flask_bitmapist.report.funnel.get_funnel`'s
    arguments: ``steps`` repeated, ``time_group``, ``num_periods`` and
    ``within``. A step that names no event in the store is a bad field,
    ``steps[i]``, with the names close to it.
    """
    fmt = _requested_format()
    if fmt != "html":
        return _formatted_funnel(_funnel(FunnelRequest.from_query(request.args)), fmt)
    # The form's pickers list the events anyway; the check of the steps
    # reuses that list rather than walk the keys again.
    names = list_event_names()
    funnel_request = funnel = error = None
    if "steps" in request.args:
        try:
            funnel_request = FunnelRequest.from_query(request.args)
            funnel = _funnel(funnel_request, names)
        except FieldError as field_error:
            error = field_error
    result: dict[str, Any] = {}
    if funnel_request and funnel:
        unit = unit_of_time_group(funnel.time_group)
        result = {
            "chart": funnel_chart(list(zip(funnel.steps, funnel.counts, strict=True))),
            "periods": [Period.of(unit, start).label for start in funnel.dates],
            "query": funnel_request.to_query(),
        }
    return render_template(
        "bitmapist/funnel.html",
        event_names=names[:MAX_LISTED_EVENTS],
        time_groups=TIME_GROUPS,
        funnel=funnel,
        error=error,
        form=request.args,
        # A fresh form offers two steps, the fewest a funnel has.
        steps=[step for step in request.args.getlist("steps") if step] or ["", ""],
        **result,
    ), (400 if error else 200)


def _funnel(funnel_request: FunnelRequest, names: list[str] | None = None) -> Funnel:
    """Run ``funnel_request``, and refuse a step that names no event.

    Listing the event names costs a SCAN of every key, so, as on the event
    page, only a funnel with a step without users pays it (unless the caller
    has listed them, in ``names``): a step that some user completed exists.

    :raises FieldError: ``steps[i]`` for the first unknown step, with the
        names close to it.
    """
    funnel = funnel_request.run()
    if all(funnel.counts):
        return funnel
    if names is None:
        names = list_event_names()
    known = set(names)
    for index, step in enumerate(funnel.steps):
        if step not in known:
            raise FieldError(
                f"steps[{index}]",
                unknown_event_message(step, close_event_names(step, names)),
            )
    return funnel


def _formatted_funnel(funnel: Funnel, fmt: str) -> Response:
    if fmt == "json":
        return jsonify(funnel.to_json())
    name = _UNSAFE_FILENAME_CHARS.sub("-", "-".join(["funnel", *funnel.steps]))[:120]
    return Response(
        funnel.to_csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


# The users behind a number

#: Users per page of the users pages, unless ``limit`` asks for another.
USERS_PER_PAGE = 100
# Rows of the CSV per chunk of its streamed body.
_CSV_ROWS_PER_CHUNK = 1000
# The days a users page takes: from the epoch, so that a cohort's earliest row
# (366 periods back) stays a date, to the last day a mark may have (so that
# a first-time row's history stays within the years marks may have).
_FIRST_DAY = FIRST_MARK_TIME.date()
_LAST_DAY = (LAST_MARK_TIME - timedelta(days=1)).date()
_DAY_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


# Under /users/, not /event/<name>/users: event names may hold "/".
@blueprint.route("/users/event/<path:name>")
def event_users(name: str) -> Any:
    """The users who did event ``name`` in a period: ``time_group`` (days,
    weeks, months or years; default days) and ``date`` (a day in the period,
    YYYY-MM-DD; default today, UTC), :data:`USERS_PER_PAGE` a page after the
    user ``after``, or all of them with ``format=csv``.

    Bad input answers 400 naming the field; an unknown event 404.
    """
    if not _is_event_name(name):
        abort(404, "There is no event of that name.")
    try:
        fmt = _requested_format()
        time_group = validate_time_group(request.args.get("time_group", "days"))
        when = to_utc(_day_field())
        limit, after = _paging_fields(fmt)
        users = get_event_data(name, time_group, when)
        count = len(users)
        # As the event page: only an event without users here pays the SCAN.
        if not count:
            names = list_event_names()
            if name not in names:
                return _unknown_event(name, names)
        period = period_of(time_group, when)
        query = [("time_group", time_group), ("date", period.start.date().isoformat())]
        if fmt == "csv":
            return _users_csv(users, f"users-{name}-{period.label}")
        page = users.page(limit, after)
    except FieldError as error:
        return _users_bad_field(error)
    if fmt == "json":
        return jsonify(
            event=name,
            time_group=time_group,
            period=period.label,
            count=count,
            users=page.users,
            next_after=page.next_after,
        )
    return render_template(
        "bitmapist/event_users.html",
        name=name,
        period=period,
        count=count,
        page=page,
        links=_users_links(url_for("bitmapist.event_users", name=name), query, page),
        back=url_for("bitmapist.event", name=name),
    )


@blueprint.route("/users/cohort")
def cohort_users() -> Any:
    """The users of a cohort's cell: the cohort's query (as ``/cohort``
    takes it), ``row`` and ``column`` (from 0, as in the heatmap), and
    ``date``, a day in the last row's period (default today, UTC); paged
    and downloaded as :func:`event_users`. Without ``column``, the users of
    the row's total (those of ``get_cohort_row``: a first-time row's are not
    all the users of the event's page).

    Bad input answers 400 naming the field.
    """
    try:
        fmt = _requested_format()
        cohort = CohortRequest.from_query(request.args)
        row = _index_field("row")
        column = _index_field("column") if "column" in request.args else None
        when = to_utc(_day_field())
        limit, after = _paging_fields(fmt)
        if column is None:
            users = get_cohort_row(
                cohort.primary_event,
                cohort.time_group,
                cohort.num_rows,
                now=when,
                row=row,
                cohort=cohort.cohort,
            )
        else:
            users = get_cohort_cell(
                cohort.primary_event,
                cohort.secondary_event,
                [{"name": name, "op": op} for name, op in cohort.additional_events],
                cohort.time_group,
                cohort.num_rows,
                cohort.num_cols,
                with_replacement=cohort.with_replacement,
                now=when,
                row=row,
                column=column,
                cohort=cohort.cohort,
                retention=cohort.retention,
            )
        last = period_of(cohort.time_group, when)
        row_period = last.shift(row - (cohort.num_rows - 1))
        query = [
            *cohort.to_query(),
            ("date", last.start.date().isoformat()),
            ("row", str(row)),
        ]
        if column is not None:
            query.append(("column", str(column)))
        if fmt == "csv":
            cell = "" if column is None else f"-plus-{column}"
            return _users_csv(
                users,
                f"users-cohort-{cohort.primary_event}-{cohort.secondary_event}"
                f"-{row_period.label}{cell}",
            )
        count = len(users)
        page = users.page(limit, after)
    except FieldError as error:
        return _users_bad_field(error)
    if fmt == "json":
        return jsonify(
            request=cohort.to_json(),
            date=last.start.date().isoformat(),
            row=row,
            column=column,
            period=row_period.label,
            count=count,
            users=page.users,
            next_after=page.next_after,
        )
    return render_template(
        "bitmapist/cohort_users.html",
        cohort=cohort,
        row=row,
        column=column,
        row_period=row_period,
        cell_period=None if column is None else row_period.shift(column),
        earlier=(
            None
            if column is None
            or cohort.with_replacement
            or cohort.retention == "on_or_after"
            or column == 0
            else (row_period, row_period.shift(column - 1))
        ),
        count=count,
        page=page,
        links=_users_links(url_for("bitmapist.cohort_users"), query, page),
        back=f"{url_for('bitmapist.cohort_page')}?{urlencode(cohort.to_query())}",
    )


def _users_bad_field(error: FieldError) -> tuple[Any, int]:
    """400 naming the field: JSON for the data formats (as the cohort API),
    else a page that says it."""
    if _wants_json():
        return _bad_field(error)
    return render_template("bitmapist/bad_request.html", error=error), 400


def _day_field() -> datetime | None:
    """The ``date`` argument as midnight UTC, or ``None`` (now) without one."""
    text = request.args.get("date")
    if text is None:
        return None
    try:
        # fromisoformat alone also takes 20240105 and 2024-W01-5.
        day = date.fromisoformat(text) if _DAY_TEXT.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None or not _FIRST_DAY <= day <= _LAST_DAY:
        raise FieldError(
            "date",
            f"must be a day from {_FIRST_DAY} to {_LAST_DAY} as YYYY-MM-DD, "
            f"got {shown(text)}.",
        )
    return datetime.combine(day, time.min, timezone.utc)


def _index_field(name: str) -> int:
    """A required ``row`` or ``column``: digits, checked against the cohort's
    size by :func:`get_cohort_cell`."""
    text = request.args.get(name)
    if text is None:
        raise FieldError(name, "is required.")
    # Six digits are more than any cohort has rows or columns.
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise FieldError(name, f"must be an int, got {shown(text)}.")
    return int(text)


def _paging_fields(fmt: str) -> tuple[int, str | None]:
    """``limit`` (default :data:`USERS_PER_PAGE`) and ``after``; neither
    applies to the CSV, which holds every user."""
    if fmt == "csv":
        for name in ("limit", "after"):
            if name in request.args:
                raise FieldError(
                    name, "does not apply to format=csv, which holds every user."
                )
        return USERS_PER_PAGE, None
    limit = USERS_PER_PAGE
    text = request.args.get("limit")
    if text is not None:
        if not (text.isascii() and text.isdigit()) or len(text) > 6:
            raise FieldError(
                "limit",
                f"must be an int from 1 to {MAX_PAGE_SIZE}, got {shown(text)}.",
            )
        limit = validate_page_size(int(text))
    after = request.args.get("after")
    # No id is longer, and a longer run of digits is no int Python parses.
    if after is not None and len(after) > MAX_ID_LENGTH:
        raise FieldError(
            "after", f"must be at most {MAX_ID_LENGTH} characters, got {len(after)}."
        )
    return limit, after


def _users_links(
    path: str, query: list[tuple[str, str]], page: UsersPage
) -> dict[str, str | None]:
    """The URLs of a users page's next and first pages, of its JSON and of
    the CSV of all its users: the canonical ``query`` of the users, with the
    page's ``limit`` kept (but in the CSV's)."""
    if "limit" in request.args:
        paged = [*query, ("limit", request.args["limit"])]
    else:
        paged = query
    return {
        "next": (
            None
            if page.next_after is None
            else f"{path}?{urlencode([*paged, ('after', str(page.next_after))])}"
        ),
        "first": f"{path}?{urlencode(paged)}" if "after" in request.args else None,
        "csv": f"{path}?{urlencode([*query, ('format', 'csv')])}",
        "json": f"{path}?{urlencode([*paged, ('format', 'json')])}",
    }


def _users_csv(users: EventSet, name: str) -> Response:
    """Every user of ``users`` as a CSV download: a ``user`` header, then one
    id a line, in the set's order, streamed as the set is read (with the id
    map, 1,000 ids a round trip).

    Ids are written as they are, quoted by the csv module where needed: an
    id that starts with ``=`` stays one, so that the file gives back every id
    exactly (see docs/dashboard.md on opening it in a spreadsheet).
    """
    ids = iter(users)
    # Read the set before the response starts, so that Redis being away is
    # still a 503; later failures can only cut the download short.
    first = list(itertools.islice(ids, 1))

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["user"])
        rows = itertools.chain(first, ids)
        while batch := list(itertools.islice(rows, _CSV_ROWS_PER_CHUNK)):
            writer.writerows([user] for user in batch)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        # The header alone, for a set without users.
        if buffer.tell():
            yield buffer.getvalue()

    filename = _UNSAFE_FILENAME_CHARS.sub("-", name)[:120]
    return Response(
        chunks(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )

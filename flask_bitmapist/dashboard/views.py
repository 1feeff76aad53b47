"""The dashboard's views, its access guard, security headers and error pages.

Besides its own endpoints, the blueprint keeps those of 0.1.x, so that an
app's ``url_for("bitmapist.index")``, ``"bitmapist.events"`` and
``"bitmapist.cohort"`` still build: they serve the same views.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import redis
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
)
from werkzeug.exceptions import ClientDisconnected, HTTPException

from ..report.cohort import CohortReport, CohortRequest
from ..report.events import (
    EventHistory,
    FieldError,
    close_event_names,
    count_events,
    event_history,
    list_event_names,
    unknown_event_message,
)
from ..state import current_state
from ..store.layout import TIME_GROUPS, validate_event_name
from .chart import bar_chart

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


@blueprint.route("/event/<path:name>")
def event(name: str) -> Any:
    """An event's daily counts over 30 days as a chart, and its weekly and
    monthly counts; 404 with the names close to it for an unknown event."""
    if not _is_event_name(name):
        abort(404, "There is no event of that name.")
    history = event_history(name)
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
    return render_template(
        "bitmapist/event.html", name=name, history=history, chart=chart
    )


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
        name = _UNSAFE_FILENAME_CHARS.sub(
            "-", f"cohort-{request_.primary_event}-{request_.secondary_event}"
        )[:120]
        return Response(
            report.to_csv(),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return render_template("bitmapist/_heatmap.html", report=report)

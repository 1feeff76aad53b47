"""The ``flask bitmapist`` command group.

Exit codes: 0 success; 1 a check found problems or a command failed (the
reason is one line on stderr, without a traceback: Redis unreachable, an
unknown event, a bad date, ...); 2 the command line itself is wrong (click).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timezone
from typing import IO, Any

import click
import redis
from click.core import ParameterSource
from flask import current_app
from flask.cli import AppGroup

from .config import KEY_LAYOUTS, ConfigError, Settings, mask_password
from .report.cohort import MAX_PERIODS, CohortReport, CohortRequest
from .report.events import (
    MAX_PAGE_SIZE,
    FieldError,
    close_event_names,
    count_events,
    get_event_data,
    get_users,
    list_event_names,
    unknown_event_message,
)
from .report.funnel import (
    MAX_FUNNEL_CELLS,
    MAX_STEPS,
    MIN_STEPS,
    Funnel,
    FunnelRequest,
    validate_steps,
)
from .report.lifecycle import get_lifecycle
from .report.stickiness import get_stickiness
from .state import AppState
from .store.backend import Store
from .store.client import create_client
from .store.idmap import id_map_of
from .store.layout import Period, layout_of, unit_of_time_group, validate_event_name
from .store.maintenance import (
    delete_keys,
    expired_keys,
    memory_by_event,
    memory_by_key,
)
from .store.migrate import event_periods, migrate
from .track.importer import Format, MalformedLine, import_marks, read_marks
from .track.seed import MAX_SEED_DAYS, MAX_SEED_USERS, seed_events


class _BitmapistGroup(AppGroup):
    """Turns a Redis error in any command into one line on stderr and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except redis.RedisError as error:
            raise click.ClickException(f"Redis is unreachable: {error}") from None


bitmapist_cli = _BitmapistGroup(
    "bitmapist", help="Inspect and maintain flask-bitmapist's analytics store."
)
rules_cli = AppGroup("rules", help="YAML tracking rules.")
bitmapist_cli.add_command(rules_cli)
ids_cli = AppGroup("ids", help="The id map (BITMAPIST_ID_MAP).")
bitmapist_cli.add_command(ids_cli)


def _state() -> AppState:
    state: AppState = current_app.extensions["bitmapist"].state()
    return state


@rules_cli.command("check")
def check_rules() -> None:
    """Check every rule against the app's routes; exit 1 if any cannot fire.

    Prints one sentence on stderr for each rule whose endpoint or path
    matches no route, whose endpoint has a URL rule but no view (and which
    endpoint requests to that URL reach instead), or whose methods never
    meet those of the routes it matches.
    """
    state = _state()
    rules = state.ruleset.rules
    problems = state.ruleset.problems(current_app)
    for problem in problems:
        click.echo(problem.message, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"All {len(rules)} rules can fire on the app's routes.")


@bitmapist_cli.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help="auto: by the file's suffix (.csv is CSV), else by its first character.",
)
@click.option(
    "--strict", is_flag=True, help="Stop at the first bad line, writing nothing."
)
@click.option("--track-hourly", is_flag=True, help="Also mark the hour keys.")
@click.option("--track-unique", is_flag=True, help="Also mark the unique keys.")
def import_command(
    source: IO[str], fmt: str, strict: bool, track_hourly: bool, track_unique: bool
) -> None:
    """Import events from SOURCE (a file, or - for stdin): JSON Lines of
    {"event", "user", "time"}, or CSV with those columns.

    Malformed lines are reported with their number and skipped. Exit codes:
    0 all imported; 1 lines were skipped, nothing could be imported (--strict),
    or Redis is unreachable.
    """
    state = _state()
    first_line = source.readline()
    lines = itertools.chain([first_line], source)
    chosen: Format = _detect_format(source, first_line) if fmt == "auto" else fmt  # type: ignore[assignment]
    size = _size(source)
    bar: Any = (
        click.progressbar(length=size, label="Importing", file=sys.stderr)
        if size
        else click.progressbar(lines, label="Importing", file=sys.stderr)
    )
    with bar:
        counted = _advancing(bar, lines) if size else bar
        marks = read_marks(
            counted,
            chosen,
            track_hourly,
            track_unique,
            max_user_id=state.settings.max_user_id,
            id_map=state.settings.id_map,
        )
        try:
            result = import_marks(state.store, marks, strict=strict)
        except MalformedLine as error:
            raise click.ClickException(
                f"{error}; nothing was imported (--strict)."
            ) from None
        except redis.RedisError as error:
            raise click.ClickException(f"Redis is unreachable: {error}") from None
    for line in result.skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(
        f"Imported {result.imported} events; skipped {len(result.skipped)} lines."
    )
    if result.skipped:
        raise SystemExit(1)


def _advancing(bar: Any, lines: Iterator[str]) -> Iterator[str]:
    """Yield ``lines``, moving ``bar`` by their length every 1000 lines."""
    pending = 0
    for number, line in enumerate(lines, 1):
        pending += len(line)
        if number % 1000 == 0:
            bar.update(pending)
            pending = 0
        yield line
    bar.update(pending)


def _size(source: IO[str]) -> int | None:
    try:
        return os.fstat(source.fileno()).st_size if source.seekable() else None
    except (OSError, ValueError):
        return None


def _detect_format(source: IO[str], first_line: str) -> Format:
    name = getattr(source, "name", "")
    if isinstance(name, str) and name.lower().endswith(".csv"):
        return "csv"
    if isinstance(name, str) and name.lower().endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


@bitmapist_cli.command("events")
@click.option("--prefix", default="", help="Only the events that start with it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def events_command(prefix: str, as_json: bool) -> None:
    """List the events with their users today, this ISO week, this month and
    this year (UTC)."""
    counts = count_events(list_event_names(prefix))
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"event": name, **vars(period_counts)}
                    for name, period_counts in counts.items()
                ],
                indent=2,
            )
        )
        return
    rows = [
        [name, str(c.day), str(c.week), str(c.month), str(c.year)]
        for name, c in counts.items()
    ]
    _print_table(["event", "today", "week", "month", "year"], rows)


class _ChainCommand(click.Command):
    """Keeps the order of ``--and`` and ``--or`` across both options, which
    click collects separately, since ``A --and B --or C`` differs from
    ``A --or C --and B``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        chain: list[dict[str, str]] = []
        tokens = iter(args)
        for token in tokens:
            if token == "--":
                break
            for op in ("and", "or"):
                if token == f"--{op}":
                    chain.append({"name": next(tokens, ""), "op": op})
                elif token.startswith(f"--{op}="):
                    chain.append({"name": token.split("=", 1)[1], "op": op})
        ctx.meta["bitmapist.chain"] = chain
        return super().parse_args(ctx, args)


@bitmapist_cli.command("cohort", cls=_ChainCommand)
@click.argument("primary")
@click.argument("secondary")
@click.option(
    "--and", "and_events", multiple=True, metavar="EVENT", help="AND an event."
)
@click.option("--or", "or_events", multiple=True, metavar="EVENT", help="OR an event.")
@click.option(
    "--time-group",
    type=click.Choice(["days", "weeks", "months", "years"]),
    default="days",
    show_default=True,
)
@click.option(
    "--rows", type=click.IntRange(1, MAX_PERIODS), default=10, show_default=True
)
@click.option(
    "--cols", type=click.IntRange(1, MAX_PERIODS), default=10, show_default=True
)
@click.option("--percent", is_flag=True, help="Cells as a percent of the row.")
@click.option(
    "--with-replacement", is_flag=True, help="Count users in every period they return."
)
@click.option(
    "--first-time",
    is_flag=True,
    help="Rows of the users who did PRIMARY for the first time in the store.",
)
@click.option(
    "--on-or-after",
    is_flag=True,
    help="Cells of the users who came back in the column's period or any later "
    "one (--with-replacement plays no part).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def cohort_command(
    primary: str,
    secondary: str,
    and_events: tuple[str, ...],
    or_events: tuple[str, ...],
    time_group: str,
    rows: int,
    cols: int,
    percent: bool,
    with_replacement: bool,
    first_time: bool,
    on_or_after: bool,
    fmt: str,
) -> None:
    """Print the cohort of PRIMARY and SECONDARY: the numbers of get_cohort.

    --and and --or chain more events to SECONDARY in the order given; each OR
    binds to the event before it. --first-time and --on-or-after are
    get_cohort's cohort="first_time" and retention="on_or_after"; the table
    starts with a line that says what it counts.
    """
    chain = click.get_current_context().meta["bitmapist.chain"]
    try:
        request = CohortRequest.from_json(
            {
                "primary_event": primary,
                "secondary_event": secondary,
                "additional_events": chain,
                "time_group": time_group,
                "num_rows": rows,
                "num_cols": cols,
                "as_percent": percent,
                "with_replacement": with_replacement,
                "cohort": "first_time" if first_time else "recurring",
                "retention": "on_or_after" if on_or_after else "on",
            }
        )
    except FieldError as error:
        raise click.ClickException(str(error)) from None
    chained = [name for name, _ in request.additional_events]
    _refuse_unknown_events([request.primary_event, request.secondary_event, *chained])
    report = request.run(now=_now())
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    elif fmt == "csv":
        click.echo(report.to_csv(), nl=False)
    else:
        _print_cohort(report)


def _print_cohort(report: CohortReport) -> None:
    request = report.request
    cells: Sequence[Sequence[float | int | None]] = (
        report.percentages if request.as_percent else report.cohort
    )
    averages = report.average_percentages if request.as_percent else report.averages

    def show(value: float | int | None) -> str:
        if value is None:
            return ""
        if request.as_percent:
            return f"{value:.1f}%"
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    header = ["period", "users", *map(report.column_label, range(request.num_cols))]
    rows = [
        [report.period_label(index), str(total), *map(show, row)]
        for index, (total, row) in enumerate(zip(report.row_totals, cells, strict=True))
    ]
    rows.append(["average", f"{report.users_average:.1f}", *map(show, averages)])
    rows.append(["total", str(report.users_total), *map(str, report.column_totals)])
    click.echo(report.description)
    _print_table(header, rows)


def _now() -> datetime:
    """The time of a report command: each passes it to every query it makes,
    so that its numbers and the periods it names agree at midnight too."""
    return datetime.now(timezone.utc)


def _refuse_unknown_events(names: Iterable[str]) -> None:
    """Exit 1 at the first of ``names`` that no key of the store holds, with
    the names close to it. Costs a walk of the keys with SCAN."""
    known = set(list_event_names())
    for name in names:
        if name not in known:
            raise click.ClickException(
                unknown_event_message(name, close_event_names(name, known))
            )


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [
        max(len(row[column]) for row in [header, *rows])
        for column in range(len(header))
    ]

    def line(cells: list[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0])]
            + [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        ).rstrip()

    click.echo(line(header))
    for row in rows:
        click.echo(line(row))


@bitmapist_cli.command("funnel")
@click.argument("steps", nargs=-1, required=True, metavar="STEP STEP...")
@click.option(
    "--per",
    "time_group",
    type=click.Choice(["days", "weeks", "months"]),
    default="days",
    show_default=True,
    help="The periods users enter in and complete steps in.",
)
@click.option(
    "--periods",
    type=click.IntRange(1, MAX_PERIODS),
    default=30,
    show_default=True,
    help="Entry periods, the last one today's.",
)
@click.option(
    "--within",
    type=click.IntRange(0, MAX_PERIODS),
    default=7,
    show_default=True,
    help="Periods after a user's entry period in which later steps count.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def funnel_command(
    steps: tuple[str, ...], time_group: str, periods: int, within: int, as_json: bool
) -> None:
    """Print the funnel of the STEPs (2 to 10 events, in order): the numbers
    of get_funnel.

    A user enters in the first of the --periods periods in which they did
    the first step; each later step counts in the first period, from the one
    of the step before up to --within periods after entry, in which they did
    it.
    Order is by period: steps done in the same period count as in order.
    Each step's users, their percent of the previous step's and of the
    first's, and how many the step lost.
    """
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise click.BadParameter(
            f"a funnel has {MIN_STEPS} to {MAX_STEPS} steps, got {len(steps)}.",
            param_hint="'STEP STEP...'",
        )
    cells = periods * (within + 1) * (len(steps) - 1)
    if cells > MAX_FUNNEL_CELLS:
        raise click.BadParameter(
            f"--periods x (--within + 1) x (steps - 1) must be at most "
            f"{MAX_FUNNEL_CELLS}, got {periods} x {within + 1} x "
            f"{len(steps) - 1} = {cells}.",
            param_hint="'--within'",
        )
    try:
        names = validate_steps(steps)
    except FieldError as error:
        raise click.ClickException(str(error)) from None
    _refuse_unknown_events(names)
    request = FunnelRequest(tuple(names), time_group, periods, within)
    funnel = request.run(now=_now())
    if as_json:
        click.echo(json.dumps(funnel.to_json(), indent=2))
        return
    _print_funnel(funnel)


def _print_funnel(funnel: Funnel) -> None:
    unit = unit_of_time_group(funnel.time_group)
    first, last = (Period.of(unit, funnel.dates[index]).label for index in (0, -1))
    entered = f"in {first}" if first == last else f"from {first} to {last}"
    if funnel.within:
        plural = unit if funnel.within == 1 else funnel.time_group
        window = f"within {funnel.within} {plural} of"
    else:
        window = "in"
    click.echo(
        f"Users who entered {entered} (UTC), and did each later step {window} "
        f"the {unit} they entered:"
    )

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}%"

    columns = zip(
        funnel.steps,
        funnel.counts,
        funnel.conversion_from_previous,
        funnel.conversion_from_first,
        funnel.drop_off,
        strict=True,
    )
    _print_table(
        ["step", "users", "of previous", "of step 1", "dropped off"],
        [
            [
                f"{number}. {step}",
                str(count),
                percent(previous),
                percent(of_first),
                str(lost),
            ]
            for number, (step, count, previous, of_first, lost) in enumerate(columns, 1)
        ],
    )


@bitmapist_cli.command("lifecycle")
@click.argument("event")
@click.option(
    "--per",
    "time_group",
    type=click.Choice(["days", "weeks", "months", "years"]),
    default="days",
    show_default=True,
)
@click.option(
    "--periods",
    type=click.IntRange(1, MAX_PERIODS),
    default=30,
    show_default=True,
    help="Periods, the last one today's.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def lifecycle_command(event: str, time_group: str, periods: int, as_json: bool) -> None:
    """Print EVENT's lifecycle: the numbers of get_lifecycle, a period a line,
    oldest first.

    Each period's users split into new (their first period with EVENT in the
    store), returning (also in the previous period) and resurrecting (not in
    the previous period, but in an earlier one); dormant users did EVENT in
    the previous period but not in this one, a positive count.
    """
    _refuse_unknown_event_name(event)
    rows = get_lifecycle(event, time_group, periods, now=_now())
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    unit = unit_of_time_group(time_group)
    _print_table(
        ["period", "new", "returning", "resurrecting", "dormant"],
        [
            [
                Period.of(unit, row.date).label,
                *map(str, (row.new, row.returning, row.resurrecting, row.dormant)),
            ]
            for row in rows
        ],
    )


@bitmapist_cli.command("stickiness")
@click.argument("event")
@click.option(
    "--per",
    "time_group",
    type=click.Choice(["weeks", "months"]),
    default="weeks",
    show_default=True,
    help="This ISO week's days, or this month's.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def stickiness_command(event: str, time_group: str, as_json: bool) -> None:
    """Print how many users did EVENT on exactly 1, 2, ... days of this ISO
    week or this month (UTC): the numbers of get_stickiness, a line each."""
    _refuse_unknown_event_name(event)
    now = _now()
    counts = get_stickiness(event, time_group, now=now)
    period = Period.of(unit_of_time_group(time_group), now)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "event": event,
                    "time_group": time_group,
                    "period": period.label,
                    "counts": counts,
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"Users of {event} by the number of days of {period.label} (UTC) "
        "they did it on:"
    )
    for days, users in enumerate(counts, 1):
        click.echo(f"{days} {'day' if days == 1 else 'days'}: {users}")


def _refuse_unknown_event_name(event: str) -> None:
    """Exit 1 unless ``event`` is a valid event name that the store holds."""
    try:
        validate_event_name(event)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    _refuse_unknown_events([event])


@bitmapist_cli.command("users")
@click.argument("event")
@click.option(
    "--period",
    "label",
    metavar="LABEL",
    help="A day (2026-11-24), an ISO week (2026-W48), a month (2026-11) or a "
    "year (2026), in UTC; default today.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE_SIZE),
    default=100,
    show_default=True,
    help="Users per page.",
)
@click.option("--after", metavar="ID", help="Print the page after this user.")
@click.option("--all", "every", is_flag=True, help="Print every user, not a page.")
def users_command(
    event: str, label: str | None, limit: int, after: str | None, every: bool
) -> None:
    """Print the users who did EVENT in a period, one id per line, in
    ascending order: ints, or with the id map canonical ids, in the order
    of their bit offsets.

    A page of --limit users at a time: when more follow, a line on stderr
    says which --after gives the next page. --all prints them all.
    """
    limit_given = (
        click.get_current_context().get_parameter_source("limit")
        is not ParameterSource.DEFAULT
    )
    if every and (limit_given or after is not None):
        raise click.UsageError(
            "--all prints every user: it takes neither --limit nor --after."
        )
    try:
        validate_event_name(event)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    time_group, start = _parse_period(label)
    _refuse_unknown_events([event])
    if every:
        _echo_lines(get_event_data(event, time_group, start))
        return
    try:
        page = get_users(event, time_group, start, limit=limit, after=after)
    except FieldError as error:
        raise click.ClickException(f"--{error}") from None
    _echo_lines(page.users)
    if page.next_after is not None:
        click.echo(
            "More users follow: run again with --after "
            f"{shlex.quote(str(page.next_after))} for the next page.",
            err=True,
        )


def _parse_period(label: str | None) -> tuple[str, datetime]:
    """The time group and the first instant (UTC) of the period ``label``
    names as :attr:`Period.label` spells it; today without a label."""
    if label is None:
        return "days", Period.of("day", datetime.now(timezone.utc)).start
    try:
        period = Period.from_label(label)
    except ValueError:
        raise click.ClickException(
            "--period must be a day (2026-11-24), an ISO week (2026-W48), a "
            f"month (2026-11) or a year (2026), got {label!r}."
        ) from None
    return f"{period.unit}s", period.start


def _echo_lines(users: Iterable[int | str]) -> None:
    """Print one user per line, a thousand lines per write: click.echo
    flushes at every call, which would cost a system call per user of
    --all."""
    remaining = iter(users)
    while chunk := list(itertools.islice(remaining, 1000)):
        click.echo("\n".join(map(str, chunk)))


@bitmapist_cli.command("seed")
@click.option(
    "--users", type=click.IntRange(1, MAX_SEED_USERS), default=2000, show_default=True
)
@click.option(
    "--days", type=click.IntRange(1, MAX_SEED_DAYS), default=90, show_default=True
)
@click.option("--seed", "seed_number", type=int, default=0, show_default=True)
@click.option(
    "--yes", is_flag=True, help="Do not ask before adding to a store with events."
)
def seed_command(users: int, days: int, seed_number: int, yes: bool) -> None:
    """Fill the store with realistic fake data: USERS users who sign up over
    the last DAYS days and come back less and less. For demos and trials:
    never run it on a production store."""
    state = _state()
    if users > state.settings.max_user_id:
        raise click.ClickException(
            f"--users {users} needs ids up to {users}, above BITMAPIST_MAX_USER_ID "
            f"({state.settings.max_user_id})."
        )
    if (
        not yes
        and list_event_names()
        and not click.confirm("The store already has events; add fake ones to them?")
    ):
        raise click.ClickException("Nothing was seeded.")
    with click.progressbar(length=users, label="Seeding", file=sys.stderr) as bar:
        written = seed_events(
            state.store, users, days, seed_number, progress=bar.update
        )
    click.echo(f"Seeded {written} events of {users} users over {days} days.")


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.ClickException(
            f"--before must be a date as YYYY-MM-DD, got {value!r}."
        ) from None


@bitmapist_cli.command("purge")
@click.option("--before", "before_text", required=True, metavar="YYYY-MM-DD")
@click.option("--dry-run", is_flag=True, help="List what would go, delete nothing.")
def purge_command(before_text: str, dry_run: bool) -> None:
    """Delete the keys of the periods (hours, days, ISO weeks, months) that end
    on or before the start of DATE (UTC), to reclaim their memory. Unique keys
    and keys of periods that reach into DATE stay. Uses SCAN, never KEYS."""
    before = datetime.combine(
        _parse_date(before_text), datetime.min.time(), timezone.utc
    )
    store = _state().store
    client = store.client
    keys = sorted(expired_keys(store, before))
    sizes = memory_by_key(client, keys) if dry_run else {}
    if dry_run:
        for key in keys:
            click.echo(f"{key}\t{sizes[key]}")
        total = sum(sizes.values())
        click.echo(f"Would delete {len(keys)} keys holding {_bytes(total)}.", err=True)
        return
    deleted = delete_keys(client, keys)
    click.echo(f"Deleted {deleted} keys of periods that ended before {before_text}.")


@bitmapist_cli.command("migrate")
@click.option(
    "--to", "url", required=True, metavar="URL", help="The target store's URL."
)
@click.option(
    "--layout",
    type=click.Choice(KEY_LAYOUTS),
    help="The target's key layout; default sharded on a cluster, else bitmapist.",
)
@click.option(
    "--shard-bits",
    type=int,
    help="The target's shard size in bits; default BITMAPIST_SHARD_BITS.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be copied.")
def migrate_command(
    url: str, layout: str | None, shard_bits: int | None, dry_run: bool
) -> None:
    """Copy every event of the app's store into the store at URL, in its
    layout: from one node to a Redis Cluster and back, or between key
    layouts. Bits are ORed into the target, so running it again (after an
    interruption, or to catch up) converges; TTLs are copied. Then every
    event period is read from both stores, and those whose users are not
    all in the target are listed (exit 1); the target may hold more, marks
    the app wrote there. With BITMAPIST_ID_MAP, each user keeps its id and
    gets a dense id from the target's map. Point BITMAPIST_REDIS_URL at the
    target when it is done."""
    state = _state()
    config: dict[str, Any] = {"BITMAPIST_REDIS_URL": url}
    if layout is not None:
        config["BITMAPIST_KEY_LAYOUT"] = layout
    config["BITMAPIST_SHARD_BITS"] = (
        state.settings.shard_bits if shard_bits is None else shard_bits
    )
    config["BITMAPIST_ID_MAP"] = state.settings.id_map
    config["BITMAPIST_MAX_USER_ID"] = state.settings.max_user_id
    try:
        settings = Settings.from_mapping(config, testing=False)
    except ConfigError as error:
        raise click.ClickException(f"--to, --layout or --shard-bits: {error}") from None
    target_layout = layout_of(settings)
    target = Store(
        create_client(
            settings.redis_url,
            instance_path=current_app.instance_path,
            socket_timeout=_MIGRATE_TIMEOUT,
        ),
        target_layout,
        id_map_of(settings, target_layout),
    )
    where = f"{mask_password(settings.redis_url)} ({target.layout!r})"
    periods = event_periods(state.store)
    if dry_run:
        click.echo(
            f"Would copy {len(periods)} event periods "
            f"({sum(periods.values())} keys) into {where}."
        )
        return
    with click.progressbar(
        length=len(periods), label="Copying", file=sys.stderr
    ) as bar:
        result = migrate(state.store, target, progress=bar.update)
    if result.unmapped:
        click.echo(
            f"{result.unmapped} users here have bits but no id in the id map "
            "(marked without BITMAPIST_ID_MAP): they were not copied.",
            err=True,
        )
    for mismatch in result.mismatches:
        click.echo(
            f"{mismatch.event_name} {mismatch.period.label}: {mismatch.missing} "
            f"of its {mismatch.source} users here are not there "
            f"({mismatch.target} there)",
            err=True,
        )
    summary = (
        f"Copied {result.periods} event periods ({result.source_keys} keys) "
        f"into {result.target_keys} keys of {where}"
    )
    if result.mismatches:
        raise click.ClickException(
            f"{summary}, but {len(result.mismatches)} event periods lack "
            "users of this store there (listed above): marks written here "
            "meanwhile; run it again."
        )
    click.echo(f"{summary}; every user of every event period is there.")


# A copy is a maintenance job, not a request: a slow node may take its time.
_MIGRATE_TIMEOUT = 10.0


@bitmapist_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def stats_command(as_json: bool) -> None:
    """Memory and keys per event, and the writer's counters."""
    state = _state()
    usage = memory_by_event(state.store)
    writer = state.writer.stats()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "events": [
                        {"event": name, "keys": keys, "bytes": size}
                        for name, (keys, size) in usage.items()
                    ],
                    "writer": {
                        **vars(writer),
                        "last_error_at": writer.last_error_at.isoformat()
                        if writer.last_error_at
                        else None,
                    },
                },
                indent=2,
            )
        )
        return
    _print_table(
        ["event", "keys", "memory"],
        [[name, str(keys), _bytes(size)] for name, (keys, size) in usage.items()],
    )
    total_keys = sum(keys for keys, _ in usage.values())
    total_bytes = sum(size for _, size in usage.values())
    click.echo(f"{len(usage)} events, {total_keys} keys, {_bytes(total_bytes)}.")
    click.echo(
        f"Writer ({writer.mode}): queued {writer.queued}, "
        f"written {writer.written}, retried {writer.retried}, "
        f"dropped {writer.dropped}, pending {writer.pending}; "
        f"last error: {writer.last_error or 'none'}"
        + (f" at {writer.last_error_at.isoformat()}" if writer.last_error_at else "")
    )


@ids_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def ids_stats_command(as_json: bool) -> None:
    """How many ids the id map holds, the memory of its keys (MEMORY USAGE)
    and its buckets. Exit 1 when the app maps no ids (BITMAPIST_ID_MAP is
    off)."""
    state = _state()
    id_map = state.store.id_map
    if id_map is None:
        raise click.ClickException(
            "The id map is off: user ids are the ints from 0 to "
            f"{state.settings.max_user_id} (BITMAPIST_MAX_USER_ID). Set "
            "BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int."
        )
    stats = id_map.stats(state.store)
    per_id = stats.bytes_per_id
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ids": stats.ids,
                    "bytes": stats.memory,
                    "bytes_per_id": per_id,
                    "buckets": stats.buckets,
                },
                indent=2,
            )
        )
        return
    click.echo(f"ids mapped:    {stats.ids}")
    click.echo(f"memory:        {stats.memory} bytes ({_bytes(stats.memory)})")
    click.echo(f"bytes per id:  {'-' if per_id is None else f'{per_id:.1f}'}")
    click.echo(f"buckets:       {stats.buckets}")


def _bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    amount = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024 or unit == "GiB":
            break
    return f"{amount:.1f} {unit}"

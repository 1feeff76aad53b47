"""The ``flask bitmapist`` command group.

Exit codes: 0 success; 1 a check found problems or a command failed (the
reason is one line on stderr); 2 the command line itself is wrong (click).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import click
import redis
from flask import current_app
from flask.cli import AppGroup

from .importer import Format, MalformedLine, import_marks, read_marks

bitmapist_cli = AppGroup("bitmapist", help="Inspect and maintain flask-bitmapist.")
rules_cli = AppGroup("rules", help="YAML tracking rules.")
bitmapist_cli.add_command(rules_cli)


@rules_cli.command("check")
def check_rules() -> None:
    """List the rules whose endpoint or path matches no route; exit 1 if any."""
    state = current_app.extensions["bitmapist"].state()
    rules = state.ruleset.rules
    unmatched = state.ruleset.unmatched(current_app)
    for rule in unmatched:
        target = " and ".join(
            f"{name} {value!r}"
            for name, value in (("endpoint", rule.endpoint), ("path", rule.path))
            if value is not None
        )
        click.echo(
            f"{rule.origin}: {rule.event!r} ({target}) matches no route.", err=True
        )
    if unmatched:
        raise SystemExit(1)
    click.echo(f"All {len(rules)} rules match a route.")


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
    state = current_app.extensions["bitmapist"].state()
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
        marks = read_marks(counted, chosen, track_hourly, track_unique)
        try:
            result = import_marks(state.client, marks, strict=strict)
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

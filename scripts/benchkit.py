"""What the benchmarks in scripts/ share: the Redis they measure on, and the
machine's load they report beside their figures."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis

from flask_bitmapist.testing import RedisProcess


@contextlib.contextmanager
def bench_redis(redis_url: str | None) -> Iterator[str]:
    """Yield ``redis_url``, or a private redis-server's when it is None, with
    the db emptied before and after."""
    private = None
    if redis_url is None:
        private = RedisProcess(Path(tempfile.mkdtemp(prefix="bench_")))
        private.start()
        redis_url = f"{private.url}/0"
    redis.Redis.from_url(redis_url).flushdb()
    try:
        yield redis_url
    finally:
        redis.Redis.from_url(redis_url).flushdb()
        if private is not None:
            private.stop()


def load_average() -> str:
    """The machine's load average over 1, 5 and 15 minutes, or "unknown"."""
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"

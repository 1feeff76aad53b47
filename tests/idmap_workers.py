"""The target of test_idmap's concurrency test: a process of its own (started
with ``spawn``, so importable by name) whose threads all mark the same ids at
once through ``write_marks`` on the store of an app with the id map."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timezone
from typing import Any

from flask import Flask

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.store.writer import Mark, write_marks

EVENT = "race"
WHEN = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
#: Marks per write_marks call: small enough that the threads' batches of new
#: ids interleave in Redis, large enough that the test stays quick.
BATCH = 1000


def mark_all(
    config: dict[str, Any],
    ids: list[str],
    seed: int,
    threads: int,
    barrier: Any,
) -> None:
    """Mark every one of ``ids`` (canonical ids) from each of ``threads``
    threads, each in its own shuffled order, all starting behind ``barrier``
    (a ``multiprocessing`` barrier shared with the other processes).

    The threads share the app's store, and so its id map and its cache, as
    an app's request threads do. A thread's error is raised once all have
    ended, so that the process exits with a non-zero code.

    :param config: the app's config (``BITMAPIST_*`` keys).
    :param seed: this process's seed for the threads' orders.
    """
    app = Flask("idmap-worker")
    app.config.update(config)
    FlaskBitmapist(app)
    store = app.extensions["bitmapist"].state(app).store
    errors: list[BaseException] = []

    def run(number: int) -> None:
        order = list(ids)
        random.Random(seed * 1000 + number).shuffle(order)
        known_shards: set[int] = set()
        try:
            barrier.wait(timeout=60)
            for start in range(0, len(order), BATCH):
                write_marks(
                    store,
                    [
                        Mark(EVENT, user_id, WHEN, False, False)
                        for user_id in order[start : start + BATCH]
                    ],
                    known_shards,
                )
        except BaseException as error:
            errors.append(error)
            # The others would wait for this thread at the barrier until it
            # times out.
            barrier.abort()

    workers = [
        threading.Thread(target=run, args=(number,)) for number in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]

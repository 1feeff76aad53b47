"""The one place that writes marks to Redis: a sync and a background writer.

Both send a batch of marks in one round trip, a script that runs the SETBITs
``bitmapist.mark_event`` would send. The sync writer does it before the call
returns. The background writer queues marks (with the time they
were made), and a daemon thread writes them in batches, retrying failed batches
with capped exponential backoff: SETBIT is idempotent, so a retry cannot
double count.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import NamedTuple, Protocol

import redis
from bitmapist import DayEvents, HourEvents, MonthEvents, UniqueEvents, WeekEvents

from .config import Settings

logger = logging.getLogger("flask_bitmapist")

#: How long interpreter exit waits for the background queue to drain.
EXIT_FLUSH_TIMEOUT = 5.0
#: The most marks sent in one script, so one batch cannot hold Redis for long.
MAX_BATCH = 10_000
_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 2.0


class Mark(NamedTuple):
    """One user event to set (``value=1``) or clear (``value=0``) in Redis."""

    event_name: str
    user_id: int
    when: datetime
    track_hourly: bool
    track_unique: bool
    value: int = 1


@dataclass(frozen=True)
class WriterStats:
    """Counters of one writer since it started (or since the process forked).

    :ivar mode: ``"sync"`` or ``"background"``.
    :ivar queued: marks accepted by the writer.
    :ivar written: marks confirmed written to Redis.
    :ivar retried: marks sent again after a failed batch.
    :ivar dropped: marks given up: the queue was full, a sync write failed,
        or Redis refused a background batch (a key of another type), or the
        batch failed for a reason other than Redis (logged with a traceback).
    :ivar pending: marks accepted but not yet written.
    :ivar last_error: the message of the last Redis error, if any.
    :ivar last_error_at: when that error happened (UTC).
    """

    mode: str
    queued: int = 0
    written: int = 0
    retried: int = 0
    dropped: int = 0
    pending: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None


class Writer(Protocol):
    """What every writer offers the rest of the extension."""

    def submit(self, mark: Mark) -> None: ...

    def submit_many(self, marks: Sequence[Mark]) -> int: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def stats(self) -> WriterStats: ...


def mark_keys(mark: Mark) -> list[str]:
    """The keys ``bitmapist.mark_event`` writes for ``mark``, from its own classes."""
    classes: list[
        type[MonthEvents]
        | type[WeekEvents]
        | type[DayEvents]
        | type[HourEvents]
        | type[UniqueEvents]
    ] = [MonthEvents, WeekEvents, DayEvents]
    if mark.track_hourly:
        classes.append(HourEvents)
    if mark.track_unique:
        classes.append(UniqueEvents)
    return [cls.from_date(mark.event_name, mark.when).redis_key for cls in classes]


# One EVAL per batch: every SETBIT of the batch runs in Redis with a single
# reply. Through a pipeline, packing the commands and parsing one reply per bit
# cost the writer thread about 9 us of CPU per mark (with redis-py's pure-Python
# parser), CPU that a host app's request threads pay for through the GIL; this
# way it is about 1 us (scripts/bench.py). The offsets of each key travel as one
# space-separated string, one for the bits to set and one for those to clear.
_SETBITS_SCRIPT = """
for index, key in ipairs(KEYS) do
    for offset in string.gmatch(ARGV[2 * index - 1], "%d+") do
        redis.call("SETBIT", key, offset, 1)
    end
    for offset in string.gmatch(ARGV[2 * index], "%d+") do
        redis.call("SETBIT", key, offset, 0)
    end
end
return #KEYS
"""


def write_marks(client: redis.Redis, marks: Iterable[Mark]) -> None:
    """Write ``marks`` to their bitmapist keys in one round trip.

    Within a batch the last mark of a (key, user) pair wins, and repeats of the
    same bit are sent once.

    :raises redis.ResponseError: when Redis rejects a write (a key holding
        another type); the bits before it in the batch are written.
    :raises redis.RedisError: when Redis cannot be reached.
    """
    bits_by_key: dict[str, dict[int, int]] = {}
    keys_cache: dict[tuple[str, int, int, int, bool, bool], list[str]] = {}
    for mark in marks:
        when = mark.when
        period = (
            mark.event_name,
            when.year,
            when.month * 100 + when.day,
            when.hour if mark.track_hourly else -1,
            mark.track_hourly,
            mark.track_unique,
        )
        keys = keys_cache.get(period)
        if keys is None:
            keys = keys_cache[period] = mark_keys(mark)
        for key in keys:
            bits = bits_by_key.get(key)
            if bits is None:
                bits = bits_by_key[key] = {}
            bits[mark.user_id] = mark.value
    if not bits_by_key:
        return
    offsets: list[str] = []
    for bits in bits_by_key.values():
        offsets.append(" ".join([str(user) for user, value in bits.items() if value]))
        offsets.append(
            " ".join([str(user) for user, value in bits.items() if not value])
        )
    client.eval(_SETBITS_SCRIPT, len(bits_by_key), *bits_by_key, *offsets)


class SyncWriter:
    """Writes each mark before :meth:`submit` returns.

    A Redis error is logged and counted as a dropped mark; with
    ``raise_errors`` it is raised to the caller too.
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._raise_errors = settings.raise_errors
        self._lock = threading.Lock()
        self._stats = WriterStats(mode="sync")

    def submit(self, mark: Mark) -> None:
        self.submit_many([mark])

    def submit_many(self, marks: Sequence[Mark]) -> int:
        """Write ``marks`` in one round trip.

        :returns: how many were accepted: all of them (a failed write is
            logged and counted as dropped).
        """
        try:
            write_marks(self._client, marks)
        except redis.RedisError as error:
            names = ", ".join(sorted({repr(mark.event_name) for mark in marks}))
            logger.error("Could not write mark %s: %s", names, error)
            self._count(queued=len(marks), dropped=len(marks), error=error)
            if self._raise_errors:
                raise
        else:
            self._count(queued=len(marks), written=len(marks))
        return len(marks)

    def flush(self, timeout: float | None = None) -> bool:
        """Nothing waits in a sync writer: always ``True``."""
        return True

    def stats(self) -> WriterStats:
        with self._lock:
            return self._stats

    def _count(
        self,
        *,
        queued: int = 0,
        written: int = 0,
        dropped: int = 0,
        error: Exception | None = None,
    ) -> None:
        with self._lock:
            stats = self._stats
            self._stats = replace(
                stats,
                queued=stats.queued + queued,
                written=stats.written + written,
                dropped=stats.dropped + dropped,
                last_error=str(error) if error else stats.last_error,
                last_error_at=datetime.now(timezone.utc)
                if error
                else stats.last_error_at,
            )


class BackgroundWriter:
    """Queues marks and writes them from a daemon thread in batches.

    The request thread only appends to a bounded deque. The thread writes a
    batch every ``flush_interval`` seconds, or as soon as ``flush_at`` marks are
    waiting. When the queue is full, new marks are dropped and counted; the
    caller never blocks. The thread starts on the first mark, so a process
    forked after ``init_app`` (a gunicorn worker) starts its own.
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._flush_interval = settings.flush_interval
        self._flush_at = settings.flush_at
        self._queue_size = settings.queue_size
        self._reset()
        self_ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call_alive(self_ref, "_reset"))
        atexit.register(_call_alive, self_ref, "_flush_at_exit")
        _live_writers.add(self)

    def _reset(self) -> None:
        # Runs at construction and in a forked child: the parent's thread did
        # not survive the fork, and the parent writes the marks it had queued.
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Mark] = deque()
        self._thread: threading.Thread | None = None
        self._accepted = 0
        self._done = 0
        self._written = 0
        self._failed = 0
        self._flush_requested = False
        self._closing = False
        self._retried = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None

    def submit(self, mark: Mark) -> None:
        self.submit_many((mark,))

    def submit_many(self, marks: Sequence[Mark]) -> int:
        """Queue ``marks``; those that find the queue full are dropped.

        :returns: how many were queued: the first ones, up to the room left.
        """
        with self._cond:
            room = self._queue_size - len(self._queue)
            accepted = min(room, len(marks))
            self._dropped += len(marks) - accepted
            if accepted <= 0:
                return 0
            was_below = len(self._queue) < self._flush_at
            self._queue.extend(marks[:accepted])
            self._accepted += accepted
            if self._thread is None:
                self._start_thread()
            elif was_below and len(self._queue) >= self._flush_at:
                self._cond.notify_all()
            return accepted

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every mark accepted so far is written.

        :param timeout: the most seconds to wait; ``None`` waits for as long
            as it takes.
        :returns: whether everything got written before the timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            failed_before = self._failed
            if self._done < target:
                self._flush_requested = True
                self._cond.notify_all()
            while self._done < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._failed == failed_before

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(
                mode="background",
                queued=self._accepted,
                written=self._written,
                retried=self._retried,
                dropped=self._dropped,
                pending=self._accepted - self._done,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
            )

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="flask-bitmapist-writer", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._write_until_done(batch)

    def _next_batch(self) -> list[Mark] | None:
        with self._cond:
            deadline = time.monotonic() + self._flush_interval
            while (
                len(self._queue) < self._flush_at
                and not self._flush_requested
                and not self._closing
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._closing and not self._queue:
                return None
            size = min(len(self._queue), MAX_BATCH)
            batch = [self._queue.popleft() for _ in range(size)]
            if not self._queue:
                self._flush_requested = False
            return batch

    def _write_until_done(self, batch: list[Mark]) -> None:
        backoff = _BACKOFF_FIRST
        while True:
            try:
                write_marks(self._client, batch)
            except redis.ResponseError as error:
                # Redis refused a write (a key of another type): retrying
                # cannot help, and would hold back every mark behind it.
                logger.error("Redis refused a batch of %d marks: %s", len(batch), error)
                with self._cond:
                    self._record_error(error)
                    self._finish(len(batch), written=False)
                return
            except redis.RedisError as error:
                logger.warning(
                    "Could not write %d marks, retrying in %.2fs: %s",
                    len(batch),
                    backoff,
                    error,
                )
                with self._cond:
                    self._retried += len(batch)
                    self._record_error(error)
                    if self._closing:
                        self._finish(len(batch), written=False)
                        return
                time.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_CAP)
            except Exception as error:
                # Not a Redis failure: the same batch would fail on every retry,
                # and the thread must live on for the marks behind it.
                logger.exception(
                    "Dropped %d marks that could not be written", len(batch)
                )
                with self._cond:
                    self._record_error(error)
                    self._finish(len(batch), written=False)
                return
            else:
                with self._cond:
                    self._finish(len(batch), written=True)
                return

    def _record_error(self, error: Exception) -> None:
        self._last_error = str(error)
        self._last_error_at = datetime.now(timezone.utc)

    def _finish(self, count: int, *, written: bool) -> None:
        self._done += count
        if written:
            self._written += count
        else:
            self._dropped += count
            self._failed += count
        self._cond.notify_all()

    def _flush_at_exit(self) -> None:
        if not self.flush(EXIT_FLUSH_TIMEOUT):
            logger.error("%d marks were not written before exit.", self.stats().pending)
        with self._cond:
            self._closing = True
            self._cond.notify_all()


def _call_alive(ref: weakref.ref[BackgroundWriter], method: str) -> None:
    writer = ref()
    if writer is not None:
        getattr(writer, method)()


#: Every background writer of this process, for :func:`flush_all`. Weak, so an
#: app that is gone takes its writer with it.
_live_writers: weakref.WeakSet[BackgroundWriter] = weakref.WeakSet()


def flush_all(timeout: float | None = None) -> bool:
    """Flush every background writer in the process.

    :param timeout: the most seconds to wait in all; ``None`` waits as long as
        it takes.
    :returns: whether every writer got through.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    all_done = True
    for writer in list(_live_writers):
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        all_done = writer.flush(remaining) and all_done
    return all_done


def create_writer(client: redis.Redis, settings: Settings) -> Writer:
    """The writer that ``settings.write_mode`` asks for."""
    if settings.write_mode == "sync":
        return SyncWriter(client, settings)
    return BackgroundWriter(client, settings)

"""Failures logged by episode, not one line each.

A run of failures of one kind (Redis failing, a full queue dropping marks) is
an :class:`Episode`: its owner logs the first failure, a reminder at most once
a minute while the run lasts (with a :class:`Tally` of the failures since the
previous line), and one line when it ends. An app under load that loses Redis
thus logs a few lines, not one per request or per retry.

An episode holds no lock. Its owner changes it and decides the line to log
under its own lock, and logs that ``Line`` once the lock is released.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

# The package's one logger, the name under which the README lists every line.
logger = logging.getLogger("flask_bitmapist")

#: The fewest seconds between two log lines of one episode.
REMIND_EVERY = 60.0


class Tally(NamedTuple):
    """What one log line of an :class:`Episode` reports."""

    #: failures since the episode's previous line
    recent: int
    #: failures since the episode started
    total: int
    #: seconds since the episode started
    seconds: float


class Episode:
    """A run of failures of one kind (Redis failing, a full queue dropping
    marks), logged in a few lines rather than one per failure: the owner logs
    the first failure, a reminder at most every ``remind_every`` seconds while
    the run lasts, and its end.

    It holds no lock: one thread uses it, or its owner holds its own lock.

    :param remind_every: the fewest seconds between two lines of one run.
    :param clock: seconds that only go forward; tests pass one they control.
    """

    def __init__(
        self,
        remind_every: float = REMIND_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._remind_every = remind_every
        self._clock = clock
        self._started_at: float | None = None
        self._line_at = 0.0
        self._total = 0
        self._since_line = 0

    def add(self, count: int = 1) -> bool:
        """Count ``count`` failures.

        :returns: whether they start a run; the owner then logs its first
            line, which reports them.
        """
        self._total += count
        if self._started_at is None:
            self._started_at = self._line_at = self._clock()
            return True
        self._since_line += count
        return False

    def reminder(self) -> Tally | None:
        """The tally of a reminder, when one is due: the run lasts, failures
        came since its last line, and that line is ``remind_every`` seconds
        old. Otherwise ``None``."""
        if self._started_at is None or not self._since_line:
            return None
        now = self._clock()
        if now - self._line_at < self._remind_every:
            return None
        self._line_at = now
        return self._tally(self._started_at, now)

    def end(self) -> Tally | None:
        """End the run: the tally of its last line, or ``None`` when no run
        lasts."""
        if self._started_at is None:
            return None
        tally = self._tally(self._started_at, self._clock())
        self._started_at = None
        self._total = 0
        return tally

    def _tally(self, started_at: float, now: float) -> Tally:
        tally = Tally(self._since_line, self._total, now - started_at)
        self._since_line = 0
        return tally


class Line(NamedTuple):
    """A log line decided under its owner's lock and logged once that lock is
    released, so that a slow log handler never holds up the threads waiting
    for the lock (in a writer, the threads that submit marks)."""

    level: int
    message: str
    args: tuple[object, ...]

    def log(self) -> None:
        """Log the line to the ``flask_bitmapist`` logger."""
        logger.log(self.level, self.message, *self.args)

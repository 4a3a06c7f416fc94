"""A real redis-server for the tests (Debian's package, installed by tools/sysdeps.sh).

``RedisServer`` runs one on 127.0.0.1 with persistence off: on a free port, or again on
the port it had (to play an outage), optionally with TLS only or with extra arguments
(``--requirepass``); it is waited for by polling PING with a deadline and stopped by its
PID.  ``running()`` is the start/stop around a test.  A missing redis-server fails the
test with the hint to install it: it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mgpy.proto.resp import NEED_DATA, RespReader
from mgpy.proto.resp_write import pack_command
from tests.net.certs import Certs
from tests.waiting import wait_until

__all__ = ["MISSING", "REDIS", "START_TIMEOUT", "RedisServer", "free_port", "running"]

REDIS = shutil.which("redis-server")
MISSING = "redis-server is not installed: `make test` installs it (tools/sysdeps.sh)"
START_TIMEOUT = 10.0
ANSWERS = (b"+PONG\r\n", b"-NOAUTH Authentication required.\r\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bindable(port: int) -> bool:
    """True if a listener could bind 127.0.0.1:``port`` now (as redis does, SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RedisServer:
    """A redis-server on 127.0.0.1 with persistence off, stopped by its PID."""

    def __init__(
        self, workdir: Path, extra: list[str] | None = None, certs: Certs | None = None
    ) -> None:
        self.workdir = workdir
        self.extra = extra or []
        self.certs = certs  # TLS only (rediss://), with the server certificate of ``certs``
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.certs else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on the previous port, or on a free one (another if it was taken)."""
        if REDIS is None:
            pytest.fail(MISSING)
        for _ in range(5):
            port = self.port or free_port()
            if self.port:  # the same port is needed: wait for it to be free again
                what = f"127.0.0.1:{port} free for redis-server again"
                wait_until(partial(bindable, port), START_TIMEOUT, what, interval=0.05)
            args = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            args += ["--appendonly", "no", "--dir", str(self.workdir), *self.extra]
            if self.certs is not None:
                args[2] = "0"
                args += ["--tls-port", str(port), "--tls-cert-file", self.certs.server_cert]
                args += ["--tls-key-file", self.certs.server_key, "--tls-auth-clients", "no"]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._ready(port):
                self.port = port
                return
            self.stop()
        raise AssertionError("could not start redis-server")

    def _ready(self, port: int) -> bool:
        """Poll PING until redis answers: True; False if it exited (the port was taken)."""
        proc = self.proc
        assert proc is not None

        def answered_or_exited() -> bool:
            if proc.poll() is not None:
                return True
            try:
                with self._connect(port, 1.0) as s:
                    s.sendall(pack_command("PING"))
                    return s.recv(64) in ANSWERS
            except OSError:  # not listening yet
                return False

        what = f"redis-server answering PING on 127.0.0.1:{port}"
        wait_until(answered_or_exited, START_TIMEOUT, what, interval=0.02)
        return proc.poll() is None

    def _connect(self, port: int, timeout: float) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if self.certs is None:
            return s
        ctx = ssl.create_default_context(cafile=self.certs.ca)
        return ctx.wrap_socket(s, server_hostname="localhost")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, sig)
            try:
                p.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.proc = None

    def command(self, *args: Any, password: str | None = None) -> Any:
        """One command over a blocking socket (AUTH first when a password is given)."""
        with self._connect(self.port, 5.0) as s:
            reader = RespReader()
            cmds = [("AUTH", password)] if password else []
            cmds.append(args)
            for cmd in cmds:
                s.sendall(pack_command(*cmd))
                while (item := reader.next_event()) is NEED_DATA:
                    data = s.recv(65536)
                    assert data, "redis closed the connection"
                    reader.feed(data)
            return item


@contextlib.contextmanager
def running(
    workdir: Path,
    extra: list[str] | None = None,
    certs: Certs | None = None,
    sig: int = signal.SIGKILL,
) -> Iterator[RedisServer]:
    """A started ``RedisServer``, stopped with ``sig`` at the end."""
    srv = RedisServer(workdir, extra, certs)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(sig)

"""The server in its own process, measured from outside: ``python -m mgpy`` and its RSS.

``CliServer`` starts the real command (``mgpy.__main__.main``) on a free port, with the
test's ``Limits`` overrides when given (the CLI has no option for most of them), and
reads the server's resident set size from ``/proc/PID/status``.  ``PeakRss`` samples it
in a thread while a test runs.  The clients here are plain blocking sockets: what an
attacker's script would use.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

# tools/ is not a package: its soak clients are the one copy of these
from soak_clients import (
    MiB,
    announced_port,
    connect,
    limit_nofile,
    request,
    vmrss_mib,
    ws_frame,
    ws_frames,
)
from soak_clients import ws_connect as _ws_connect

__all__ = [
    "CliServer",
    "MiB",
    "PeakRss",
    "dechunk",
    "http_get_head",
    "read_head",
    "rss_mib",
    "wait_for",
    "ws_connect",
    "ws_frame",
    "ws_frames",
]

#: runs the CLI's own main() with ``Limits()`` defaulting to the overrides in argv[1]
_LAUNCH = """
import json, sys
import mgpy, mgpy.__main__ as cli
over = json.loads(sys.argv[1])
base = mgpy.Limits
mgpy.Limits = lambda **kw: base(**{**over, **kw})
sys.exit(cli.main(sys.argv[2:], prog="mgpy"))
"""


class CliServer:
    """``python -m mgpy --root ROOT --listen 127.0.0.1:0`` in a subprocess (context manager)."""

    def __init__(
        self,
        root: Path,
        *args: str,
        limits: dict[str, Any] | None = None,
        cwd: Path | None = None,
        nofile: int | None = None,
    ) -> None:
        """``nofile``: the server's RLIMIT_NOFILE soft limit (descriptors it may open)."""
        cmd = [sys.executable, "-c", _LAUNCH, json.dumps(limits or {})]
        cmd += ["--root", str(root), "--listen", "127.0.0.1:0", "--log-level", "warning", *args]
        self.proc = subprocess.Popen(
            cmd,
            cwd=str(cwd or root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=None if nofile is None else lambda: limit_nofile(nofile),
        )
        port, line = announced_port(self.proc)
        if port is None:
            self.stop()
            raise AssertionError(f"the server did not start: {line!r} {self.stderr()}")
        self.port = port
        self.pid = self.proc.pid

    def rss(self) -> float:
        """The server's resident set size now, in MiB."""
        return rss_mib(self.pid)

    def fds(self) -> int:
        """Descriptors the server has open now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def stop(self) -> int:
        """SIGTERM, then wait (kill after 10 s); return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return self.proc.returncode

    def __enter__(self) -> CliServer:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def rss_mib(pid: int) -> float:
    """VmRSS of process ``pid`` in MiB (OSError if it is gone)."""
    rss = vmrss_mib(pid)
    if rss is None:
        raise AssertionError("no VmRSS")
    return rss


class PeakRss:
    """Sample a process's RSS every 20 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, AssertionError):
                return

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``cond`` every 20 ms until true; fail naming ``what`` at the deadline."""
    wait_until(cond, timeout, what, interval=0.02)


# -- clients --------------------------------------------------------------------------------
def http_get_head(port: int, path: str, headers: dict[str, str], rcvbuf: int = 0) -> socket.socket:
    """Send a GET and return the socket (blocking, response unread)."""
    s = connect(port, rcvbuf, timeout=None)
    s.sendall(request("GET", path, {"Host": "x", **headers}))
    return s


def read_head(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read a response head; return (status, lower-cased headers, body bytes already read)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise AssertionError(f"connection closed in the head: {buf!r}")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hs, rest


def dechunk(data: bytes) -> bytes:
    """The body of a complete chunked message body."""
    out = bytearray()
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        n = int(data[pos:end].split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + n]
        pos = end + 2 + n + 2


def ws_connect(port: int, path: str, rcvbuf: int = 0) -> tuple[socket.socket, bytearray]:
    """Open a WebSocket to ``path`` (a blocking socket); return it and the bytes read past
    the 101 head."""
    return _ws_connect(port, path, rcvbuf, timeout=None)

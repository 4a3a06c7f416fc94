"""Shared pieces of the static file tests: a serve_http server, blocking clients in threads.

The Manager polls in the test thread (deadline-bounded ``run_until``); every
client (http.client, a raw socket, curl) runs in a worker thread, so a test
reads like a user session and no sleep is ever used to wait.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import mgpy
from mgpy import Ev
from tests.conftest import run_until

T = TypeVar("T")


class Resp(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def h(self, name: str) -> str | None:
        """First header ``name`` (case-insensitive) or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


class StaticServer:
    """A listener answering every request with ``serve_http(c, hm, opts)``."""

    def __init__(self, mgr: mgpy.Manager, opts: mgpy.ServeOpts) -> None:
        self.mgr = mgr
        self.opts = opts
        self.closed = 0
        self.errors: list[str] = []
        self.lc = mgr.bind("127.0.0.1:0", self.handler)
        self.lc.set_protocol_http_websocket()
        self.port: int = self.lc.local[1]

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            mgpy.serve_http(c, ev_data, self.opts)
        elif ev == Ev.CLOSE and c is not self.lc:
            self.closed += 1

    def run(self, fn: Callable[[], T], timeout: float = 20.0) -> T:
        """Run ``fn`` in a thread while the manager polls; return its result or raise."""
        return run_in_thread(self.mgr, fn, timeout)

    # -- clients ------------------------------------------------------------------
    def get(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        identity: bool = False,
    ) -> Resp:
        """One request with http.client (no Accept-Encoding unless given or ``identity``)."""

        def go() -> Resp:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                conn.putrequest(method, path, skip_accept_encoding=not identity)
                for k, v in (headers or {}).items():
                    conn.putheader(k, v)
                conn.endheaders()
                r = conn.getresponse()
                body = r.read()
                return Resp(r.status, r.getheaders(), body)
            finally:
                conn.close()

        return self.run(go)

    def raw(self, request: bytes, until_close: bool = True) -> bytes:
        """Send raw bytes, return everything received until the server closes."""

        def go() -> bytes:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=15)
            try:
                s.sendall(request)
                if until_close:
                    s.shutdown(socket.SHUT_WR)
                out = bytearray()
                while True:
                    b = s.recv(65536)
                    if not b:
                        return bytes(out)
                    out += b
            finally:
                s.close()

        return self.run(go)

    def curl(self, path: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run ``curl -sS ARGS URL`` for ``path`` on this server (in a thread)."""
        argv = ["curl", "-sS", "--max-time", "15", *args, f"http://127.0.0.1:{self.port}{path}"]
        return self.run(lambda: subprocess.run(argv, capture_output=True, check=False))


def run_in_thread(mgr: mgpy.Manager, fn: Callable[[], T], timeout: float = 20.0) -> T:
    """Run ``fn`` in a worker thread while ``mgr`` polls in this one."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["v"] = fn()
        except BaseException as e:  # handed to the test thread
            box["e"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    run_until(mgr, lambda: not t.is_alive(), timeout)
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]  # type: ignore[no-any-return]


def parse_head(data: bytes) -> tuple[int, list[tuple[str, str]], int]:
    """Parse a response head at the start of ``data``: (status, headers, body offset)."""
    end = data.index(b"\r\n\r\n")
    lines = data[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hs = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hs.append((k.strip(), v.strip()))
    return status, hs, end + 4


def split_byteranges(body: bytes, ctype: str) -> list[tuple[str, str, bytes]]:
    """Parse a multipart/byteranges body strictly: [(Content-Type, Content-Range, data)]."""
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("boundary=", 1)[1].encode()
    delim = b"\r\n--" + boundary
    assert body.startswith(delim + b"\r\n"), body[:80]
    assert body.endswith(delim + b"--\r\n")
    parts = []
    pos = len(delim) + 2
    while True:
        he = body.index(b"\r\n\r\n", pos)
        fields = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (ln.partition(":") for ln in body[pos:he].decode().split("\r\n"))
        )
        crange = fields["content-range"]
        first, last = (int(x) for x in crange.split()[1].split("/")[0].split("-"))
        start = he + 4
        data = body[start : start + last - first + 1]
        parts.append((fields["content-type"], crange, data))
        pos = start + len(data)
        assert body[pos : pos + len(delim)] == delim
        pos += len(delim)
        if body[pos : pos + 2] == b"--":
            assert pos + 4 == len(body)
            return parts
        assert body[pos : pos + 2] == b"\r\n"
        pos += 2


def open_fds() -> int:
    """Number of open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def write(path: Any, data: bytes | str) -> bytes:
    """Write ``data`` to ``path`` (creating parents) and return it as bytes."""
    b = data.encode() if isinstance(data, str) else data
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b)
    return b

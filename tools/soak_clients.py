"""Clients and probes for tools/soak.py: plain sockets, as an attacker's script would use.

The server is watched from outside: its resident set size and open descriptors from
``/proc/PID``.  Nothing here imports mgpy.  tests/net/rss_helpers.py uses the same
clients and probes (this file is their one copy).
"""

from __future__ import annotations

import base64
import os
import re
import resource
import socket
import struct
import subprocess
import threading
import time

MiB = 1024 * 1024


def vmrss_mib(pid: int) -> float | None:
    """VmRSS of process ``pid`` in MiB; None without one (a zombie); OSError if it is gone."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def rss_mib(pid: int) -> float:
    """VmRSS of process ``pid`` in MiB (0 if it is gone)."""
    try:
        return vmrss_mib(pid) or 0.0
    except OSError:
        return 0.0


def fd_count(pid: int) -> int:
    """Descriptors process ``pid`` has open (0 if it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Sampler:
    """RSS and descriptors of a process every ``every`` seconds: start, peak, last."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid = pid
        self.every = every
        self.start = (rss_mib(pid), fd_count(pid))
        self.peak_rss, self.peak_fds = self.start
        self.last = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def sample(self) -> tuple[float, int]:
        self.last = (rss_mib(self.pid), fd_count(self.pid))
        self.peak_rss = max(self.peak_rss, self.last[0])
        self.peak_fds = max(self.peak_fds, self.last[1])
        return self.last

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


# -- the server process ------------------------------------------------------------------
def limit_nofile(n: int) -> None:
    """In a child before exec (``preexec_fn``): RLIMIT_NOFILE soft limit ``n`` (at most hard)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def announced_port(proc: subprocess.Popen[str]) -> tuple[int | None, str]:
    """Read the first line ``python -m mgpy`` prints (``... http://127.0.0.1:PORT/``);
    return the port (None if the line has none) and the line."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    return (int(m.group(1)) if m else None), line


# -- HTTP ------------------------------------------------------------------------------
def connect(port: int, rcvbuf: int = 0, timeout: float | None = 10.0) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` (``timeout`` None: blocking)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    hs = {"Host": "soak", **(headers or {})}
    if body:
        hs["Content-Length"] = str(len(body))
    head = "".join(f"{k}: {v}\r\n" for k, v in hs.items())
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body


class Response:
    """One response read off a keep-alive socket (Content-Length or chunked)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Reader:
    """Reads responses from a socket, keeping what arrived past the current one."""

    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.buf = bytearray()

    def _more(self) -> None:
        data = self.s.recv(1 << 20)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data

    def _line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            self._more()
        line = bytes(self.buf[:i])
        del self.buf[: i + 2]
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def response(self, head_only: bool = False) -> Response:
        status = int(self._line().split()[1])
        hs: dict[str, str] = {}
        while line := self._line():
            k, _, v = line.decode("latin-1").partition(":")
            hs[k.strip().lower()] = v.strip()
        if head_only or status in (204, 304) or status < 200:
            return Response(status, hs, b"")
        if hs.get("transfer-encoding") == "chunked":
            parts = []
            while n := int(self._line().split(b";")[0], 16):
                parts.append(self._take(n))
                self._take(2)
            while self._line():
                pass
            return Response(status, hs, b"".join(parts))
        return Response(status, hs, self._take(int(hs.get("content-length", "0"))))


def multipart(name: str, data: bytes) -> tuple[str, bytes]:
    """A multipart/form-data body with one file; returns (Content-Type, body)."""
    b = "soakboundary" + os.urandom(6).hex()
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{b}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={b}", body


def rst_close(s: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0): an abrupt disconnect."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


# -- WebSocket ---------------------------------------------------------------------------
def ws_connect(
    port: int, path: str, rcvbuf: int = 0, timeout: float | None = 10.0
) -> tuple[socket.socket, bytearray]:
    """Open a WebSocket; return the socket and what arrived after the 101 head."""
    s = connect(port, rcvbuf, timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        request(
            "GET",
            path,
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13",
            },
        )
    )
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise ConnectionError("closed during the handshake")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"no upgrade: {head[:40]!r}")
    return s, bytearray(rest)


def ws_frame(op: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame, masked with a zero key (the payload goes out as is)."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        hdr = bytes((b0, 0x80 | n))
    elif n < 65536:
        hdr = bytes((b0, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        hdr = bytes((b0, 0x80 | 127)) + n.to_bytes(8, "big")
    return hdr + b"\0\0\0\0" + payload


def ws_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete server frames off the front of ``buf``: [(opcode, payload)]."""
    out = []
    while len(buf) >= 2:
        n = buf[1] & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                break
            n, pos = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, pos = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < pos + n:
            break
        out.append((buf[0] & 0x0F, bytes(buf[pos : pos + n])))
        del buf[: pos + n]
    return out


def ws_read_message(s: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """Block until one frame arrives; return (opcode, payload)."""
    while True:
        frames = ws_frames(buf)
        if frames:
            op, payload = frames[0]
            for extra in reversed(frames[1:]):  # put back what is not consumed yet
                buf[:0] = ws_frame_server(*extra)
            return op, payload
        data = s.recv(1 << 20)
        if not data:
            raise ConnectionError("closed by the server")
        buf += data


def ws_frame_server(op: int, payload: bytes) -> bytes:
    """An unmasked frame as a server sends it (to push a parsed frame back)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | op, n)) + payload
    if n < 65536:
        return bytes((0x80 | op, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | op, 127)) + n.to_bytes(8, "big") + payload


def deadline_passed(t: float) -> bool:
    return time.monotonic() > t

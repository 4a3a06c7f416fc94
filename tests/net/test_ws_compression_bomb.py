"""Zip bombs against ``python -m mgpy``: 1009 after at most ws_max_message, RSS flat.

The server runs in its own process (the CLI, default limits: 1 MiB messages), so its
memory is measured from ``/proc/PID/status``: ``VmHWM``, the peak resident size, is
what a bomb would raise even if the memory were given back afterwards.  The client is
a blocking raw socket in the test; every compressed payload is made here with zlib.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net.test_ws_compression import EXT, JSON, deflate, inflate, zip_bomb
from tests.net.test_ws_server import upgrade_request
from tests.proto.ws_helpers import frame
from tests.waiting import wait_listening

MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CliServer:
    """``python -m mgpy`` in a subprocess, with its memory readable."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mgpy",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--root",
                str(root),
                "--log-level",
                "error",
            ],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_listening(self.port, 20, self.proc, "the server")
        except AssertionError as e:
            err = self.proc.stderr
            out = err.read() if err is not None and self.proc.poll() is not None else b""
            raise AssertionError(f"{e} {out!r}") from None

    def status(self, field: str) -> int:
        """A ``/proc/PID/status`` field in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[CliServer]:
    srv = CliServer(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


class Peer:
    """A blocking WebSocket client socket (bounded by a timeout) with compression agreed."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock.sendall(upgrade_request(extra=f"Sec-WebSocket-Extensions: {EXT}\r\n"))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"permessage-deflate" in head

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return data

    def frame(self) -> tuple[int, bytes]:
        """The next server frame (b0, payload)."""
        while True:
            b = self.buf
            if len(b) >= 2:
                ln, pos = b[1] & 0x7F, 2
                if ln == 126 and len(b) >= 4:
                    ln, pos = struct.unpack("!H", b[2:4])[0], 4
                elif ln == 127 and len(b) >= 10:
                    ln, pos = struct.unpack("!Q", b[2:10])[0], 10
                if ln < 126 or pos > 2:
                    if len(b) >= pos + ln:
                        self.buf = b[pos + ln :]
                        return b[0], b[pos : pos + ln]
            self.buf += self._recv()

    def send(self, data: bytes) -> None:
        """Send, tolerating a server that closed first (it answered already)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def close_code(self) -> int:
        while True:
            b0, payload = self.frame()
            if b0 & 0x0F == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])

    def close(self) -> None:
        self.sock.close()


def echo_ok(port: int) -> None:
    p = Peer(port)
    p.send(frame(0xC1, deflate(JSON)))
    b0, payload = p.frame()
    assert b0 == 0xC1 and inflate(payload, 12) == JSON
    p.close()


@pytest.mark.timeout(120)
def test_zip_bombs_close_with_1009_and_rss_stays_flat(cli_server: CliServer) -> None:
    port = cli_server.port
    bomb = zip_bomb(1000)  # ~1 MiB on the wire (within the wire cap), ~1 GiB inflated
    assert len(bomb) < MiB
    fragment = zip_bomb(1)  # ~1 KiB, 1 MiB inflated: one fragment of a bomb in pieces
    assert len(fragment) < 1100
    # warm up: the first echo, the first bomb (imports, allocator pools, buffers)
    echo_ok(port)
    p = Peer(port)
    p.send(frame(0xC2, bomb))
    assert p.close_code() == 1009
    p.close()
    echo_ok(port)
    base_rss, base_hwm = cli_server.status("VmRSS"), cli_server.status("VmHWM")

    for _ in range(8):  # whole bombs, one at a time: one frame each
        p = Peer(port)
        p.send(frame(0xC2, bomb))
        assert p.close_code() == 1009
        p.close()
    for _ in range(8):  # bombs in 1 KiB fragments, each inflating to 1 MiB
        p = Peer(port)
        p.send(frame(0x42, fragment) + frame(0x00, fragment) * 100)
        assert p.close_code() == 1009
        p.close()
    # 16 GB of inflated output was asked for: the peak moved by what the limits allow one
    # connection (its 1 MiB receive buffer, the unmasked payload, at most ws_max_message
    # of output, zlib's copy of the input it did not take: ~4 MiB) plus what the
    # allocator keeps; measured 6 MiB on a quiet machine, 11 MiB on a busy one (bigger
    # reads), and +1.9 GB with the inflate limit removed
    one_hwm = cli_server.status("VmHWM") - base_hwm
    one_rss = cli_server.status("VmRSS") - base_rss
    assert one_hwm < 24 * 1024, f"peak RSS grew by {one_hwm} KiB"

    peers = [Peer(port) for _ in range(16)]  # sixteen at once
    for p in peers:
        p.send(frame(0xC1, bomb))
    for p in peers:
        assert p.close_code() == 1009
        p.close()
    echo_ok(port)  # still serving
    # each connection may hold the ~4 MiB above at once (measured: 15-18 MiB)
    many_hwm = cli_server.status("VmHWM") - base_hwm
    many_rss = cli_server.status("VmRSS") - base_rss
    assert many_hwm < 16 * 4 * 1024, f"peak RSS grew by {many_hwm} KiB"
    assert base_hwm < 128 * 1024
    print(
        f"bombs: base RSS {base_rss} KiB; one at a time: peak +{one_hwm} KiB, RSS +{one_rss} KiB;"
        f" sixteen at once: peak +{many_hwm} KiB, RSS +{many_rss} KiB"
    )


@pytest.mark.timeout(60)
def test_small_frame_inflating_past_the_limit(cli_server: CliServer) -> None:
    """A 1 KiB frame that inflates past 1 MiB: 1009 from ws_max_message, not from its size."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    small = c.compress(bytes(MiB + 1)) + c.flush(zlib.Z_SYNC_FLUSH)
    assert len(small) < 1100
    p = Peer(cli_server.port)
    p.send(frame(0xC2, small[:-4]))
    assert p.close_code() == 1009
    p.close()
    ok = zlib.compressobj(9, zlib.DEFLATED, -15)
    fits = ok.compress(bytes(MiB)) + ok.flush(zlib.Z_SYNC_FLUSH)
    p = Peer(cli_server.port)
    p.send(frame(0xC2, fits[:-4]))
    b0, payload = p.frame()
    assert b0 == 0xC2 and inflate(payload, 12) == bytes(MiB)
    p.close()
    assert os.path.exists(f"/proc/{cli_server.proc.pid}")

"""Zero-copy bodies: a 1 GiB file in flat memory while others are served; no fd leaks;
early disconnects, files shrinking under a transfer, and the TLS (no sendfile) path.
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import ssl
import struct
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import mgpy
from tests.conftest import run_until
from tests.net.certs import Certs, make_certs
from tests.net.static_helpers import (
    StaticServer,
    open_fds,
    parse_head,
    run_in_thread,
    split_byteranges,
    write,
)

GIB = 1 << 30
TAIL = b"--the last bytes of the gigabyte--"
SMALL = os.urandom(1024)


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "www"
    write(r / "small.bin", SMALL)
    with open(r / "huge.bin", "wb") as f:  # sparse: 1 GiB of zeros, then a marker
        f.truncate(GIB - len(TAIL))
        f.seek(GIB - len(TAIL))
        f.write(TAIL)
    with open(r / "mid.bin", "wb") as f:
        f.truncate(64 << 20)
    write(r / "one.bin", os.urandom(1 << 20))
    return r


@pytest.fixture
def srv(mgr: mgpy.Manager, root: Path) -> StaticServer:
    return StaticServer(mgr, mgpy.ServeOpts(document_root=str(root)))


def _get_head(s: socket.socket, path: str) -> tuple[int, int, bytes]:
    """Send GET (Connection: close); return (status, Content-Length, body bytes already read)."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        assert b, "closed before the head"
        buf += b
    status, hs, off = parse_head(buf)
    length = int(dict((k.lower(), v) for k, v in hs)["content-length"])
    return status, length, buf[off:]


class TestGigabyte:
    def test_1gib_download_flat_memory_while_others_are_served(
        self, mgr: mgpy.Manager, srv: StaticServer
    ) -> None:
        fds0 = open_fds()
        srv.get("/small.bin")  # warm up the caches and the code paths
        rss0 = _rss()
        started = threading.Event()
        small_done = threading.Event()
        box: dict[str, Any] = {}

        def big() -> None:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            try:
                status, length, first = _get_head(s, "/huge.bin")
                got = len(first)
                tail = first[-64:]
                buf = bytearray(1 << 20)
                view = memoryview(buf)
                while got < length:
                    n = s.recv_into(view)
                    if not n:
                        break
                    got += n
                    tail = (tail + bytes(view[max(0, n - 64) : n]))[-64:]
                    if got >= 64 << 20 and not started.is_set():
                        started.set()
                        # stop reading: the server's socket fills, its pump must yield
                        small_done.wait(30)
                box["big"] = (status, length, got, tail)
            finally:
                s.close()

        def small() -> None:
            assert started.wait(30)
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            bodies = []
            for _ in range(20):
                conn.request("GET", "/small.bin")
                bodies.append(conn.getresponse().read())
            conn.close()
            box["small"] = bodies
            small_done.set()

        tracemalloc.start()
        try:
            threads = [threading.Thread(target=big), threading.Thread(target=small)]
            for t in threads:
                t.start()
            run_until(mgr, lambda: not any(t.is_alive() for t in threads), timeout=90)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        status, length, got, tail = box["big"]
        assert (status, length, got) == (200, GIB, GIB)
        assert tail.endswith(TAIL)
        assert box["small"] == [SMALL] * 20  # served while the gigabyte was mid-flight
        assert peak < 8 << 20, f"Python allocations peaked at {peak} bytes"
        assert _rss() - rss0 < 64 << 20
        run_until(mgr, lambda: srv.closed >= 3)
        assert open_fds() == fds0

    def test_1gib_head_and_ranges_with_curl(self, srv: StaticServer) -> None:
        p = srv.curl("/huge.bin", "-I")
        assert f"Content-Length: {GIB}\r\n".encode() in p.stdout
        p = srv.curl("/huge.bin", "-r", f"-{len(TAIL)}")
        assert p.stdout == TAIL
        p = srv.curl("/huge.bin", "-r", f"{GIB - 5}-", "-w", " %{http_code}")
        assert p.stdout == TAIL[-5:] + b" 206"


class TestDescriptors:
    def test_disconnect_mid_download_releases_the_fd(
        self, mgr: mgpy.Manager, srv: StaticServer
    ) -> None:
        fds0 = open_fds()
        for i in range(5):

            def go() -> int:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                _, length, first = _get_head(s, "/mid.bin")
                got = len(first)
                while got < 1 << 20:
                    got += len(s.recv(65536))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()  # abortive close (RST) in the middle of the body
                return length

            assert srv.run(go) == 64 << 20
            run_until(mgr, lambda: srv.closed >= i + 1)  # noqa: B023
        assert open_fds() == fds0

    def test_no_leak_across_many_kinds_of_responses(
        self, mgr: mgpy.Manager, srv: StaticServer
    ) -> None:
        fds0 = open_fds()
        for hdrs, method in (
            ({}, "GET"),
            ({}, "HEAD"),
            ({"Range": "bytes=100-199"}, "GET"),
            ({"Range": "bytes=0-9,1000-1999,-10"}, "GET"),
            ({"Range": "bytes=999999999-"}, "GET"),
        ):
            for _ in range(10):
                r = srv.get("/one.bin", hdrs, method=method)
                assert r.status in (200, 206, 416)
        run_until(mgr, lambda: srv.closed >= 50)
        assert open_fds() == fds0

    def test_sendfile_unsupported_falls_back_to_reads(
        self, srv: StaticServer, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_sendfile(*args: object) -> int:
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(os, "sendfile", no_sendfile)
        data = (root / "one.bin").read_bytes()
        assert srv.get("/one.bin").body == data
        r = srv.get("/one.bin", {"Range": "bytes=0-9,-5"})
        assert [d for _, _, d in split_byteranges(r.body, r.h("Content-Type") or "")] == [
            data[:10],
            data[-5:],
        ]

    def test_multirange_from_sendfile(self, srv: StaticServer, root: Path) -> None:
        data = os.urandom(3 << 20)
        write(root / "rand.bin", data)
        r = srv.get("/rand.bin", {"Range": "bytes=0-0,1048576-2097151,-1"})
        parts = split_byteranges(r.body, r.h("Content-Type") or "")
        assert [d for _, _, d in parts] == [data[:1], data[1 << 20 : 2 << 20], data[-1:]]

    def test_file_shrinking_under_a_transfer_closes_the_connection(
        self, mgr: mgpy.Manager, srv: StaticServer, root: Path
    ) -> None:
        path = root / "shrink.bin"
        with open(path, "wb") as f:
            f.write(os.urandom(1 << 20))
            f.truncate(32 << 20)
        fds0 = open_fds()

        def go() -> tuple[int, int]:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            try:
                _, length, first = _get_head(s, "/shrink.bin")
                got = len(first)
                while got < 1 << 20:
                    got += len(s.recv(65536))
                os.truncate(path, 2 << 20)
                while True:
                    b = s.recv(1 << 20)
                    if not b:
                        return length, got
                    got += len(b)
            finally:
                s.close()

        length, got = srv.run(go)
        assert length == 32 << 20
        assert got < length  # cut short: the server closed instead of hanging
        run_until(mgr, lambda: srv.closed >= 1)
        assert open_fds() == fds0


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("pki"))


class TestTls:
    def test_big_file_and_ranges_over_https(
        self, mgr: mgpy.Manager, root: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_sendfile(*args: object) -> int:
            raise AssertionError("sendfile would bypass TLS")

        monkeypatch.setattr(os, "sendfile", no_sendfile)
        data = os.urandom(3 << 20)
        write(root / "rand.bin", data)
        opts = mgpy.ServeOpts(document_root=str(root))

        def handler(c: mgpy.Connection, ev: object, hm: object) -> None:
            if ev == mgpy.Ev.HTTP_REQUEST:
                assert isinstance(hm, mgpy.HttpMessage)
                mgpy.serve_http(c, hm, opts)

        lc = mgr.bind(
            "https://127.0.0.1:0",
            handler,
            tls=mgpy.TlsOpts(cert=certs.server_cert, key=certs.server_key),
        )
        lc.set_protocol_http_websocket()
        port = lc.local[1]
        fds0 = open_fds()

        def go() -> list[tuple[int, str | None, bytes]]:
            ctx = ssl.create_default_context(cafile=certs.ca)
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
            out = []
            for hdrs in ({}, {"Range": "bytes=5-9"}, {"Range": "bytes=0-0,-2"}):
                conn.request("GET", "/rand.bin", headers=hdrs)
                r = conn.getresponse()
                out.append((r.status, r.getheader("Content-Type"), r.read()))
            conn.close()
            return out

        full, one, multi = run_in_thread(mgr, go)
        assert full == (200, "application/octet-stream", data)
        assert one[:1] == (206,) and one[2] == data[5:10]
        parts = split_byteranges(multi[2], multi[1] or "")
        assert [d for _, _, d in parts] == [data[:1], data[-2:]]
        run_until(mgr, lambda: open_fds() <= fds0)

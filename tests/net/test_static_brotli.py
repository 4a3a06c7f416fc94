"""On-the-fly brotli of large files: compressed once and shared, windowed, bounded.

A large compressible file is compressed by one job per file version, as far as its
fastest reader has read; every reader streams from that one output, and the finished
output is cached (later requests get a Content-Length).  A slow reader costs one slice
of queue; compressor states are counted (past the bound: identity, or 503 when identity
is refused); a reader that leaves, or a file that shrinks, releases everything.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest

import mgpy
from mgpy import Ev
from mgpy.http.static import send, serve
from tests.conftest import run_until
from tests.net.static_helpers import StaticServer, parse_head, write

BR = b"Accept-Encoding: br\r\n"


def _text(size: int) -> bytes:
    rnd = random.Random(7)
    words = [
        bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(3000)
    ]
    return b" ".join(rnd.choices(words, k=size // 5))[:size]


TEXT = _text(3 * 1024 * 1024)  # ~1.1 MB of brotli: more than the kernel buffers take at once
OTHER = _text(1024 * 1024)[::-1]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "www"
    write(r / "big.txt", TEXT)
    write(r / "other.txt", OTHER)
    return r


class Server(StaticServer):
    """Records the accepted connections, and gives them small kernel send buffers (no
    autotuning to 4 MiB) so that a client that stops reading stalls the server soon."""

    def __init__(self, mgr: mgpy.Manager, opts: mgpy.ServeOpts) -> None:
        super().__init__(mgr, opts)
        self.conns: list[mgpy.Connection] = []

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.ACCEPT:
            self.conns.append(c)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        super().handler(c, ev, ev_data)


@pytest.fixture
def srv(mgr: mgpy.Manager, root: Path) -> Server:
    return Server(mgr, mgpy.ServeOpts(document_root=str(root)))


@pytest.fixture
def compressors(mgr: mgpy.Manager, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the brotli compressor states created; at the end (the manager closed) every
    state must have been released."""
    made: list[int] = []
    real = send._compressor

    def counting(quality: int) -> Any:
        made.append(quality)
        return real(quality)

    monkeypatch.setattr(send, "_compressor", counting)
    yield made
    mgr.close()
    assert send._states[0] == 0, "a compressor state was not released"
    assert serve._jobs[0] == 0, "a shared job was not ended"


class Client:
    """A raw HTTP client socket: sends at once, reads only when told to."""

    def __init__(self, srv: StaticServer, request: bytes, rcvbuf: int = 4096) -> None:
        self.mgr = srv.mgr
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", srv.port))
        self.sock.sendall(request)
        self.sock.setblocking(False)
        self.data = bytearray()
        self.eof = False

    def read_some(self) -> None:
        while not self.eof:
            try:
                b = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            except ConnectionResetError:
                b = b""
            if not b:
                self.eof = True
            self.data += b

    def read_all(self, done: Any = None, timeout: float = 20) -> bytes:
        def cond() -> bool:
            self.read_some()
            return self.eof or (done is not None and done(bytes(self.data)))

        run_until(self.mgr, cond, timeout)
        return bytes(self.data)

    def head(self) -> tuple[int, dict[str, str], bytes]:
        data = self.read_all(lambda d: b"\r\n\r\n" in d)
        status, hs, off = parse_head(data)
        return status, {k.lower(): v for k, v in hs}, data[off:]

    def close(self) -> None:
        self.sock.close()


def get(path: str, extra: bytes = BR, close: bool = True) -> bytes:
    conn = b"Connection: close\r\n" if close else b""
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + conn + b"\r\n"


def body_of(data: bytes) -> tuple[dict[str, str], bytes]:
    """Decode a whole response (chunked or with a length) into (headers, decoded body)."""
    status, hs, off = parse_head(data)
    h = {k.lower(): v for k, v in hs}
    assert status == 200, data[:200]
    body = data[off:]
    if h.get("transfer-encoding") == "chunked":
        out = bytearray()
        pos = 0
        while True:
            end = body.index(b"\r\n", pos)
            n = int(body[pos:end], 16)
            if not n:
                break
            out += body[end + 2 : end + 2 + n]
            pos = end + 4 + n
        body = bytes(out)
    else:
        assert len(body) == int(h["content-length"])
    if h.get("content-encoding") == "br":
        body = brotli.decompress(body)
    return h, body


def _stalled(srv: Server, c: mgpy.Connection) -> bool:
    """The server cannot write more to ``c``: its queue waits for the socket."""
    return bool(c.send_mbuf.buf) or c.closed


class TestSharedCompression:
    def test_concurrent_readers_share_one_compression_then_the_cache(
        self, srv: Server, compressors: list[int]
    ) -> None:
        clients = [Client(srv, get("/big.txt")) for _ in range(5)]
        run_until(srv.mgr, lambda: len(srv.conns) == 5 and all(_stalled(srv, c) for c in srv.conns))
        for cl in clients:
            h, body = body_of(cl.read_all())
            assert h["content-encoding"] == "br" and h["transfer-encoding"] == "chunked"
            assert body == TEXT
            cl.close()
        assert len(compressors) == 1  # five readers, one compression
        h, body = body_of(srv.raw(get("/big.txt")))
        assert body == TEXT and "content-length" in h  # from the cache, with its length
        head = srv.raw(b"HEAD /big.txt HTTP/1.1\r\nHost: x\r\n" + BR + b"Connection: close\r\n\r\n")
        status, hs, off = parse_head(head)
        assert (status, dict(hs)["Content-Length"]) == (200, h["content-length"])
        assert head[off:] == b""
        assert len(compressors) == 1

    def test_a_slow_reader_holds_one_slice_and_compression_waits_for_it(
        self, srv: Server, compressors: list[int]
    ) -> None:
        cl = Client(srv, get("/big.txt"))
        run_until(srv.mgr, lambda: srv.conns and _stalled(srv, srv.conns[0]))
        c = srv.conns[0]
        for _ in range(30):  # rounds in which the reader takes nothing
            srv.mgr.poll(1)
        assert len(c.send_mbuf.buf) <= send.SEND_SLICE + 16  # one chunk, not the output
        job = c.pump.job  # type: ignore[union-attr]
        # compressed about as far as the socket took, not the whole file ahead
        assert job.off < len(TEXT) // 2
        assert body_of(cl.read_all())[1] == TEXT
        cl.close()


class TestBoundedStates:
    def test_past_the_bound_identity_or_503_then_br_again(
        self, srv: Server, compressors: list[int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(send, "BROTLI_STATES", 1)
        first = Client(srv, get("/big.txt"))
        run_until(srv.mgr, lambda: srv.conns and _stalled(srv, srv.conns[0]))
        h, body = body_of(srv.raw(get("/other.txt")))
        assert "content-encoding" not in h and body == OTHER  # no compressor free: identity
        assert h["vary"] == "Accept-Encoding"
        busy = srv.raw(get("/other.txt", b"Accept-Encoding: br, identity;q=0\r\n"))
        status, hs, _ = parse_head(busy)
        assert status == 503 and dict(hs)["Retry-After"] == "1"
        assert body_of(first.read_all())[1] == TEXT  # the first reader is served in full
        first.close()
        h, body = body_of(srv.raw(get("/other.txt")))
        assert h["content-encoding"] == "br" and body == OTHER  # its state was released

    def test_a_reader_leaving_mid_stream_releases_the_job(
        self, srv: Server, compressors: list[int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(send, "BROTLI_STATES", 1)
        gone = Client(srv, get("/big.txt"))
        status, hs, _ = gone.head()
        assert (status, hs["content-encoding"]) == (200, "br")
        gone.close()
        run_until(srv.mgr, lambda: srv.conns[0].closed)
        h, body = body_of(srv.raw(get("/big.txt")))
        assert h["content-encoding"] == "br" and body == TEXT
        assert len(compressors) == 2  # started again from the first byte

    def test_output_too_big_to_cache_is_compressed_per_response(
        self, srv: Server, compressors: list[int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(serve, "BROTLI_CACHE_FILE", 1000)
        for _ in range(3):
            h, body = body_of(srv.raw(get("/big.txt")))
            assert h["transfer-encoding"] == "chunked" and body == TEXT
        assert len(compressors) == 3  # nothing kept, nothing wrong

    def test_files_over_the_share_limit_get_private_windowed_streams(
        self, srv: Server, compressors: list[int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(serve, "BROTLI_SHARE_MAX", 1024)
        clients = [Client(srv, get("/big.txt")) for _ in range(2)]
        run_until(srv.mgr, lambda: len(srv.conns) == 2 and all(_stalled(srv, c) for c in srv.conns))
        for c in srv.conns:
            assert len(c.send_mbuf.buf) <= 2 * send.SEND_SLICE
        for cl in clients:
            assert body_of(cl.read_all())[1] == TEXT
            cl.close()
        assert len(compressors) == 2


class TestChangedFile:
    def test_file_shrinking_under_the_job_ends_the_response_unfinished(
        self, srv: Server, root: Path, compressors: list[int]
    ) -> None:
        cl = Client(srv, get("/big.txt"))
        run_until(srv.mgr, lambda: srv.conns and _stalled(srv, srv.conns[0]))
        os.truncate(root / "big.txt", 1000)  # same inode, shorter: the job cannot finish
        data = cl.read_all()
        cl.close()
        assert not data.endswith(b"0\r\n\r\n")  # no last chunk: the client knows it is cut
        assert srv.conns[0].closed

    def test_file_replaced_during_a_stream_serves_the_old_version_whole(
        self, srv: Server, root: Path, compressors: list[int]
    ) -> None:
        cl = Client(srv, get("/big.txt"))
        run_until(srv.mgr, lambda: srv.conns and _stalled(srv, srv.conns[0]))
        write(root / "big.new", OTHER)
        os.replace(root / "big.new", root / "big.txt")
        assert body_of(cl.read_all())[1] == TEXT
        cl.close()
        srv.mgr.poll(0)
        h, body = body_of(srv.raw(get("/big.txt")))
        assert body == OTHER and h["content-encoding"] == "br"  # the new version, compressed


def test_manager_close_mid_stream_leaks_no_descriptor_or_state(
    root: Path, compressors: list[int]
) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    mgr = mgpy.Manager()
    srv = Server(mgr, mgpy.ServeOpts(document_root=str(root)))
    cl = Client(srv, get("/big.txt"))
    run_until(mgr, lambda: srv.conns and _stalled(srv, srv.conns[0]))
    mgr.close()
    cl.close()
    assert len(os.listdir("/proc/self/fd")) <= fds  # the job's file was closed

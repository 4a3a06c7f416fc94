"""Uploads (streaming multipart + file_upload_handler) against a hostile client.

Hostile file names over real sockets, a crowd of uploads that stall and vanish, part
floods and quota breaches: every file lands inside the upload directory under a safe
visible name, nothing half-written or temporary is left behind, no descriptor leaks,
memory stays bounded, and a connection that broke the rules answers no further request.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import mgpy
from mgpy import Ev, Limits
from tests.conftest import run_until
from tests.net.test_adversarial_http import Client, parse_responses

B = "adv-bound"


def form(*parts: tuple[bytes, bytes]) -> bytes:
    """A multipart/form-data body from (Content-Disposition parameters, data) pairs."""
    out = b"".join(
        b"--%s\r\nContent-Disposition: form-data; %s\r\n\r\n%s\r\n" % (B.encode(), cd, data)
        for cd, data in parts
    )
    return out + b"--%s--\r\n" % B.encode()


def post(body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (
        b"POST /up HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
        % (B.encode(), n)
    ) + body


class Uploads:
    """A listener saving uploads into ``updir`` with file_upload_handler."""

    def __init__(self, mgr: mgpy.Manager, updir: Path, limits: Limits | None = None, **kw: Any):
        self.dir = updir
        self.names: list[str] = []
        self.closed = 0
        self.upload = mgpy.file_upload_handler(self.name_fn, **kw)
        self.lc = mgr.bind("127.0.0.1:0", self.handler, limits=limits)
        self.lc.set_protocol_http_websocket()
        self.port: int = self.lc.local[1]

    def name_fn(self, c: mgpy.Connection, name: str) -> str:
        self.names.append(name)
        return str(self.dir / name)

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST and ev_data.method == "GET":
            mgpy.http_reply(c, 200, "get " + ev_data.uri)
        elif ev == Ev.CLOSE:
            self.closed += 1
        else:
            self.upload(c, ev, ev_data)


@pytest.fixture
def updir(tmp_path: Path) -> Path:
    d = tmp_path / "up"
    d.mkdir()
    return d


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


HOSTILE_NAMES = [
    b'filename="../../../../etc/cron.d/x"',
    b'filename="/etc/passwd"',
    b'filename="..\\\\..\\\\boot.ini"',
    b'filename="C:\\\\Windows\\\\System32\\\\x.dll"',
    b"filename*=UTF-8''..%2F..%2Fescape.txt",
    b"filename*=UTF-8''%2Fabs.txt",
    b'filename=".htaccess"',
    b'filename=".."',
    b'filename="  ...  "',
    b'filename="CON"',
    b'filename="aux.tar.gz"',
    b'filename="x\xe2\x80\xaegnp.exe"',  # right-to-left override
    b'filename="' + b"A" * 300 + b'.txt"',
    b'filename="a:b|c?d*.txt"',
    b"filename*=UTF-8''%EF%BC%8E%EF%BC%8E%EF%BC%8Fwide.txt",  # fullwidth ../
    b'filename="%2e%2e%2fencoded.txt"',
]


class TestHostileNames:
    @pytest.mark.parametrize("param", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
    def test_file_lands_inside_under_a_safe_visible_name(
        self, mgr: mgpy.Manager, updir: Path, tmp_path: Path, param: bytes
    ) -> None:
        up = Uploads(mgr, updir)
        cl = Client(mgr, up.port)
        cl.send(post(form((b'name="f"; ' + param, b"PAYLOAD"))))
        [r] = cl.responses(1)
        assert r.status in (200, 403)
        saved = sorted(updir.iterdir())
        for p in saved:
            assert p.parent == updir and not p.name.startswith(".")
            assert len(p.name.encode()) <= 255
            assert not any(ch in p.name for ch in '/\\\x00:<>"|?*\u202e')
            assert p.read_bytes() == b"PAYLOAD"
        assert len(saved) == (1 if r.status == 200 else 0)
        outside = {p.name for p in tmp_path.iterdir()}
        assert outside == {"up"}  # nothing escaped next to the upload directory


class TestFloods:
    def test_stalled_uploads_that_vanish_leave_nothing(
        self, mgr: mgpy.Manager, updir: Path
    ) -> None:
        """100 uploads each send 200 KB and stall mid-file, then drop: the server holds a
        bounded amount per upload (not the data), and afterwards no temp file and no
        descriptor is left."""
        up = Uploads(mgr, updir)
        fds = open_fds()
        head = post(b"", length=10_000_000)
        part = b"--%s\r\nContent-Disposition: form-data; name=f; filename=s%%d.bin\r\n\r\n" % (
            B.encode()
        )
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            clients = []
            for i in range(100):
                cl = Client(mgr, up.port)
                cl.send(head + part % i + b"z" * 200_000)
                clients.append(cl)
            run_until(mgr, lambda: sum(p.stat().st_size for p in updir.iterdir()) >= 100 * 199_000)
            held = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert held < 100 * 64 * 1024  # 20 MB went through
        assert all(p.name.startswith(".") for p in updir.iterdir())
        for cl in clients:
            cl.close()
        run_until(mgr, lambda: up.closed == 100)
        assert list(updir.iterdir()) == []
        assert open_fds() <= fds + 1

    def test_part_flood_is_400_and_saves_nothing(self, mgr: mgpy.Manager, updir: Path) -> None:
        up = Uploads(mgr, updir, Limits(max_parts=50))
        parts = [(b'name="f%d"; filename="f%d.txt"' % (i, i), b"x") for i in range(60)]
        cl = Client(mgr, up.port)
        cl.send(post(form(*parts)) + b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        rs = parse_responses(cl.read_to_eof())
        assert [r.status for r in rs] == [400]  # and /after is not answered
        # files whose part ended before the flood was noticed are kept; no temp file is
        assert len(list(updir.iterdir())) <= 50
        assert not any(p.name.startswith(".") for p in updir.iterdir())

    def test_quota_breach_closes_without_answering_pipelined_requests(
        self, mgr: mgpy.Manager, updir: Path
    ) -> None:
        up = Uploads(mgr, updir, max_file_size=1000)
        cl = Client(mgr, up.port)
        body = form((b'name="f"; filename="big.bin"', b"b" * 5000))
        cl.send(post(body) + b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        rs = parse_responses(cl.read_to_eof())
        assert [r.status for r in rs] == [413]
        assert rs[0].headers.get("connection") == "close"
        assert list(updir.iterdir()) == []

    def test_oversized_part_headers_are_400(self, mgr: mgpy.Manager, updir: Path) -> None:
        up = Uploads(mgr, updir, Limits(max_part_headers=1024))
        cl = Client(mgr, up.port)
        cd = b'name="f"; filename="h.txt"\r\nX-Pad: ' + b"p" * 2000
        cl.send(post(form((cd, b"data"))))
        rs = parse_responses(cl.read_to_eof())
        assert [r.status for r in rs] == [400]
        assert list(updir.iterdir()) == []


def test_keep_alive_upload_then_get_on_one_connection(mgr: mgpy.Manager, updir: Path) -> None:
    """The honest path still works with everything above in place."""
    up = Uploads(mgr, updir)
    cl = Client(mgr, up.port)
    body = form((b'name="f"; filename="ok.txt"', b"fine"))
    cl.send(post(body) + b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
    rs = cl.responses(2)
    assert [r.status for r in rs] == [200, 200]
    assert rs[1].body == b"get /next"
    assert (updir / "ok.txt").read_bytes() == b"fine"

"""file_upload_handler: saving uploads to disk safely, with curl, requests and raw sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import mgpy
from mgpy import Ev, Limits
from tests.conftest import run_until
from tests.net.test_multipart import (
    BOUNDARY,
    RawClient,
    form_body,
    post_head,
    read_response,
    run_client,
)

MP_EVENTS = (
    Ev.HTTP_MULTIPART_REQUEST,
    Ev.HTTP_PART_BEGIN,
    Ev.HTTP_PART_DATA,
    Ev.HTTP_PART_END,
    Ev.HTTP_MULTIPART_REQUEST_END,
)


class App:
    """An upload server on 127.0.0.1:0 saving into ``dir``; records the plain fields it sees."""

    def __init__(self, updir: Path, limits: Limits | None = None, **kw: Any) -> None:
        self.dir = updir
        self.fields: dict[str, bytes] = {}
        self.cur_field: str | None = None
        self.names_asked: list[str] = []
        self.refuse: set[str] = set()
        self.closed = 0
        self.mgr = mgpy.Manager(limits=limits)
        self.upload = mgpy.file_upload_handler(self.name_fn, **kw)
        self.lc = self.mgr.bind("127.0.0.1:0", self.handler)
        self.lc.set_protocol_http_websocket()
        self.port: int = self.lc.local[1]
        self.url = f"http://127.0.0.1:{self.port}/upload"

    def name_fn(self, c: mgpy.Connection, name: str) -> str | None:
        self.names_asked.append(name)
        if name in self.refuse:
            return None
        return str(self.dir / name)

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev in MP_EVENTS:
            if ev == Ev.HTTP_PART_BEGIN and ev_data.file_name is None:
                self.cur_field = ev_data.var_name
                self.fields[ev_data.var_name] = b""
            elif ev == Ev.HTTP_PART_DATA and ev_data.file_name is None and self.cur_field:
                self.fields[self.cur_field] += ev_data.data
            self.upload(c, ev, ev_data)
        elif ev == Ev.HTTP_REQUEST:
            mgpy.http_reply(c, 404, "")
        elif ev == Ev.CLOSE:
            self.closed += 1

    def files(self) -> dict[str, bytes]:
        """Every file in the upload directory (hidden temp files included)."""
        return {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())}

    def close(self) -> None:
        self.mgr.close()


@pytest.fixture
def updir(tmp_path: Path) -> Path:
    d = tmp_path / "up"
    d.mkdir()
    return d


@pytest.fixture
def app(updir: Path) -> Iterator[App]:
    a = App(updir)
    yield a
    a.close()


def curl(mgr: mgpy.Manager, *args: str, timeout: float = 30) -> tuple[int, bytes]:
    """Run curl while polling ``mgr``; return (HTTP status, body)."""
    p = subprocess.Popen(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        run_until(mgr, lambda: p.poll() is not None, timeout)
        out, err = p.communicate()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    body, _, code = out.rpartition(b"\n")
    assert code.isdigit(), err
    return int(code), body


class TestCurl:
    def test_several_files_and_fields(self, app: App, tmp_path: Path) -> None:
        a = tmp_path / "a.txt"
        a.write_bytes(b"alpha\r\n--not a boundary\r\n")
        b = tmp_path / "photo.jpg"
        b.write_bytes(os.urandom(300_000))
        e = tmp_path / "empty.dat"
        e.write_bytes(b"")
        code, body = curl(
            app.mgr,
            "-F",
            "title=my files",
            "-F",
            f"file=@{a}",
            "-F",
            f"file=@{b};type=image/jpeg",
            "-F",
            "note=<-",
            "-F",
            f"file=@{e}",
            app.url,
        )
        assert code == 200
        assert json.loads(body) == {
            "ok": True,
            "files": [
                {"name": "a.txt", "size": a.stat().st_size},
                {"name": "photo.jpg", "size": 300_000},
                {"name": "empty.dat", "size": 0},
            ],
        }
        assert app.files() == {
            "a.txt": a.read_bytes(),
            "empty.dat": b"",
            "photo.jpg": b.read_bytes(),
        }
        assert app.fields == {"title": b"my files", "note": b""}

    def test_chunked_upload(self, app: App, tmp_path: Path) -> None:
        f = tmp_path / "c.bin"
        f.write_bytes(os.urandom(2_000_000))
        code, body = curl(app.mgr, "-H", "Transfer-Encoding: chunked", "-F", f"file=@{f}", app.url)
        assert code == 200
        assert json.loads(body)["files"] == [{"name": "c.bin", "size": 2_000_000}]
        assert app.files() == {"c.bin": f.read_bytes()}

    def test_path_in_the_file_name_is_stripped(self, app: App, tmp_path: Path) -> None:
        f = tmp_path / "x"
        f.write_bytes(b"payload")
        code, body = curl(app.mgr, "-F", f"file=@{f};filename=../../etc/pass?wd", app.url)
        assert code == 200
        assert json.loads(body)["files"] == [{"name": "passwd", "size": 7}]
        assert app.files() == {"passwd": b"payload"}
        assert sorted(os.listdir(app.dir.parent)) == ["up", "x"]  # nothing escaped "up"

    def test_refused_name_is_403_and_nothing_is_written(self, app: App, tmp_path: Path) -> None:
        f = tmp_path / "secret.txt"
        f.write_bytes(b"x" * 1000)
        app.refuse.add("secret.txt")
        code, body = curl(app.mgr, "-F", f"file=@{f}", app.url)
        assert code == 403
        assert json.loads(body) == {"ok": False, "error": "file name refused"}
        assert app.files() == {}


class TestSafety:
    def test_control_characters_and_dot_names(self, app: App) -> None:
        # control characters can only arrive percent-encoded (RFC 8187 filename*)
        body = form_body([("file", "X", b"1"), ("file", "  .hidden. ", b"2")]).replace(
            b'filename="X"', b"filename*=UTF-8''a%01b%7Fc%E2%80%AEtxt.exe"
        )
        cli = run_client(app.mgr, RawClient(app.port, [post_head("/upload", len(body)) + body]))
        assert cli.responses[0].status == 200
        assert [f["name"] for f in json.loads(cli.responses[0].body)["files"]] == [
            "abctxt.exe",
            "hidden",
        ]
        assert app.names_asked == ["abctxt.exe", "hidden"]

    def test_name_that_sanitises_to_nothing_is_refused(self, app: App) -> None:
        body = form_body([("file", "../..", b"1")])
        cli = run_client(app.mgr, RawClient(app.port, [post_head("/upload", len(body)) + body]))
        assert cli.responses[0].status == 403
        assert app.names_asked == [] and app.files() == {}

    def test_empty_file_input_and_fields_are_left_to_the_app(self, app: App) -> None:
        body = form_body([("file", "", b""), ("comment", None, b"hi")])
        cli = run_client(app.mgr, RawClient(app.port, [post_head("/upload", len(body)) + body]))
        assert json.loads(cli.responses[0].body) == {"ok": True, "files": []}
        assert app.fields == {"comment": b"hi"} and app.files() == {}

    def test_temp_file_is_private_and_hidden_until_the_part_ends(self, app: App) -> None:
        body = form_body([("file", "doc.txt", b"x" * 100_000)])
        cut = body.index(b"x" * 100_000) + 50_000
        with socket.create_connection(("127.0.0.1", app.port)) as s:
            s.sendall(post_head("/upload", len(body)) + body[:cut])  # fits in socket buffers
            run_until(app.mgr, lambda: any(p.name.endswith(".part") for p in app.dir.iterdir()))
            (tmp,) = list(app.dir.iterdir())
            assert tmp.name.startswith(".doc.txt.")
            assert tmp.stat().st_mode & 0o777 == 0o600
            run_until(app.mgr, lambda: tmp.stat().st_size == 50_000)
        run_until(app.mgr, lambda: app.closed == 1)
        assert not tmp.exists()  # the client went away: removed
        assert app.files() == {}

    def test_aborted_upload_leaves_nothing(self, app: App) -> None:
        body = form_body([("file", "keep.txt", b"k"), ("file", "big.bin", b"b" * 500_000)])
        cut = body.index(b"b" * 1000) + 200_000
        run_client(
            app.mgr,
            RawClient(
                app.port, [post_head("/upload", len(body)) + body[:cut]], close_after_send=True
            ),
        )
        run_until(app.mgr, lambda: app.closed == 1)
        # the first file had ended cleanly before the drop: it is kept, the second is gone
        assert app.files() == {"keep.txt": b"k"}

    def test_existing_file_is_replaced_atomically_by_default(self, app: App) -> None:
        (app.dir / "r.txt").write_bytes(b"old")
        body = form_body([("file", "r.txt", b"new")])
        cli = run_client(app.mgr, RawClient(app.port, [post_head("/upload", len(body)) + body]))
        assert cli.responses[0].status == 200
        assert app.files() == {"r.txt": b"new"}

    def test_overwrite_false_picks_a_free_name(self, updir: Path) -> None:
        a = App(updir, overwrite=False)
        try:
            (updir / "r.txt").write_bytes(b"old")
            body = form_body([("file", "r.txt", b"one"), ("file", "r.txt", b"two")])
            cli = run_client(a.mgr, RawClient(a.port, [post_head("/upload", len(body)) + body]))
            assert [f["name"] for f in json.loads(cli.responses[0].body)["files"]] == [
                "r (1).txt",
                "r (2).txt",
            ]
            assert a.files() == {"r.txt": b"old", "r (1).txt": b"one", "r (2).txt": b"two"}
        finally:
            a.close()

    def test_unwritable_target_is_500_without_details(self, updir: Path) -> None:
        a = App(updir)
        a.dir = updir / "missing"  # name_fn now points into a directory that does not exist
        try:
            body = form_body([("file", "f.txt", b"1")])
            cli = run_client(
                a.mgr, RawClient(a.port, [post_head("/upload", len(body)) + body], read_eof=True)
            )
            assert cli.responses[0].status == 500
            assert json.loads(cli.responses[0].body) == {
                "ok": False,
                "error": "the file could not be written",
            }
            assert cli.eof
        finally:
            a.close()


class TestQuotas:
    def test_file_over_max_file_size_is_413_and_removed(self, updir: Path) -> None:
        a = App(updir, max_file_size=100_000)
        try:
            body = form_body(
                [("file", "ok.bin", b"o" * 100_000), ("file", "big.bin", b"b" * 3_000_000)]
            )
            # the client sends everything, then reads: it must get the 413, not a reset
            cli = run_client(
                a.mgr, RawClient(a.port, [post_head("/upload", len(body)), body], read_eof=True)
            )
            r = cli.responses[0]
            assert r.status == 413 and r.headers["connection"] == "close"
            assert json.loads(r.body)["ok"] is False
            assert cli.eof
            assert a.files() == {"ok.bin": b"o" * 100_000}
        finally:
            a.close()

    def test_request_over_max_total_size_is_413(self, updir: Path) -> None:
        a = App(updir, max_total_size=150_000)
        try:
            body = form_body([("file", "1.bin", b"1" * 100_000), ("file", "2.bin", b"2" * 100_000)])
            cli = run_client(a.mgr, RawClient(a.port, [post_head("/upload", len(body)) + body]))
            assert cli.responses[0].status == 413
            assert a.files() == {"1.bin": b"1" * 100_000}
        finally:
            a.close()

    def test_curl_gets_413_with_expect_continue(self, updir: Path, tmp_path: Path) -> None:
        a = App(updir, max_file_size=1000)
        try:
            f = tmp_path / "big.bin"
            f.write_bytes(b"z" * 5_000_000)
            code, body = curl(a.mgr, "-F", f"file=@{f}", a.url)
            assert code == 413
            assert json.loads(body)["ok"] is False
            assert a.files() == {}
        finally:
            a.close()


class TestReplyAndEndpoint:
    def test_reply_false_lets_the_app_answer_with_what_was_saved(self, updir: Path) -> None:
        saved: list[Any] = []
        upload = mgpy.file_upload_handler(lambda c, n: str(updir / n), reply=False)

        def handler(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev in MP_EVENTS:
                upload(c, ev, ev_data)
                if ev == Ev.HTTP_MULTIPART_REQUEST_END and ev_data.status == 0:
                    saved.extend(ev_data.user_data)
                    mgpy.http_reply(c, 201, f"stored {len(ev_data.user_data)}")

        with mgpy.Manager() as mgr:
            lc = mgr.bind("127.0.0.1:0", handler)
            lc.set_protocol_http_websocket()
            body = form_body([("doc", "d.txt", b"ddd")])
            cli = run_client(mgr, RawClient(lc.local[1], [post_head("/x", len(body)) + body]))
        assert cli.responses[0].status == 201 and cli.responses[0].body == b"stored 1"
        assert saved == [{"name": "d.txt", "size": 3, "path": str(updir / "d.txt"), "field": "doc"}]

    def test_app_answer_is_not_doubled(self, updir: Path) -> None:
        upload = mgpy.file_upload_handler(lambda c, n: str(updir / n))

        def handler(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_MULTIPART_REQUEST_END and ev_data.status == 0:
                mgpy.http_reply(c, 200, "mine")
            if ev in MP_EVENTS:
                upload(c, ev, ev_data)
            elif ev == Ev.HTTP_REQUEST:
                mgpy.http_reply(c, 200, "get")

        with mgpy.Manager() as mgr:
            lc = mgr.bind("127.0.0.1:0", handler)
            lc.set_protocol_http_websocket()
            body = form_body([("f", "d.txt", b"d")])
            wire = post_head("/x", len(body)) + body + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
            cli = run_client(mgr, RawClient(lc.local[1], [wire], n=2), 10)
        # one answer per request: the second response is the GET's, not a stray upload JSON
        assert [r.body for r in cli.responses] == [b"mine", b"get"]

    def test_as_endpoint_handler_with_requests(self, updir: Path) -> None:
        with mgpy.Manager() as mgr:
            lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: None)
            mgpy.register_http_endpoint(
                lc, "/upload", mgpy.file_upload_handler(lambda c, n: str(updir / n))
            )
            url = f"http://127.0.0.1:{lc.local[1]}/upload"
            result: dict[str, Any] = {}

            def go() -> None:
                with requests.Session() as s:
                    result["get"] = s.get(url, timeout=10)
                    result["post"] = s.post(
                        url,
                        files=[("file", ("x.txt", b"xx")), ("file", ("y.bin", b"\0" * 70_000))],
                        data={"k": "v"},
                        timeout=10,
                    )
                    result["form"] = s.post(url, data={"k": "v"}, timeout=10)

            import threading

            t = threading.Thread(target=go, daemon=True)
            t.start()
            run_until(mgr, lambda: not t.is_alive(), 20)
        assert result["get"].status_code == 405 and result["get"].headers["Allow"] == "POST"
        assert result["post"].json() == {
            "ok": True,
            "files": [{"name": "x.txt", "size": 2}, {"name": "y.bin", "size": 70_000}],
        }
        assert result["form"].status_code == 400
        assert sorted(os.listdir(updir)) == ["x.txt", "y.bin"]


_SERVER = textwrap.dedent(
    """
    import os, signal, sys
    import mgpy
    mgr = mgpy.Manager()
    lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: None)
    mgpy.register_http_endpoint(
        lc, "/upload", mgpy.file_upload_handler(lambda c, n: os.path.join(sys.argv[1], n)))
    print(lc.local[1], flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    while not stop:
        mgr.poll(100)
    """
)


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_gib_upload_streams_to_disk_in_bounded_memory(updir: Path) -> None:
    """1 GiB generated on the fly goes to disk while the server's peak RSS stays < 64 MiB."""
    size = 1 << 30
    block = os.urandom(1 << 20)
    root = Path(__file__).resolve().parents[2]
    p = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(updir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert p.stdout is not None
        port = int(p.stdout.readline())
        pre = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        post = f"\r\n--{BOUNDARY}--\r\n".encode()
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(post_head("/upload", len(pre) + size + len(post)) + pre)
            for i in range(size // len(block)):
                s.sendall(i.to_bytes(8, "big") + block[8:])
            s.sendall(post)
            r = read_response(s, bytearray())
        elapsed = time.monotonic() - t0
        hwm = _vm_hwm_kib(p.pid)
    finally:
        p.terminate()
        p.wait(10)
    assert r is not None and r.status == 200
    assert json.loads(r.body)["files"] == [{"name": "big.bin", "size": size}]
    out = updir / "big.bin"
    with out.open("rb") as f:
        for i in range(size // len(block)):
            assert f.read(len(block)) == i.to_bytes(8, "big") + block[8:], f"block {i}"
    out.unlink()
    mbps = size / elapsed / 1e6
    print(f"\n1 GiB upload: {elapsed:.1f} s, {mbps:.0f} MB/s, server peak RSS {hwm / 1024:.1f} MiB")
    assert hwm < 64 * 1024, f"server peak RSS {hwm} KiB"
    assert mbps > 20, f"too slow: {mbps:.0f} MB/s"

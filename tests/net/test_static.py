"""serve_http over real sockets: bytes, headers, HEAD, redirects, errors, conditionals, ranges.

Clients are http.client, raw sockets and curl in a worker thread; the Manager
polls in the test thread.  Files are real files in tmp_path.
"""

from __future__ import annotations

import html as html_lib
import os
from pathlib import Path

import pytest

import mgpy
from mgpy.proto.httputil import format_http_date
from tests.net.static_helpers import (
    Resp,
    StaticServer,
    parse_head,
    split_byteranges,
    write,
)

SMALL = bytes(range(256)) * 4  # 1 KiB, served from the memory cache
BIG = os.urandom(300_000)  # above the cache limit: sendfile pump


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "www"
    write(r / "small.bin", SMALL)
    write(r / "big.bin", BIG)
    write(r / "index.html", "<h1>home</h1>\n")
    write(r / "docs" / "index.htm", "docs index\n")
    write(r / "docs" / "page.txt", "page\n")
    write(r / "empty.txt", b"")
    write(r / "notes.md", "# notes\n")
    (r / "nodir").mkdir()
    write(r / "404.html", "<p>custom not found</p>\n")
    return r


@pytest.fixture
def srv(mgr: mgpy.Manager, root: Path) -> StaticServer:
    return StaticServer(mgr, mgpy.ServeOpts(document_root=str(root)))


def without_date(r: Resp) -> list[tuple[str, str]]:
    return [(k, v) for k, v in r.headers if k.lower() != "date"]


class TestBodiesAndHeaders:
    def test_small_file_exact_bytes_and_validators(self, srv: StaticServer, root: Path) -> None:
        r = srv.get("/small.bin")
        assert r.status == 200
        assert r.body == SMALL
        assert r.h("Content-Length") == "1024"
        assert r.h("Content-Type") == "application/octet-stream"
        assert r.h("Accept-Ranges") == "bytes"
        st = os.stat(root / "small.bin")
        assert r.h("Last-Modified") == format_http_date(st.st_mtime)
        etag = r.h("ETag")
        assert etag is not None and etag.startswith('"') and not etag.startswith("W/")
        assert r.h("Vary") is None  # nothing to negotiate for a 1 KiB binary

    def test_big_file_goes_out_whole_with_sendfile(self, srv: StaticServer) -> None:
        r = srv.get("/big.bin")
        assert r.status == 200 and r.h("Content-Length") == str(len(BIG))
        assert r.body == BIG

    def test_empty_file(self, srv: StaticServer) -> None:
        r = srv.get("/empty.txt")
        assert (r.status, r.body, r.h("Content-Length")) == (200, b"", "0")
        assert r.h("Content-Type") == "text/plain; charset=utf-8"

    def test_curl_downloads_identical_bytes(self, srv: StaticServer, tmp_path: Path) -> None:
        out = tmp_path / "dl.bin"
        p = srv.curl("/big.bin", "-o", str(out), "-w", "%{http_code} %{size_download}")
        assert p.stdout == f"200 {len(BIG)}".encode(), p.stderr
        assert out.read_bytes() == BIG

    @pytest.mark.parametrize("path", ["/small.bin", "/big.bin", "/index.html", "/empty.txt"])
    def test_head_has_the_get_headers_and_no_body(self, srv: StaticServer, path: str) -> None:
        # pipelined HEAD then GET on one connection: the GET response must start
        # right after the HEAD's head, so HEAD sent no body bytes at all
        req = (
            f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = srv.raw(req.encode())
        s1, h1, off = parse_head(data)
        s2, h2, off2 = parse_head(data[off:])
        assert (s1, s2) == (200, 200)
        assert data[off : off + 5] == b"HTTP/"
        strip = {"date", "connection"}
        assert [x for x in h1 if x[0].lower() not in strip] == [
            x for x in h2 if x[0].lower() not in strip
        ]
        n = int(dict((k.lower(), v) for k, v in h2)["content-length"])
        assert len(data) - off - off2 == n

    def test_index_files_in_order_and_root_index(self, mgr: mgpy.Manager, root: Path) -> None:
        write(root / "docs" / "index.html", "html wins\n")
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(root)))
        assert srv.get("/").body == b"<h1>home</h1>\n"
        assert srv.get("/docs/").body == b"html wins\n"
        srv2 = StaticServer(
            mgr, mgpy.ServeOpts(document_root=str(root), index_files=["index.htm", "index.html"])
        )
        assert srv2.get("/docs/").body == b"docs index\n"

    def test_custom_mime_types(self, mgr: mgpy.Manager, root: Path) -> None:
        srv = StaticServer(
            mgr,
            mgpy.ServeOpts(document_root=str(root), custom_mime_types={"md": "text/x-notes"}),
        )
        assert srv.get("/notes.md").h("Content-Type") == "text/x-notes"
        assert srv.get("/index.html").h("Content-Type") == "text/html; charset=utf-8"

    def test_keep_alive_pipeline_of_mixed_responses(self, srv: StaticServer) -> None:
        reqs = [
            "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n",
            "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /docs HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ]
        data = srv.raw("".join(reqs).encode(), until_close=False)
        got = []
        pos = 0
        while pos < len(data):
            status, hs, off = parse_head(data[pos:])
            n = int(dict((k.lower(), v) for k, v in hs).get("content-length", "0"))
            got.append((status, data[pos + off : pos + off + n]))
            pos += off + n
        assert [s for s, _ in got] == [200, 200, 206, 404, 301, 200]
        assert got[0][1] == SMALL and got[1][1] == BIG and got[2][1] == BIG[10:20]
        assert got[5][1] == SMALL


class TestStatuses:
    def test_directory_without_slash_is_301_keeping_the_query(self, srv: StaticServer) -> None:
        r = srv.get("/docs?x=1&y=2")
        assert r.status == 301
        assert r.h("Location") == "/docs/?x=1&y=2"

    def test_redirect_location_is_normalized_not_an_open_redirect(
        self, srv: StaticServer, root: Path
    ) -> None:
        (root / "evil.com").mkdir()
        data = srv.raw(b"GET //evil.com HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, hs, _ = parse_head(data)
        assert status == 301
        assert dict(hs)["Location"] == "/evil.com/"

    def test_missing_is_404(self, srv: StaticServer) -> None:
        r = srv.get("/nope.txt")
        assert r.status == 404 and r.body == b"404 Not Found\n"

    def test_file_with_trailing_slash_is_404(self, srv: StaticServer) -> None:
        assert srv.get("/small.bin/").status == 404

    def test_directory_without_index_is_403_unless_listing(self, srv: StaticServer) -> None:
        assert srv.get("/nodir/").status == 403

    def test_page404(self, mgr: mgpy.Manager, root: Path) -> None:
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(root), page404="404.html"))
        r = srv.get("/nope")
        assert r.status == 404
        assert r.body == b"<p>custom not found</p>\n"
        assert r.h("Content-Type") == "text/html; charset=utf-8"
        h = srv.get("/nope", method="HEAD")
        assert (h.status, h.body, h.h("Content-Length")) == (404, b"", str(len(r.body)))

    def test_missing_page404_falls_back_to_plain_404(self, mgr: mgpy.Manager, root: Path) -> None:
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(root), page404="gone.html"))
        assert srv.get("/nope").body == b"404 Not Found\n"

    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
    def test_other_methods_are_405_with_allow(self, srv: StaticServer, method: str) -> None:
        r = srv.get("/small.bin", method=method)
        assert r.status == 405
        assert r.h("Allow") == "GET, HEAD, OPTIONS"

    def test_options_is_204_with_allow(self, srv: StaticServer) -> None:
        r = srv.get("/small.bin", method="OPTIONS")
        assert (r.status, r.body, r.h("Allow")) == (204, b"", "GET, HEAD, OPTIONS")

    def test_extra_headers_on_every_response(self, mgr: mgpy.Manager, root: Path) -> None:
        srv = StaticServer(
            mgr,
            mgpy.ServeOpts(
                document_root=str(root),
                extra_headers={"Access-Control-Allow-Origin": "*", "X-Test": "1"},
            ),
        )
        etag = srv.get("/small.bin").h("ETag")
        assert etag is not None
        cases = [
            srv.get("/small.bin"),
            srv.get("/big.bin", method="HEAD"),
            srv.get("/small.bin", {"If-None-Match": etag}),
            srv.get("/small.bin", {"Range": "bytes=0-1"}),
            srv.get("/small.bin", {"Range": "bytes=0-1,5-6"}),
            srv.get("/small.bin", {"Range": "bytes=5000-"}),
            srv.get("/nope"),
            srv.get("/docs"),
            srv.get("/nodir/"),
            srv.get("/small.bin", method="POST"),
            srv.get("/small.bin", method="OPTIONS"),
        ]
        assert [r.status for r in cases] == [200, 200, 304, 206, 206, 416, 404, 301, 403, 405, 204]
        for r in cases:
            assert r.h("Access-Control-Allow-Origin") == "*", r
            assert r.h("X-Test") == "1"

    def test_bad_extra_header_is_refused_by_the_application_api(self, root: Path) -> None:
        with mgpy.Manager() as m:
            srv = StaticServer(
                m, mgpy.ServeOpts(document_root=str(root), extra_headers=[("X", "a\r\nb: c")])
            )
            r = srv.get("/small.bin")
            # the handler raised LocalProtocolError: the connection answers 500, never splits
            assert r.status == 500
            assert r.h("b") is None


class TestConditional:
    def test_if_none_match_gives_304_with_etag_and_no_body(self, srv: StaticServer) -> None:
        for path in ("/small.bin", "/big.bin"):
            etag = srv.get(path).h("ETag")
            assert etag is not None
            for value in (etag, "W/" + etag, f'"nope", {etag}', "*"):
                r = srv.get(path, {"If-None-Match": value})
                assert (r.status, r.body) == (304, b""), value
                assert r.h("ETag") == etag
                assert r.h("Content-Length") is None
            assert srv.get(path, {"If-None-Match": '"other"'}).status == 200

    def test_if_modified_since(self, srv: StaticServer, root: Path) -> None:
        lm = srv.get("/big.bin").h("Last-Modified")
        assert lm is not None
        assert srv.get("/big.bin", {"If-Modified-Since": lm}).status == 304
        old = format_http_date(os.stat(root / "big.bin").st_mtime - 3600)
        assert srv.get("/big.bin", {"If-Modified-Since": old}).status == 200
        # If-None-Match takes precedence (RFC 9110 13.2.2)
        r = srv.get("/big.bin", {"If-Modified-Since": lm, "If-None-Match": '"x"'})
        assert r.status == 200

    def test_curl_time_cond(self, srv: StaticServer, root: Path) -> None:
        p = srv.curl(
            "/big.bin", "-o", "/dev/null", "-w", "%{http_code}", "-z", str(root / "big.bin")
        )
        assert p.stdout == b"304"

    def test_if_match_and_if_unmodified_since_give_412(self, srv: StaticServer) -> None:
        r = srv.get("/small.bin")
        assert srv.get("/small.bin", {"If-Match": '"nope"'}).status == 412
        assert srv.get("/small.bin", {"If-Match": r.h("ETag") or ""}).status == 200
        old = "Sun, 06 Nov 1994 08:49:37 GMT"
        assert srv.get("/small.bin", {"If-Unmodified-Since": old}).status == 412

    def test_a_changed_file_is_served_new_at_once(self, srv: StaticServer, root: Path) -> None:
        first = srv.get("/small.bin")
        write(root / "small.bin", b"changed!")
        os.utime(root / "small.bin", ns=(1, 1_000_000_000))
        second = srv.get("/small.bin")
        assert second.body == b"changed!"
        assert second.h("ETag") != first.h("ETag")
        r = srv.get("/small.bin", {"If-None-Match": first.h("ETag") or ""})
        assert r.status == 200 and r.body == b"changed!"

    def test_a_deleted_file_is_404_at_once(self, srv: StaticServer, root: Path) -> None:
        assert srv.get("/small.bin").status == 200
        os.unlink(root / "small.bin")
        assert srv.get("/small.bin").status == 404


class TestRanges:
    @pytest.mark.parametrize("path", ["/small.bin", "/big.bin"])
    @pytest.mark.parametrize(
        ("spec", "first", "last"),
        [("0-0", 0, 0), ("10-99", 10, 99), ("100-", 100, None), ("-500", -500, None)],
    )
    def test_single_range_forms(
        self, srv: StaticServer, path: str, spec: str, first: int, last: int | None
    ) -> None:
        data = SMALL if path == "/small.bin" else BIG
        size = len(data)
        a = first if first >= 0 else size + first
        b = size - 1 if last is None else last
        r = srv.get(path, {"Range": "bytes=" + spec})
        assert r.status == 206
        assert r.body == data[a : b + 1]
        assert r.h("Content-Range") == f"bytes {a}-{b}/{size}"
        assert r.h("Content-Length") == str(b - a + 1)

    @pytest.mark.parametrize("path", ["/small.bin", "/big.bin"])
    def test_multiple_ranges_are_multipart_byteranges(self, srv: StaticServer, path: str) -> None:
        data = SMALL if path == "/small.bin" else BIG
        size = len(data)
        r = srv.get(path, {"Range": "bytes=0-9,100-199,-7"})
        assert r.status == 206
        ctype = r.h("Content-Type") or ""
        assert r.h("Content-Length") == str(len(r.body))
        parts = split_byteranges(r.body, ctype)
        assert [(cr, d) for _, cr, d in parts] == [
            (f"bytes 0-9/{size}", data[0:10]),
            (f"bytes 100-199/{size}", data[100:200]),
            (f"bytes {size - 7}-{size - 1}/{size}", data[-7:]),
        ]
        assert all(ct == "application/octet-stream" for ct, _, _ in parts)

    def test_curl_ranges(self, srv: StaticServer, tmp_path: Path) -> None:
        out = tmp_path / "part"
        p = srv.curl("/big.bin", "-r", "1000-1999", "-o", str(out), "-w", "%{http_code}")
        assert p.stdout == b"206" and out.read_bytes() == BIG[1000:2000]
        p = srv.curl("/big.bin", "-r", "-100")
        assert p.stdout == BIG[-100:]

    def test_unsatisfiable_is_416_with_size(self, srv: StaticServer) -> None:
        for path, size in (("/small.bin", len(SMALL)), ("/big.bin", len(BIG))):
            r = srv.get(path, {"Range": f"bytes={size}-"})
            assert r.status == 416
            assert r.h("Content-Range") == f"bytes */{size}"

    def test_malformed_range_is_ignored(self, srv: StaticServer) -> None:
        r = srv.get("/small.bin", {"Range": "bytes=9-1"})
        assert (r.status, r.body) == (200, SMALL)
        r = srv.get("/small.bin", {"Range": "lines=1-2"})
        assert r.status == 200

    def test_if_range(self, srv: StaticServer) -> None:
        full = srv.get("/big.bin")
        etag, lm = full.h("ETag") or "", full.h("Last-Modified") or ""
        r = srv.get("/big.bin", {"Range": "bytes=0-9", "If-Range": etag})
        assert (r.status, r.body) == (206, BIG[:10])
        r = srv.get("/big.bin", {"Range": "bytes=0-9", "If-Range": lm})
        assert r.status == 206
        r = srv.get("/big.bin", {"Range": "bytes=0-9", "If-Range": '"stale"'})
        assert (r.status, r.body) == (200, BIG)
        r = srv.get("/big.bin", {"Range": "bytes=0-9", "If-Range": "W/" + etag})
        assert r.status == 200  # a weak validator never allows a range

    def test_head_ignores_range(self, srv: StaticServer) -> None:
        r = srv.get("/big.bin", {"Range": "bytes=0-9"}, method="HEAD")
        assert (r.status, r.body, r.h("Content-Length")) == (200, b"", str(len(BIG)))

    def test_range_on_changed_file_needs_if_range_to_be_safe(
        self, srv: StaticServer, root: Path
    ) -> None:
        etag = srv.get("/big.bin").h("ETag") or ""
        new = os.urandom(len(BIG))
        write(root / "big.bin", new)
        os.utime(root / "big.bin", ns=(5, 5_000_000_000))
        r = srv.get("/big.bin", {"Range": "bytes=0-9", "If-Range": etag})
        assert (r.status, r.body) == (200, new)


class TestOddNamesAndRaces:
    def test_non_utf8_file_name_is_listed_and_served(
        self, mgr: mgpy.Manager, tmp_path: Path
    ) -> None:
        d = tmp_path / "www"
        d.mkdir()
        name = os.fsdecode(b"caf\xe9 latin1.txt")
        write(d / name, b"latin-1 named")
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(d), enable_directory_listing=True))
        html = srv.get("/").body.decode()
        assert 'href="./caf%E9%20latin1.txt"' in html and "caf\ufffd latin1.txt" in html
        r = srv.get("/caf%E9%20latin1.txt")
        assert (r.status, r.body) == (200, b"latin-1 named")

    def test_file_changing_between_check_and_open_is_resolved_again(
        self, srv: StaticServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import mgpy.http.static.serve as static_mod

        real_open = static_mod.open_checked
        calls = []

        def flaky(path: str, dev: int, ino: int) -> tuple[int, os.stat_result] | None:
            calls.append(path)
            return None if len(calls) == 1 else real_open(path, dev, ino)

        monkeypatch.setattr(static_mod, "open_checked", flaky)
        r = srv.get("/big.bin")
        assert (r.status, r.body) == (200, BIG)
        assert len(calls) == 2

    def test_file_changing_all_the_time_is_503(
        self, srv: StaticServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import mgpy.http.static.serve as static_mod

        real_open = static_mod.open_checked

        def never(path: str, dev: int, ino: int) -> tuple[int, os.stat_result] | None:
            return None if path.endswith("big.bin") else real_open(path, dev, ino)

        monkeypatch.setattr(static_mod, "open_checked", never)
        r = srv.get("/big.bin")
        assert r.status == 503 and r.h("Retry-After") == "1"
        assert srv.get("/small.bin").status == 200  # the connection and the rest are fine


class TestCaches:
    def test_small_file_bytes_stay_within_the_bound(
        self, srv: StaticServer, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from mgpy.http.static.fs import BODIES

        monkeypatch.setattr(BODIES, "limit", 256 * 1024)
        files = {f"/f{i}.bin": os.urandom(60_000) for i in range(12)}
        for path, data in files.items():
            write(root / path[1:], data)
        for _ in range(2):
            for path, data in files.items():
                assert srv.get(path).body == data
                assert BODIES.total <= 256 * 1024

    def test_cached_uris_are_bounded(
        self, srv: StaticServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import mgpy.http.static.fs as fs

        monkeypatch.setattr(fs, "MAX_ENTRIES", 8)
        for i in range(30):  # 30 spellings of one file
            assert srv.get("/" * (i + 1) + "small.bin").body == SMALL
        root = fs.root_of(srv.opts)
        assert len(root.entries) <= 8

    def test_new_index_file_is_picked_up_on_revalidation(
        self, srv: StaticServer, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import mgpy.http.static.serve as static_mod

        assert srv.get("/docs/").body == b"docs index\n"
        monkeypatch.setattr(static_mod, "REVALIDATE", 0.0)
        write(root / "docs" / "index.html", "now html\n")
        assert srv.get("/docs/").body == b"now html\n"


class TestListing:
    def test_listing_is_sorted_escaped_and_hides_dotfiles(
        self, mgr: mgpy.Manager, tmp_path: Path
    ) -> None:
        r_ = tmp_path / "www"
        for name in (
            "b.txt",
            "a.txt",
            "<img src=x onerror=alert(1)>.txt",
            'q"uote&amp.txt',
            "javascript:alert(1)",
            "spa ce.txt",
            "ü.txt",
            ".secret",
        ):
            write(r_ / name, "x")
        (r_ / "zdir").mkdir()
        (r_ / ".hiddendir").mkdir()
        os.symlink(str(tmp_path), str(r_ / "outside_link"))
        srv = StaticServer(
            mgr, mgpy.ServeOpts(document_root=str(r_), enable_directory_listing=True)
        )
        r = srv.get("/")
        assert r.status == 200
        assert r.h("Content-Type") == "text/html; charset=utf-8"
        html = r.body.decode()
        assert "<img" not in html and "onerror=alert(1)>" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;.txt" in html
        assert "q&quot;uote&amp;amp.txt" in html
        assert 'href="./javascript:alert(1)"' in html  # relative, never a scheme
        assert 'href="./spa%20ce.txt"' in html and 'href="./%C3%BC.txt"' in html
        assert ".secret" not in html and ".hiddendir" not in html
        assert "outside_link" not in html
        names = [ln.split('">', 1)[1].split("<", 1)[0] for ln in html.splitlines() if "href" in ln]
        assert names[0] == "zdir/"  # directories first, then files sorted by name
        files = [html_lib.unescape(n) for n in names[1:]]
        assert files == sorted(files, key=lambda n: n.encode())
        assert files.index("a.txt") + 1 == files.index("b.txt")
        assert "../" not in names  # no parent link at the root
        sub = srv.get("/zdir/").body.decode()
        assert 'href="../"' in sub

    def test_listing_off_by_default(self, srv: StaticServer) -> None:
        assert srv.get("/nodir/").status == 403


class TestServeFile:
    def test_serve_file_with_mime_and_headers(self, mgr: mgpy.Manager, root: Path) -> None:
        def handler(c: mgpy.Connection, ev: object, hm: object) -> None:
            if ev == mgpy.Ev.HTTP_REQUEST:
                assert isinstance(hm, mgpy.HttpMessage)
                mgpy.serve_file(
                    c,
                    hm,
                    str(root / "big.bin"),
                    mime="application/x-test",
                    extra_headers={"X-From": "serve_file"},
                )

        lc = mgr.bind("127.0.0.1:0", handler)
        lc.set_protocol_http_websocket()
        srv = StaticServer.__new__(StaticServer)
        srv.mgr, srv.port = mgr, lc.local[1]
        r = srv.get("/anything")
        assert (r.status, r.body) == (200, BIG)
        assert r.h("Content-Type") == "application/x-test" and r.h("X-From") == "serve_file"
        r = srv.get("/anything", {"Range": "bytes=5-9"})
        assert (r.status, r.body) == (206, BIG[5:10])
        r = srv.get("/anything", {"If-None-Match": r.h("ETag") or ""})
        assert r.status == 304 and r.h("X-From") == "serve_file"

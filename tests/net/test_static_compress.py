"""serve_http content codings: precompressed twins, on-the-fly brotli, q-value negotiation.

Every compressed body is decompressed and compared with the file.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import pytest

import mgpy
from tests.net.static_helpers import StaticServer, write

JS = b"".join(b"function f%d(x) { return x * %d + 'abc'; }\n" % (i, i) for i in range(400))
CSS = b"body { color: #123456; margin: 0 auto; }\n" * 300
TINY = b"console.log(1);\n"  # below the on-the-fly minimum


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "www"
    write(r / "app.js", JS)
    write(r / "style.css", CSS)
    write(r / "style.css.br", brotli.compress(CSS, quality=11))
    write(r / "style.css.gz", gzip.compress(CSS))
    write(r / "tiny.js", TINY)
    write(r / "data.bin", os.urandom(4096))
    write(r / "big.js", JS * 40)  # above the one-call limit: compressed as it streams
    write(r / "huge.txt", b"")
    os.truncate(r / "huge.txt", 33 * 1024 * 1024)  # above the on-the-fly maximum (sparse)
    return r


@pytest.fixture
def srv(mgr: mgpy.Manager, root: Path) -> StaticServer:
    return StaticServer(mgr, mgpy.ServeOpts(document_root=str(root)))


class TestOnTheFlyBrotli:
    def test_js_is_brotli_compressed_when_accepted(self, srv: StaticServer) -> None:
        plain = srv.get("/app.js")
        r = srv.get("/app.js", {"Accept-Encoding": "gzip, deflate, br"})
        assert r.status == 200
        assert r.h("Content-Encoding") == "br"
        assert r.h("Vary") == "Accept-Encoding" and plain.h("Vary") == "Accept-Encoding"
        assert brotli.decompress(r.body) == JS
        assert len(r.body) < len(JS) // 4
        assert r.h("Content-Length") == str(len(r.body))
        assert r.h("ETag") != plain.h("ETag")  # one strong ETag per representation
        assert plain.h("Content-Encoding") is None and plain.body == JS

    def test_compressed_once_then_cached(
        self, srv: StaticServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls = []
        real = brotli.compress

        def counting(data: bytes, **kw: int) -> bytes:
            calls.append(len(data))
            return bytes(real(data, **kw))

        monkeypatch.setattr(brotli, "compress", counting)
        bodies = {srv.get("/style.css", {"Accept-Encoding": "br"}, method="HEAD").h("ETag")}
        for _ in range(3):
            r = srv.get("/app.js", {"Accept-Encoding": "br"})
            assert brotli.decompress(r.body) == JS
            bodies.add(r.h("ETag"))
        assert calls == [len(JS)]

    def test_head_has_the_compressed_length(self, srv: StaticServer) -> None:
        g = srv.get("/app.js", {"Accept-Encoding": "br"})
        h = srv.get("/app.js", {"Accept-Encoding": "br"}, method="HEAD")
        assert (h.status, h.body) == (200, b"")
        assert h.h("Content-Length") == str(len(g.body))
        assert h.h("ETag") == g.h("ETag") and h.h("Content-Encoding") == "br"

    def test_304_for_the_brotli_etag(self, srv: StaticServer) -> None:
        etag = srv.get("/app.js", {"Accept-Encoding": "br"}).h("ETag") or ""
        r = srv.get("/app.js", {"Accept-Encoding": "br", "If-None-Match": etag})
        assert (r.status, r.h("ETag"), r.h("Vary")) == (304, etag, "Accept-Encoding")
        # the identity representation has another tag: a brotli tag does not validate it
        r = srv.get("/app.js", {"If-None-Match": etag})
        assert r.status == 200 and r.body == JS

    @pytest.mark.parametrize("path", ["/tiny.js", "/data.bin", "/huge.txt"])
    def test_not_compressed_small_binary_or_huge(self, srv: StaticServer, path: str) -> None:
        r = srv.get(path, {"Accept-Encoding": "br"})
        assert r.status == 200 and r.h("Content-Encoding") is None
        assert r.h("Vary") is None

    def test_large_file_is_compressed_while_streaming_then_cached(self, srv: StaticServer) -> None:
        big = JS * 40
        r = srv.get("/big.js", {"Accept-Encoding": "br"})
        assert r.status == 200 and r.h("Content-Encoding") == "br"
        assert r.h("Transfer-Encoding") == "chunked" and r.h("Content-Length") is None
        assert brotli.decompress(r.body) == big
        again = srv.get("/big.js", {"Accept-Encoding": "br"})
        assert again.h("Content-Length") == str(len(again.body))  # now from the cache
        assert brotli.decompress(again.body) == big
        assert again.h("ETag") == r.h("ETag")

    def test_head_before_the_streamed_brotli_is_cached(self, srv: StaticServer) -> None:
        data = srv.raw(
            b"HEAD /big.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n"
            b"GET /tiny.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            until_close=False,
        )
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"Content-Encoding: br" in head and b"Transfer-Encoding: chunked" in head
        assert rest.startswith(b"HTTP/1.1 200")  # no body (not even a last chunk) after HEAD
        assert rest.endswith(TINY)

    def test_streamed_brotli_to_an_http10_client_is_close_delimited(
        self, srv: StaticServer
    ) -> None:
        data = srv.raw(b"GET /big.js HTTP/1.0\r\nAccept-Encoding: br\r\n\r\n", until_close=False)
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Content-Encoding: br" in head and b"Transfer-Encoding" not in head
        assert brotli.decompress(body) == JS * 40

    def test_ranges_are_never_compressed(self, srv: StaticServer) -> None:
        r = srv.get("/app.js", {"Accept-Encoding": "br", "Range": "bytes=10-99"})
        assert r.status == 206 and r.h("Content-Encoding") is None
        assert r.body == JS[10:100]
        r = srv.get("/style.css", {"Accept-Encoding": "br", "Range": "bytes=0-9,20-29"})
        assert r.status == 206 and r.h("Content-Encoding") is None

    def test_compress_off(self, mgr: mgpy.Manager, root: Path) -> None:
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(root), compress=False))
        r = srv.get("/app.js", {"Accept-Encoding": "br"})
        assert r.h("Content-Encoding") is None and r.body == JS

    def test_changed_file_is_recompressed(self, srv: StaticServer, root: Path) -> None:
        first = srv.get("/app.js", {"Accept-Encoding": "br"})
        new = JS.replace(b"abc", b"xyz")
        write(root / "app.js", new)
        os.utime(root / "app.js", ns=(7, 7_000_000_000))
        r = srv.get("/app.js", {"Accept-Encoding": "br"})
        assert brotli.decompress(r.body) == new and r.h("ETag") != first.h("ETag")


class TestPrecompressed:
    def test_br_twin_is_sent_as_is(self, srv: StaticServer, root: Path) -> None:
        r = srv.get("/style.css", {"Accept-Encoding": "br"})
        assert r.h("Content-Encoding") == "br"
        assert r.body == (root / "style.css.br").read_bytes()
        assert brotli.decompress(r.body) == CSS
        assert r.h("Content-Type") == "text/css; charset=utf-8"

    def test_gz_twin_when_br_not_accepted(self, srv: StaticServer, root: Path) -> None:
        r = srv.get("/style.css", {"Accept-Encoding": "gzip"})
        assert r.h("Content-Encoding") == "gzip"
        assert gzip.decompress(r.body) == CSS

    @pytest.mark.parametrize(
        ("accept", "coding"),
        [
            ("br;q=0, gzip", "gzip"),
            ("br;q=0.4, gzip;q=0.6", "gzip"),
            ("gzip;q=0.4, br;q=0.6", "br"),
            ("gzip, br", "br"),
            ("br;q=0, gzip;q=0", None),
            ("identity", None),
            ("*", "br"),
            ("*;q=0.1, identity", None),
            ("deflate", None),
        ],
    )
    def test_qvalue_negotiation(self, srv: StaticServer, accept: str, coding: str | None) -> None:
        r = srv.get("/style.css", {"Accept-Encoding": accept})
        assert r.status == 200
        assert r.h("Content-Encoding") == coding
        body = r.body
        if coding == "br":
            body = brotli.decompress(body)
        elif coding == "gzip":
            body = gzip.decompress(body)
        assert body == CSS
        assert r.h("Vary") == "Accept-Encoding"

    def test_nothing_acceptable_is_406(self, srv: StaticServer) -> None:
        r = srv.get("/style.css", {"Accept-Encoding": "identity;q=0, *;q=0"})
        assert r.status == 406 and r.h("Vary") == "Accept-Encoding"

    def test_twins_have_their_own_etags(self, srv: StaticServer) -> None:
        tags = {
            srv.get("/style.css", {"Accept-Encoding": a}).h("ETag")
            for a in ("br", "gzip", "identity")
        }
        assert len(tags) == 3

    def test_stale_twin_is_ignored(self, srv: StaticServer, root: Path) -> None:
        new = CSS.replace(b"#123456", b"#abcdef")
        write(root / "style.css", new)
        st = os.stat(root / "style.css.br")
        os.utime(root / "style.css", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        r = srv.get("/style.css", {"Accept-Encoding": "br"})
        assert brotli.decompress(r.body) == new  # on the fly from the new file, not the twin

    def test_precompressed_off(self, mgr: mgpy.Manager, root: Path) -> None:
        srv = StaticServer(
            mgr, mgpy.ServeOpts(document_root=str(root), precompressed=False, compress=False)
        )
        r = srv.get("/style.css", {"Accept-Encoding": "br, gzip"})
        assert r.h("Content-Encoding") is None and r.body == CSS

    def test_curl_compressed(self, srv: StaticServer) -> None:
        for path, data in (("/style.css", CSS), ("/app.js", JS)):
            p = srv.curl(path, "--compressed")
            assert p.stdout == data

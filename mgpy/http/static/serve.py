"""Static files: ``serve_http`` (a document root) and ``serve_file`` (one file).

mongoose's ``mg_serve_http`` done with full HTTP semantics.  Per request:

    method --(not GET/HEAD)--> 204 (OPTIONS) / 405, with Allow
    ServeOpts.auth_file --(Digest credentials fail)--> 401 (mgpy.http.auth)
    URI --cache hit, still valid--> FileMeta
        \\--resolve (static.fs): 400 bad path | 404 missing/hidden | 403 outside/forbidden
                                301 directory without "/" | index file | listing
    FileMeta -> representation: identity, a precompressed twin (br, gzip) or
                on-the-fly brotli, chosen by Accept-Encoding q-values (never for ranges)
             -> preconditions (RFC 9110 13.2.2): 412 / 304
             -> Range (GET only, If-Range): 206 single / 206 multipart/byteranges / 416
             -> body: cached bytes in one send, or the sendfile pump (static.send)

Every response carries ``ServeOpts.extra_headers`` (CORS and the like),
errors included.  Representations that may vary by coding carry
``Vary: Accept-Encoding`` and each coding has its own strong ETag.  HEAD
sends exactly the headers GET would (RFC 9110 9.3.2) and no body; Range is
ignored on HEAD (RFC 9110 14.2: range handling is defined for GET only).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn

import brotli  # type: ignore[import-untyped]

from ...events import Headers, HttpMessage
from ...proto.http1 import reason_phrase
from ...proto.ranges import (
    choose_coding,
    content_range,
    evaluate_preconditions,
    if_range_allows,
    multipart_head,
    multipart_tail,
    parse_range,
)
from ..auth import NONCE_MAX_AGE, require_digest
from ..heads import normalize_headers
from ..respond import http_reply, http_send_redirect, reply_fields, send_head
from .fs import (
    BODIES,
    BODY_CACHE_FILE,
    BROTLIS,
    REVALIDATE,
    Entry,
    FileMeta,
    Refused,
    Root,
    Twin,
    file_root,
    guess_type,
    is_reg,
    open_checked,
    resolve,
    root_of,
    stat_regular,
)
from .listing import render_listing
from .send import (
    BrotliJob,
    BrotliPump,
    BrotliTee,
    BytesPump,
    FilePump,
    give_state,
    take_state,
)

if TYPE_CHECKING:
    from ...core import Connection

__all__ = ["ServeOpts", "serve_file", "serve_http"]

log = logging.getLogger("mgpy")

#: on-the-fly brotli only for bodies at least this big (smaller ones gain little)
BROTLI_MIN = 1024
#: files up to this size are compressed in one call (~5 ms at quality 5), larger ones
#: slice by slice as the response streams (chunked), one slice per poll round
BROTLI_INLINE = 256 * 1024
#: larger files are served identity unless a precompressed ``.br`` twin exists
BROTLI_MAX = 32 * 1024 * 1024
#: brotli quality for on-the-fly compression (fast; twins can use 11)
BROTLI_QUALITY = 5
#: largest streamed brotli output kept in the cache (fs.BROTLIS holds 32 MiB in all)
BROTLI_CACHE_FILE = 8 * 1024 * 1024
#: files up to this size are compressed once by a job shared by all their readers (its
#: output is kept whole while it runs: text compresses 3-5:1, so it fits the cache); larger
#: ones get a private windowed compressor per response
BROTLI_SHARE_MAX = 16 * 1024 * 1024
#: shared jobs running at once (each keeps its output so far: at most BROTLI_SHARE_MAX)
BROTLI_JOBS = 4
#: cached brotli bodies larger than this are sent by a pump, one slice at a time, so a
#: slow reader pins a slice of the shared body rather than a copy of all of it
BROTLI_ONE_SEND = 256 * 1024

_ALLOW = "GET, HEAD, OPTIONS"
_DEFAULT_HIDDEN = r"^\.(?!well-known$)"


@dataclasses.dataclass(frozen=True)
class ServeOpts:
    """How ``serve_http`` maps URLs to files under ``document_root``.

    - ``index_files``: tried in order for a directory URL ending in ``/``.
    - ``enable_directory_listing``: HTML listing when no index file exists (else 403).
    - ``extra_headers``: added to every response (dict or list of pairs), e.g. CORS.
    - ``custom_mime_types``: extension -> Content-Type, e.g. ``{".md": "text/plain"}``.
    - ``hidden_file_pattern``: a regular expression searched in every path segment;
      matching names are 404 and not listed (default: dotfiles except ``.well-known``;
      None hides nothing).
    - ``page404``: a file (relative to the root) sent with status 404.
    - ``follow_symlinks``: follow symlinks whose target stays inside the root (True), or
      refuse every path through a symlink (False).
    - ``allow_outside_symlinks``: also follow symlinks whose target is outside the root
      (``web_root/js -> /usr/share/javascript``; nginx and Apache follow them by default).
      Off by default: then such a path is refused (403, logged at debug level).  Every
      symlink under the root is then trusted, so only turn it on for a root whose links
      you placed; hidden names and credentials files stay refused.  Needs
      ``follow_symlinks``.
    - ``precompressed``: serve ``x.br`` / ``x.gz`` twins to clients that accept them.
    - ``compress``: brotli-compress text, JS, CSS, JSON, SVG on the fly (cached).
    - ``auth_file``/``auth_domain``: Digest-protect the files (see ``mgpy.http.auth``).
    """

    document_root: str = "."
    index_files: Sequence[str] = dataclasses.field(
        default_factory=lambda: ["index.html", "index.htm"]
    )
    enable_directory_listing: bool = False
    extra_headers: Headers = dataclasses.field(default_factory=list)
    auth_file: str | None = None
    auth_domain: str = "mgpy"
    custom_mime_types: Mapping[str, str] = dataclasses.field(default_factory=dict)
    hidden_file_pattern: str | None = _DEFAULT_HIDDEN
    page404: str | None = None
    follow_symlinks: bool = True
    precompressed: bool = True
    compress: bool = True
    allow_outside_symlinks: bool = False

    def __post_init__(self) -> None:
        if self.allow_outside_symlinks and not self.follow_symlinks:
            raise ValueError("ServeOpts(allow_outside_symlinks=True) needs follow_symlinks=True")


# --------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------
def serve_http(c: Connection, hm: HttpMessage, opts: ServeOpts) -> None:
    """Answer ``hm`` from ``opts.document_root`` (mongoose's ``mg_serve_http``).

    Example::

        if ev == mgpy.Ev.HTTP_REQUEST:
            mgpy.serve_http(c, ev_data, mgpy.ServeOpts(document_root="web_root"))
    """
    root = root_of(opts)
    method = hm.method
    if method != "GET" and method != "HEAD":
        _not_get(c, root, method)
        return
    if opts.auth_file and not require_digest(
        c, hm, opts.auth_file, opts.auth_domain or "mgpy", NONCE_MAX_AGE
    ):
        return  # the 401 challenge was sent
    try:
        _serve(c, hm, opts, root)
    except _Changed:
        try:
            _serve(c, hm, opts, root)  # once more, from a fresh resolution
        except _Changed:
            _error(c, root, 503, [("Retry-After", "1")])


def _serve(c: Connection, hm: HttpMessage, opts: ServeOpts, root: Root) -> None:
    uri = hm.uri
    e = root.entries.get(uri)
    if e is not None:
        mono = c.mgr.monotonic
        if e.checked == mono:
            _send_meta(c, hm, root, e.meta, e.path, opts.compress)
            return
        if mono - e.resolved < REVALIDATE:
            st = stat_regular(e.path)
            if st is not None and e.meta.same(st):
                e.checked = mono
                _send_meta(c, hm, root, e.meta, e.path, opts.compress)
                return
    try:
        target = resolve(root, uri, c.mgr.monotonic, opts.enable_directory_listing)
    except Refused as r:
        log.debug("%r: %s %s refused (%d): %s", c, hm.method, uri, r.status, r)
        if r.status == 404 and opts.page404:
            _send_page404(c, hm, root, opts.page404)
        else:
            _error(c, root, r.status)
        return
    if isinstance(target, Entry):
        _send_meta(c, hm, root, target.meta, target.path, opts.compress)
    elif isinstance(target, str):
        loc = target + ("?" + hm.query_string if hm.query_string else "")
        http_send_redirect(c, 301, loc, root.extra)
    else:
        try:
            body = render_listing(root, target[0], target[1])
        except Refused as r:
            _error(c, root, r.status)
            return
        hs = [("Content-Type", "text/html; charset=utf-8"), *root.extra]
        http_reply(c, 200, body, hs)


def serve_file(
    c: Connection,
    hm: HttpMessage,
    path: str,
    mime: str | None = None,
    extra_headers: Headers = None,
) -> None:
    """Answer ``hm`` with the file at ``path`` (no document root, no listing).

    GET and HEAD, conditional requests, ranges and sendfile work as in
    ``serve_http``; the application decides which path is safe to serve.
    """
    root = file_root()
    method = hm.method
    extra = normalize_headers(extra_headers)
    if method != "GET" and method != "HEAD":
        _not_get(c, root, method, extra)
        return
    for _ in range(2):
        real = os.path.realpath(path)
        st = stat_regular(real)
        if st is None or not is_reg(st):
            _error(c, root, 404 if st is None else 403, extra)
            return
        ctype = mime or guess_type(path, {})
        m = root.metas.get(real)
        if m is None or not m.same(st) or m.ctype != ctype:
            if m is not None:
                root.drop(m)
            m = FileMeta(real, st, ctype)
            root.metas[real] = m
            if len(root.metas) > 256:
                root.drop(root.metas[next(iter(root.metas))])
        try:
            _send_meta(c, hm, root, m, real, False, extra)
            return
        except _Changed:
            continue
    _error(c, root, 503, [("Retry-After", "1"), *extra])


# --------------------------------------------------------------------------------------
# responses
# --------------------------------------------------------------------------------------
_WANTED = {
    "accept-encoding": 0,
    "range": 1,
    "if-match": 2,
    "if-none-match": 3,
    "if-modified-since": 4,
    "if-unmodified-since": 5,
    "if-range": 6,
}


def _request_fields(hm: HttpMessage) -> list[str | None]:
    """The seven request headers a file server looks at, in one pass (first value wins,
    except Accept-Encoding / If-Match / If-None-Match, whose repeats are joined as lists)."""
    out: list[str | None] = [None] * 7
    wanted = _WANTED
    for k, v in hm.headers:
        i = wanted.get(k.lower())
        if i is not None:
            cur = out[i]
            if cur is None:
                out[i] = v
            elif i in (0, 2, 3):
                out[i] = cur + ", " + v
    return out


def _base_headers(root: Root, m: FileMeta, vary: bool) -> list[tuple[str, str]]:
    """The 200 headers of ``m``'s identity body (cached on ``m``, also as ``m.fields``)."""
    hs = m.hdrs
    if hs is None or m.vary != vary:
        hs = [
            ("Content-Type", m.ctype),
            ("Last-Modified", m.last_modified),
            ("ETag", m.etag),
            ("Accept-Ranges", "bytes"),
        ]
        if vary:
            hs.append(("Vary", "Accept-Encoding"))
        hs.extend(root.extra)
        m.hdrs = hs
        m.fields = "".join(f"{k}: {v}\r\n" for k, v in hs)
        m.br_fields = None
        m.vary = vary
    return hs


def _coded_headers(hs: list[tuple[str, str]], etag: str, coding: str) -> list[tuple[str, str]]:
    out = [(k, etag if k == "ETag" else v) for k, v in hs]
    out.append(("Content-Encoding", coding))
    return out


def _send_meta(
    c: Connection,
    hm: HttpMessage,
    root: Root,
    m: FileMeta,
    lex: str,
    compress: bool,
    extra: list[tuple[str, str]] | None = None,
    stream_ok: bool = True,
) -> None:
    """Send the file ``m`` (identity, twin or brotli; full, 304/412, ranges).

    ``stream_ok=False``: no compressor is free, so brotli is offered only if cached or
    small enough to compress at once.
    """
    method = hm.method
    f = _request_fields(hm) if hm.headers else [None] * 7
    ae, rng = f[0], f[1]
    can_br = compress and m.compressible and BROTLI_MIN <= m.size <= BROTLI_MAX
    vary = can_br or bool(m.twins)
    coding = "identity"
    if vary and (rng is None or method != "GET"):  # never compress a range
        br_now = can_br and (stream_ok or m.br is not None or m.size <= BROTLI_INLINE)
        avail = ["br"] if br_now or "br" in m.twins else []
        if "gzip" in m.twins:
            avail.append("gzip")
        chosen = choose_coding(ae, avail)
        if chosen is None:
            hs = [("Vary", "Accept-Encoding"), *(extra or [])]
            if can_br and not br_now:  # only brotli is acceptable, and no compressor is free
                _error(c, root, 503, [("Retry-After", "1"), *hs])
            else:  # RFC 9110 12.5.3: identity refused and nothing else acceptable
                _error(c, root, 406, hs)
            return
        coding = chosen
    twin: Twin | None = None
    if coding != "identity":
        twin = m.twins.get(coding)
        etag = twin.etag if twin is not None else m.etag[:-1] + '-br"'
    else:
        etag = m.etag
    if f[2] is not None or f[3] is not None or f[4] is not None or f[5] is not None:
        code = evaluate_preconditions(method, f[2], f[3], f[4], f[5], etag, m.mtime)
        if code != 200:
            # RFC 9110 15.4.5: a 304 carries the ETag and Vary a 200 would have
            hs = [("ETag", etag)]
            if vary:
                hs.append(("Vary", "Accept-Encoding"))
            if extra:
                hs.extend(extra)
            if code == 304:
                http_reply(c, 304, b"", [*hs, *root.extra])
            else:
                _error(c, root, 412, hs)
            return
    hs = _base_headers(root, m, vary)
    if extra:
        hs = hs + extra
    if coding != "identity":
        hs = _coded_headers(hs, etag, coding)
        if twin is not None:
            _send_twin(c, hm, root, m, twin, hs, lex, compress, extra)
            return
        br = m.br
        if br is None:
            if m.size > BROTLI_INLINE:
                if not _stream_brotli(c, hm, root, m, hs, extra):
                    _send_meta(c, hm, root, m, lex, compress, extra, stream_ok=False)
                return
            data = _read_small(m, lex) if m.body is None else m.body
            if data is None:
                _vanished(c, root, m, extra)
                return
            br = brotli.compress(data, quality=BROTLI_QUALITY)
            BROTLIS.add(m, br)
        else:
            BROTLIS.lru.move_to_end(m)
        if len(br) > BROTLI_ONE_SEND:
            send_head(c, 200, len(br), hs)
            if method != "HEAD":
                c.pump = BytesPump(br)  # the cached body is shared, never copied whole
            return
        if extra:
            http_reply(c, 200, br, hs)
            return
        fields = m.br_fields
        if fields is None:
            fields = m.br_fields = "".join(f"{k}: {v}\r\n" for k, v in hs)
        reply_fields(c, 200, fields, br)
        return
    if rng is not None and method == "GET":
        if f[6] is None or if_range_allows(f[6], m.etag, m.mtime):
            ranges = parse_range(rng, m.size)
            if ranges is not None:
                _send_ranges(c, root, m, lex, ranges, hs, extra)
                return
    body = m.body
    if body is None and m.size <= BODY_CACHE_FILE:
        body = _read_small(m, lex)
        if body is None:
            _vanished(c, root, m, extra)
            return
        BODIES.add(m, body)
    elif body is not None:
        BODIES.lru.move_to_end(m)
    if body is not None:
        if extra:
            http_reply(c, 200, body, hs)
        else:
            reply_fields(c, 200, m.fields, body)
        return
    if method == "HEAD":
        send_head(c, 200, m.size, hs)
        return
    opened = open_checked(m.real, m.dev, m.ino)
    if opened is None:
        _vanished(c, root, m, extra)
        return
    _send_whole_file(c, opened[0], m.size, hs)


def _send_whole_file(c: Connection, fd: int, size: int, hs: list[tuple[str, str]]) -> None:
    """Send the head, then pump ``size`` bytes of ``fd`` with sendfile (``fd`` is ours to close)."""
    try:
        send_head(c, 200, size, hs)
    except BaseException:
        os.close(fd)
        raise
    c.pump = FilePump(fd, [(b"", 0, size)])


def _stream_brotli(
    c: Connection,
    hm: HttpMessage,
    root: Root,
    m: FileMeta,
    hs: list[tuple[str, str]],
    extra: list[tuple[str, str]] | None,
) -> bool:
    """Compress a large file while sending it (chunked); False when no compressor is free.

    Readers of one file version share one ``BrotliJob`` (compressed once, cached when
    complete); a file too big to share (or to cache), or one arriving while
    ``BROTLI_JOBS`` jobs run, gets a private windowed ``BrotliPump``.
    """
    if hm.method == "HEAD":
        send_head(c, 200, -1, hs)  # the length is known only once compressed (RFC 9110 9.3.2)
        return True
    job = m.br_job
    if job is not None and job.live:
        send_head(c, 200, -1, hs)
        c.pump = BrotliTee(job)
        return True
    share = m.size <= BROTLI_SHARE_MAX and not m.br_nocache and _jobs[0] < BROTLI_JOBS
    if not take_state():
        return False
    opened = open_checked(m.real, m.dev, m.ino)
    if opened is None or not m.same(opened[1]):
        give_state()
        if opened is not None:
            os.close(opened[0])
        _vanished(c, root, m, extra)
    fd = opened[0]
    try:
        send_head(c, 200, -1, hs)
    except BaseException:
        os.close(fd)
        give_state()
        raise
    try:  # from here on the pump owns fd and the state
        if not share:
            private = BrotliPump(fd, m.size, BROTLI_QUALITY)
        else:
            job = BrotliJob(fd, m.size, BROTLI_QUALITY, lambda j: _job_done(root, m, j))
    except BaseException:
        os.close(fd)
        give_state()
        raise
    if not share:
        c.pump = private
        return True
    _jobs[0] += 1
    m.br_job = job
    c.pump = BrotliTee(job)
    return True


def _job_done(root: Root, m: FileMeta, j: BrotliJob) -> None:
    """A shared job ended: cache its output (if complete and small enough)."""
    _jobs[0] -= 1
    if m.br_job is j:
        m.br_job = None
    data = j.data
    if data is None:
        return  # failed or abandoned: the next reader starts again
    if len(data) > BROTLI_CACHE_FILE:
        m.br_nocache = True  # too big to keep: private streams from now on
    elif root.metas.get(m.real) is m:
        BROTLIS.add(m, data)


_jobs = [0]  # shared brotli jobs running now (at most BROTLI_JOBS)


def _send_twin(
    c: Connection,
    hm: HttpMessage,
    root: Root,
    m: FileMeta,
    t: Twin,
    hs: list[tuple[str, str]],
    lex: str,
    compress: bool,
    extra: list[tuple[str, str]] | None,
) -> None:
    if hm.method == "HEAD":
        send_head(c, 200, t.size, hs)
        return
    opened = open_checked(t.path, t.dev, t.ino)
    if opened is None:
        m.twins = {}
        m.hdrs = None
        _send_meta(c, hm, root, m, lex, compress, extra)
        return
    fd, st = opened
    if st.st_size != t.size:
        os.close(fd)
        m.twins = {}
        m.hdrs = None
        _send_meta(c, hm, root, m, lex, compress, extra)
        return
    if t.size <= BODY_CACHE_FILE:
        try:
            data = _read_fd(fd, t.size)
        finally:
            os.close(fd)
        if data is None:
            _vanished(c, root, m, extra)
            return
        http_reply(c, 200, data, hs)
        return
    _send_whole_file(c, fd, t.size, hs)


def _send_ranges(
    c: Connection,
    root: Root,
    m: FileMeta,
    lex: str,
    ranges: list[tuple[int, int]],
    hs: list[tuple[str, str]],
    extra: list[tuple[str, str]] | None,
) -> None:
    size = m.size
    if not ranges:
        # RFC 9110 15.5.17: 416 SHOULD carry Content-Range: bytes */size
        _error(c, root, 416, [("Content-Range", f"bytes */{size}"), *(extra or [])])
        return
    body = m.body
    if body is None and size <= BODY_CACHE_FILE:
        body = _read_small(m, lex)
        if body is None:
            _vanished(c, root, m, extra)
            return
        BODIES.add(m, body)
    if len(ranges) == 1:
        first, last = ranges[0]
        hs = [*hs, ("Content-Range", content_range(first, last, size))]
        if body is not None:
            http_reply(c, 206, body[first : last + 1], hs)
            return
        segs = [(b"", first, last - first + 1)]
        tail = b""
        length = last - first + 1
    else:
        # RFC 9110 14.6: multipart/byteranges, each part with Content-Type and Content-Range
        boundary = secrets.token_hex(12)
        heads = [multipart_head(boundary, m.ctype, a, b, size) for a, b in ranges]
        tail = multipart_tail(boundary)
        ctype = f"multipart/byteranges; boundary={boundary}"
        hs = [(k, ctype if k == "Content-Type" else v) for k, v in hs]
        if body is not None:
            parts = []
            for h, (a, b) in zip(heads, ranges, strict=True):
                parts.append(h)
                parts.append(body[a : b + 1])
            parts.append(tail)
            http_reply(c, 206, b"".join(parts), hs)
            return
        segs = [(h, a, b - a + 1) for h, (a, b) in zip(heads, ranges, strict=True)]
        length = sum(len(h) + n for h, _, n in segs) + len(tail)
    opened = open_checked(m.real, m.dev, m.ino)
    if opened is None:
        _vanished(c, root, m, extra)
        return
    fd = opened[0]
    try:
        send_head(c, 206, length, hs)
    except BaseException:
        os.close(fd)
        raise
    c.pump = FilePump(fd, segs, tail)


def _read_fd(fd: int, size: int) -> bytes | None:
    chunks = []
    got = 0
    while got < size:
        b = os.read(fd, size - got)
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    if os.read(fd, 1):
        return None  # grew since it was checked
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _read_small(m: FileMeta, lex: str) -> bytes | None:
    """The whole file ``m`` if it still is the version checked; None if it changed."""
    opened = open_checked(m.real, m.dev, m.ino)
    if opened is None:
        return None
    fd, st = opened
    try:
        if not m.same(st):
            return None
        return _read_fd(fd, m.size)
    finally:
        os.close(fd)


class _Changed(Exception):
    """The file changed between its check and its use (the caller resolves it again)."""


def _vanished(
    c: Connection, root: Root, m: FileMeta, extra: list[tuple[str, str]] | None
) -> NoReturn:
    """The file changed between check and open: forget it, and raise ``_Changed``."""
    root.drop(m)
    for uri, e in list(root.entries.items()):
        if e.meta is m:
            del root.entries[uri]
    raise _Changed(m.real)


def _send_page404(c: Connection, hm: HttpMessage, root: Root, page: str) -> None:
    segs = [s for s in page.split("/") if s]
    try:
        if any(s in (".", "..") or "\0" in s for s in segs) or not segs:
            raise Refused(404, "bad page404")
        lex = root.lexical(segs)
        real = root.check_real(lex)
        st = stat_regular(real)
        if st is None or not is_reg(st):
            raise Refused(404, "page404 missing")
    except Refused:
        _error(c, root, 404)
        return
    m = root.meta_for(real, st)
    body = m.body
    if body is None:
        body = _read_small(m, lex) if m.size <= BODY_CACHE_FILE else None
        if body is not None:
            BODIES.add(m, body)
    hs = [("Content-Type", m.ctype), *root.extra]
    if body is not None:
        http_reply(c, 404, body, hs)
        return
    if hm.method == "HEAD":
        send_head(c, 404, m.size, hs)
        return
    opened = open_checked(m.real, m.dev, m.ino)
    if opened is None:
        _error(c, root, 404)
        return
    send_head(c, 404, m.size, hs)
    c.pump = FilePump(opened[0], [(b"", 0, m.size)])


def _error(
    c: Connection, root: Root, code: int, headers: list[tuple[str, str]] | None = None
) -> None:
    """A short text error that keeps the connection (the request was well framed)."""
    body = f"{code} {reason_phrase(code) or 'Error'}\n"
    hs = [("Content-Type", "text/plain; charset=utf-8"), *(headers or ()), *root.extra]
    if code == 405:
        hs.append(("Allow", _ALLOW))
    http_reply(c, code, body, hs)


def _not_get(
    c: Connection, root: Root, method: str, extra: list[tuple[str, str]] | None = None
) -> None:
    if method == "OPTIONS":
        http_reply(c, 204, b"", [("Allow", _ALLOW), *root.extra, *(extra or ())])
    else:
        # RFC 9110 15.5.6: a 405 MUST list the supported methods in Allow
        _error(c, root, 405, extra)

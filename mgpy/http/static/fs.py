"""Static files, filesystem side: URL -> safe real path, metadata and body caches.

``root_of(opts)`` gives the per-document-root state (``Root``, shared by equal
options); ``resolve(root, uri, ...)`` maps a request path to a cached file
``Entry``, a redirect for a directory without its slash, or a directory to list.

Safety model (what ``resolve`` guarantees): a file is served only if the real
path of the file -- after every symlink -- is inside the real path of the
document root (unless ``allow_outside_symlinks`` trusts symlink targets anywhere:
``web_root/js -> /usr/share/javascript``), none of its names (as requested and as
resolved) is hidden,
and it is a regular file, and it is not a credentials file (an htdigest named by
``ServeOpts.auth_file``, an endpoint's ``auth_file``, or read by ``check_digest_auth``:
its HA1 hashes are as good as the passwords for Digest; mongoose hides them too).
The request path is percent-decoded exactly once;
before decoding, encoded ``/``, ``\\`` and NUL are refused, after decoding NUL,
``\\``, ``.`` and ``..`` segments are refused (400).  With
``follow_symlinks=False`` any path that goes through a symlink below the root
is refused (403).  Precompressed twins (``x.br``, ``x.gz``) pass the same
checks on their own real path, so a ``.br`` symlink to outside the root is
never served.  Files are opened ``O_NONBLOCK`` (a FIFO swapped in cannot hang
the loop) and the open descriptor's inode is compared with the one checked.

Caching, so a hot small file costs one dict lookup and one ``send``:

* ``Root.entries``: raw URI -> ``Entry`` (lexical path, the ``FileMeta`` it
  resolved to, when it was resolved).  An entry is trusted within the poll
  round it was checked in; otherwise one ``stat`` of the lexical path must
  show the same inode, size and mtime, and every ``REVALIDATE`` seconds the
  whole resolution (realpath, index choice, twins) is redone.  A changed file
  is noticed on the next request; a retargeted symlink (``current -> v2``)
  too, because the lexical path then stats to another inode.
* ``FileMeta`` per real path and file version (inode, size, mtime): ETag,
  Last-Modified, Content-Type, prebuilt headers; the bytes of small files and
  the on-the-fly brotli output hang on it, each in a process-wide LRU bounded
  in bytes (``BODIES``, ``BROTLIS``), so a file version is read and compressed
  once.
"""

from __future__ import annotations

import collections
import logging
import mimetypes
import os
import re
import stat as _stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes

from ...proto.httputil import format_http_date
from ..heads import normalize_headers, user_headers

if TYPE_CHECKING:
    from .serve import ServeOpts

__all__ = [
    "BODIES",
    "BODY_CACHE_BYTES",
    "BODY_CACHE_FILE",
    "BROTLIS",
    "PROTECTED",
    "ByteCache",
    "Entry",
    "FileMeta",
    "Refused",
    "Root",
    "Twin",
    "file_root",
    "guess_type",
    "inside",
    "protect",
    "resolve",
    "root_of",
]

#: files up to this size are kept in memory (nginx open_file_cache keeps fds; we keep bytes)
BODY_CACHE_FILE = 64 * 1024
#: total bytes of small files kept in memory per document root
BODY_CACHE_BYTES = 16 * 1024 * 1024
#: seconds between full re-resolutions of a cached URI (nginx open_file_cache_valid: 60 s)
REVALIDATE = 1.0
#: cached URIs per document root (FIFO eviction); bounds memory against URI spraying
MAX_ENTRIES = 4096
#: longer URIs are resolved every time, not cached (4096 URIs of 8 KiB would hold 32 MiB)
MAX_CACHED_URI = 512

log = logging.getLogger("mgpy")

_O_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)

_EXTRA_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".md": "text/markdown",
    ".webmanifest": "application/manifest+json",
    ".br": "application/x-brotli",
    ".gz": "application/gzip",
}
_COMPRESSIBLE_APP = frozenset(
    (
        "application/javascript",
        "application/json",
        "application/xml",
        "application/wasm",
        "application/manifest+json",
        "image/svg+xml",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "font/ttf",
        "font/otf",
    )
)


class Refused(Exception):
    """A request path that must not be served; ``status`` is the answer (400/403/404)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def guess_type(name: str, custom: dict[str, str]) -> str:
    """Content-Type for a file name: custom map, then our table, then ``mimetypes``."""
    ext = os.path.splitext(name)[1].lower()
    t = custom.get(ext)
    if t is not None:
        return t  # the application's choice, verbatim
    t = _EXTRA_TYPES.get(ext) or mimetypes.guess_type(name, strict=False)[0]
    if t is None:
        return "application/octet-stream"
    if (t.startswith("text/") or t == "application/javascript") and "charset" not in t:
        t += "; charset=utf-8"
    return t


def compressible(ctype: str) -> bool:
    """Whether a Content-Type is worth compressing on the fly (text, JS, CSS, JSON, SVG ...)."""
    base = ctype.partition(";")[0].strip()
    return (
        base.startswith("text/")
        or base in _COMPRESSIBLE_APP
        or base.endswith("+json")
        or base.endswith("+xml")
    )


def inside(real: str, root: str) -> bool:
    """Whether real path ``real`` is ``root`` or below it."""
    return real == root or real.startswith(root if root.endswith("/") else root + "/")


class Twin:
    """A precompressed sibling (``x.br`` / ``x.gz``) that passed the safety checks."""

    __slots__ = ("coding", "dev", "etag", "ino", "mtime_ns", "path", "size")

    def __init__(self, coding: str, path: str, st: os.stat_result) -> None:
        self.coding = coding
        self.path = path
        self.ino = st.st_ino
        self.dev = st.st_dev
        self.size = st.st_size
        self.mtime_ns = st.st_mtime_ns
        self.etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{coding}"'


class FileMeta:
    """What is known about one regular file (by real path); shared by the URIs naming it."""

    __slots__ = (
        "body",
        "br",
        "br_fields",
        "br_job",
        "br_nocache",
        "compressible",
        "ctype",
        "dev",
        "etag",
        "fields",
        "hdrs",
        "ino",
        "last_modified",
        "mtime",
        "mtime_ns",
        "real",
        "size",
        "twins",
        "vary",
    )

    def __init__(self, real: str, st: os.stat_result, ctype: str) -> None:
        self.real = real
        self.ino = st.st_ino
        self.dev = st.st_dev
        self.size = st.st_size
        self.mtime_ns = st.st_mtime_ns
        self.mtime = st.st_mtime
        # strong validator from inode, size and mtime (ns): any rewrite changes it
        self.etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'
        self.last_modified = format_http_date(st.st_mtime)
        self.ctype = ctype
        self.compressible = compressible(ctype)
        self.twins: dict[str, Twin] = {}
        self.body: bytes | None = None
        self.br: bytes | None = None
        #: the shared brotli job compressing this version now (static.send.BrotliJob)
        self.br_job: Any = None
        #: its brotli output proved too big to cache: each response compresses privately
        self.br_nocache = False
        #: 200 headers for the identity body (built by the response layer, cached here)
        self.hdrs: list[tuple[str, str]] | None = None
        #: the same as header text, and the brotli variant's (None until built)
        self.fields = ""
        self.br_fields: str | None = None
        self.vary = False

    def same(self, st: os.stat_result) -> bool:
        """Whether ``st`` describes the same file version."""
        return (
            st.st_mtime_ns == self.mtime_ns
            and st.st_ino == self.ino
            and st.st_size == self.size
            and st.st_dev == self.dev
        )


class Entry:
    """A cached URI: the lexical path it names and the file it resolved to."""

    __slots__ = ("checked", "meta", "name", "path", "resolved")

    def __init__(self, path: str, meta: FileMeta, now: float, name: str) -> None:
        self.path = path
        self.meta = meta
        self.checked = now
        self.resolved = now
        self.name = name


class Root:
    """Per-document-root state: resolution rules and caches (see module doc)."""

    def __init__(
        self,
        document_root: str | None,
        index_files: tuple[str, ...],
        hidden: str | None,
        follow_symlinks: bool,
        custom_mime: dict[str, str],
        precompressed: bool,
        allow_outside: bool = False,
    ) -> None:
        self.document_root = document_root
        self.root = os.path.realpath(document_root) if document_root is not None else "/"
        self.index_files = index_files
        self.hidden = re.compile(hidden) if hidden else None
        self.follow_symlinks = follow_symlinks
        #: symlink targets outside the root are served (ServeOpts.allow_outside_symlinks)
        self.allow_outside = allow_outside and follow_symlinks
        self.custom_mime = {
            (k if k.startswith(".") else "." + k).lower(): v for k, v in custom_mime.items()
        }
        self.precompressed = precompressed
        self.entries: dict[str, Entry] = {}
        self.metas: dict[str, FileMeta] = {}
        #: the 200-response extra headers of this root, validated once (set by the response layer)
        self.extra: list[tuple[str, str]] = []
        self.extra_text = ""

    # -- names ------------------------------------------------------------------------------
    def is_hidden(self, name: str) -> bool:
        """Whether a single path segment is hidden (404, left out of listings)."""
        h = self.hidden
        return h is not None and h.search(name) is not None

    def split_uri(self, uri: str) -> list[str]:
        """Decode the request path once into safe segments; raise ``Refused``."""
        if not uri.startswith("/"):
            raise Refused(400, "request path must start with /")
        if "%" in uri:
            low = uri.lower()
            # an encoded slash/backslash/NUL would change the path's structure after decoding
            if "%2f" in low or "%5c" in low or "%00" in low:
                raise Refused(400, "encoded /, \\ or NUL in path")
            # bytes, then the filesystem encoding: any on-disk name is reachable, once
            path = os.fsdecode(unquote_to_bytes(uri))
        else:
            path = uri
        if "\0" in path or "\\" in path:
            raise Refused(400, "NUL or backslash in path")
        segs = [s for s in path.split("/") if s]
        for s in segs:
            if s == ".." or s == ".":
                raise Refused(400, "dot segment in path")
            if self.is_hidden(s):
                raise Refused(404, "hidden name")
        return segs

    def lexical(self, segs: list[str]) -> str:
        """The path under the root named by ``segs`` (no symlinks resolved)."""
        if not segs:
            return self.root
        return os.path.join(self.root, *segs)

    def check_real(self, lexical: str) -> str:
        """Real path of ``lexical`` if it may be served (inside the root, no hidden names)."""
        real = os.path.realpath(lexical)
        root = self.root
        within = inside(real, root)
        if not within and not (self.allow_outside and real != lexical):
            # (the lexical path is inside the root: only a symlink can lead out of it)
            raise Refused(
                403,
                f"a symlink leads outside the document root to {real!r} "
                "(ServeOpts.allow_outside_symlinks is off)",
            )
        if PROTECTED and real in PROTECTED:
            raise Refused(404, "a credentials file")
        if real != lexical:
            if not self.follow_symlinks:
                raise Refused(403, "the path goes through a symlink (follow_symlinks is off)")
            rel = real[len(root) :] if within else os.path.basename(real)
            for s in rel.split("/"):
                if s and self.is_hidden(s):
                    raise Refused(404, f"a symlink resolves to a hidden name ({real!r})")
        return real

    # -- resolution -------------------------------------------------------------------------
    def meta_for(self, real: str, st: os.stat_result) -> FileMeta:
        """The FileMeta of ``real`` for stat ``st``, reusing the cached one if unchanged."""
        m = self.metas.get(real)
        if m is not None and m.same(st):
            return m
        if m is not None:
            self.drop(m)
        m = FileMeta(real, st, guess_type(os.path.basename(real), self.custom_mime))
        if len(self.metas) >= MAX_ENTRIES:
            old = next(iter(self.metas))
            self.drop(self.metas[old])
        self.metas[real] = m
        return m

    def find_twins(self, m: FileMeta, lexical: str) -> None:
        """Attach the precompressed siblings of ``m`` that are safe and not stale."""
        twins: dict[str, Twin] = {}
        if self.precompressed:
            for coding, ext in (("br", ".br"), ("gzip", ".gz")):
                p = lexical + ext
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                if not _stat.S_ISREG(st.st_mode) or self.is_hidden(os.path.basename(p)):
                    continue
                try:
                    real = self.check_real(p)
                except Refused:
                    continue
                # a twin older than its source is stale (the source was edited): skip it
                if st.st_mtime_ns < m.mtime_ns:
                    continue
                twins[coding] = Twin(coding, real, st)
        if twins.keys() != m.twins.keys() or any(
            t.etag != m.twins[k].etag for k, t in twins.items()
        ):
            m.twins = twins
            m.hdrs = None

    def drop(self, m: FileMeta) -> None:
        """Forget a FileMeta and release its cached bytes."""
        if self.metas.get(m.real) is m:
            del self.metas[m.real]
        BODIES.discard(m)
        BROTLIS.discard(m)

    def remember(self, uri: str, e: Entry) -> None:
        """Cache the resolution of ``uri``."""
        ents = self.entries
        if len(uri) > MAX_CACHED_URI:
            return
        if uri not in ents and len(ents) >= MAX_ENTRIES:
            del ents[next(iter(ents))]
        ents[uri] = e


class ByteCache:
    """A process-wide LRU of bytes kept on FileMeta (``body`` or ``br``), bounded in total.

    Shared by every document root, so many ``ServeOpts`` cannot multiply the bound.
    """

    def __init__(self, attr: str, limit: int) -> None:
        self.attr = attr
        self.limit = limit
        self.lru: collections.OrderedDict[FileMeta, None] = collections.OrderedDict()
        self.total = 0

    def add(self, m: FileMeta, data: bytes) -> None:
        """Hang ``data`` on ``m`` and evict the least recently used beyond the limit."""
        if getattr(m, self.attr) is not None or len(data) > self.limit:
            return
        setattr(m, self.attr, data)
        self.lru[m] = None
        self.total += len(data)
        while self.total > self.limit:
            old, _ = self.lru.popitem(last=False)
            gone = getattr(old, self.attr)
            if gone is not None:
                self.total -= len(gone)
                setattr(old, self.attr, None)

    def discard(self, m: FileMeta) -> None:
        """Drop ``m``'s bytes, if kept."""
        data = getattr(m, self.attr)
        if data is not None:
            self.lru.pop(m, None)
            self.total -= len(data)
            setattr(m, self.attr, None)


#: small files' bytes (each at most BODY_CACHE_FILE)
BODIES = ByteCache("body", BODY_CACHE_BYTES)
#: on-the-fly brotli output (a file version is compressed once while it stays here)
BROTLIS = ByteCache("br", 32 * 1024 * 1024)


def open_checked(path: str, dev: int, ino: int) -> tuple[int, os.stat_result] | None:
    """Open ``path`` non-blocking; return (fd, fstat) only if it is regular and inode (dev, ino)."""
    try:
        fd = os.open(path, _O_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode) or st.st_ino != ino or st.st_dev != dev:
            os.close(fd)
            return None
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def stat_regular(path: str) -> os.stat_result | None:
    """``os.stat`` or None when missing or unreadable."""
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def is_dir(st: Any) -> bool:
    """Whether a stat result is a directory."""
    return _stat.S_ISDIR(st.st_mode)


def is_reg(st: Any) -> bool:
    """Whether a stat result is a regular file."""
    return _stat.S_ISREG(st.st_mode)


# --- roots and resolution ------------------------------------------------------------

_ROOTS: dict[tuple[Any, ...], Root] = {}
_MAX_ROOTS = 64
_ATTR = "_mgpy_root"

#: real paths of credentials files: never served, never listed
PROTECTED: set[str] = set()
_PROTECTED_AS: set[str] = set()  # the spellings protect() was given (bounded by the app)


def protect(path: str | os.PathLike[str]) -> None:
    """Never serve or list the file at ``path`` (a credentials file) from any document root."""
    given = os.fspath(path)
    if given in _PROTECTED_AS:
        return
    _PROTECTED_AS.add(given)
    real = os.path.realpath(given)
    if real not in PROTECTED:
        PROTECTED.add(real)
        for r in _ROOTS.values():
            r.entries.clear()  # URIs resolved before must be checked again


def root_of(opts: ServeOpts) -> Root:
    """The cached Root for ``opts`` (shared by equal options, e.g. one ServeOpts per request)."""
    r = opts.__dict__.get(_ATTR)
    if r is not None:
        return r  # type: ignore[no-any-return]
    extra = tuple(normalize_headers(opts.extra_headers))
    key = (
        opts.document_root,
        tuple(opts.index_files),
        opts.hidden_file_pattern,
        opts.follow_symlinks,
        opts.allow_outside_symlinks,
        tuple(sorted(opts.custom_mime_types.items())),
        opts.precompressed,
        extra,
    )
    r = _ROOTS.get(key)
    if r is None or r.root != os.path.realpath(opts.document_root):
        r = Root(
            opts.document_root,
            tuple(opts.index_files),
            opts.hidden_file_pattern,
            opts.follow_symlinks,
            dict(opts.custom_mime_types),
            opts.precompressed,
            opts.allow_outside_symlinks,
        )
        r.extra = _check_headers(extra)
        _check_headers([("Content-Type", t) for t in opts.custom_mime_types.values()])
        r.extra_text = "".join(f"{k}: {v}\r\n" for k, v in r.extra)
        if len(_ROOTS) >= _MAX_ROOTS:
            del _ROOTS[next(iter(_ROOTS))]
        _ROOTS[key] = r
    if isinstance(opts.auth_file, (str, os.PathLike)):
        protect(opts.auth_file)
    object.__setattr__(opts, _ATTR, r)
    return r


_MANAGED = frozenset(("content-length", "transfer-encoding", "connection", "date"))


def _check_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Validate extra headers once (LocalProtocolError like every response helper) and
    drop the ones the response layer manages (Content-Length, Connection ...)."""
    user_headers(list(headers))
    return [(k, v) for k, v in headers if k.lower() not in _MANAGED]


_FILE_ROOT_KEY = ("<serve_file>",)


def file_root() -> Root:
    """The Root used by ``serve_file`` (no document root, no twins)."""
    r = _ROOTS.get(_FILE_ROOT_KEY)
    if r is None:
        r = _ROOTS[_FILE_ROOT_KEY] = Root(None, (), None, True, {}, False)
    return r


_SEG_SAFE = "!$&'()*+,;=:@~"


def resolve(root: Root, uri: str, now: float, listing: bool) -> Entry | str | tuple[str, list[str]]:
    """Map ``uri`` to an Entry (cached), a redirect location (str) or a directory to
    list (real path, segments); raise ``Refused``."""
    segs = root.split_uri(uri)
    lex = root.lexical(segs)
    real = root.check_real(lex)
    st = stat_regular(real)
    if st is None:
        raise Refused(404, "not found")
    if is_dir(st):
        if not uri.endswith("/"):
            loc = "/" + "".join(quote(os.fsencode(s), safe=_SEG_SAFE) + "/" for s in segs)
            return loc
        for name in root.index_files:
            p = os.path.join(lex, name)
            try:
                ireal = root.check_real(p)
            except Refused as r:
                log.debug("index file %r not used: %s", p, r)
                continue
            ist = stat_regular(ireal)
            if ist is None or not is_reg(ist):
                continue
            return _entry(root, uri, p, ireal, ist, name, now)
        if listing:
            return (real, segs)
        raise Refused(403, "directory without index file")
    if not is_reg(st):
        raise Refused(403, "not a regular file")
    if uri.endswith("/"):
        raise Refused(404, "a file is not a directory")
    return _entry(root, uri, lex, real, st, segs[-1], now)


def _entry(
    root: Root, uri: str, lex: str, real: str, st: os.stat_result, name: str, now: float
) -> Entry:
    m = root.meta_for(real, st)
    root.find_twins(m, lex)
    e = Entry(lex, m, now, name)
    root.remember(uri, e)
    return e

"""Streaming multipart/form-data parser (RFC 7578, RFC 2046 5.1) and a filename sanitiser.

Theory of operation
-------------------
``MultipartParser`` is sans-IO: the caller appends body bytes (already
de-chunked) to a buffer and calls ``next_event(buf)``, which parses from the
front of ``buf`` and returns ``(event, consumed)``.  The caller deletes
``consumed`` bytes from the front and calls again until it gets ``NEED_DATA``
(which may itself have consumed bytes: preamble and epilogue are dropped as
they arrive).  The parser keeps no copy of the body; all its state is below.

A body is, per RFC 2046 5.1.1::

    [preamble CRLF] "--" boundary padding CRLF          <- first delimiter
    part-headers CRLF part-data                         <- part 1
    CRLF "--" boundary padding CRLF part-headers ...    <- delimiter, part 2 ...
    CRLF "--" boundary "--" [anything: the epilogue]    <- close delimiter

States (``_state``), in order::

    START     at body offset 0: "--boundary" here is the first delimiter
    PREAMBLE  searching for CRLF "--boundary"; at most max_part_headers bytes
    HEADERS   a part's header section, up to CRLF CRLF   -> PartBegin
    BODY      part data until CRLF "--boundary"          -> bytes ..., PartEnd
    CLOSE     the "--" of the close delimiter is next    -> MultipartEnd
    EPILOGUE  everything is consumed and ignored
    ERROR     a RemoteProtocolError was raised; every later call raises again

BODY is the hot path.  It looks for the delimiter with ``bytes.find`` inside
a window of ``part_data_size + len(delimiter)`` bytes, so each call costs at
most one window however much the caller has buffered.  Data before the
delimiter, or (when there is none) everything except a tail that is a proper
prefix of CRLF "--boundary", is returned at once: the caller never holds more
than ``len(delimiter) - 1`` undelivered bytes, and a boundary split across
reads never leaks into data.  A delimiter only counts once the rest of its
line is seen: transport padding then CRLF, or "--".  Anything else after a
full "--boundary" is an error; "\\r\\n--bounda" followed by other bytes is data.

Refused with ``RemoteProtocolError`` (status 400; limit breaches raise the
``LimitExceeded`` subclass, also with status 400): a missing or oversized
preamble, garbage after a delimiter, transport padding longer than
``max_part_headers`` (however it is split into reads), bad part header lines (no colon,
non-token name, CTL in value, obs-fold), a header section over
``max_part_headers``, more than ``max_parts`` parts, a missing, repeated or
non-form-data Content-Disposition or one without ``name``, and a body that
ends (``eof=True``) before the close delimiter.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, TypeAlias
from urllib.parse import unquote_to_bytes

from mgpy.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from mgpy.events import find_header
from mgpy.limits import Limits

from ._sentinel import NEED_DATA, Sentinel

__all__ = [
    "NEED_DATA",
    "MultipartEnd",
    "MultipartEvent",
    "MultipartParser",
    "PartBegin",
    "PartEnd",
    "boundary_from_content_type",
    "parse_content_disposition",
    "sanitize_filename",
]


class PartBegin:
    """A part's header section is complete: field name, file name and headers."""

    __slots__ = ("filename", "headers", "name")

    def __init__(self, name: str, filename: str | None, headers: list[tuple[str, str]]) -> None:
        #: the ``name`` parameter of Content-Disposition (``name*`` wins if sent)
        self.name = name
        #: the ``filename`` parameter as sent (``filename*`` wins), or None;
        #: untrusted: pass it through ``sanitize_filename`` before using it as a path
        self.filename = filename
        #: every part header as ``(name as sent, value stripped)``, in wire order
        self.headers = headers

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return the part header ``name`` (case-insensitive), or ``default``."""
        return find_header(self.headers, name, default)

    def __repr__(self) -> str:
        return f"<PartBegin name={self.name!r} filename={self.filename!r}>"


class PartEnd:
    """The delimiter ending the current part was seen; its data is complete."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<PartEnd>"


class MultipartEnd:
    """The close delimiter was seen; anything after it (the epilogue) is ignored."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<MultipartEnd>"


_PART_END: Final = PartEnd()
_MULTIPART_END: Final = MultipartEnd()

#: what ``next_event`` returns as its first element
MultipartEvent: TypeAlias = "PartBegin | bytes | PartEnd | MultipartEnd | Sentinel"

_START, _PREAMBLE, _HEADERS, _BODY, _CLOSE, _EPILOGUE, _ERROR = range(7)

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_TOKEN_RE = re.compile(_TOKEN)
_HEADER_NAME_RE = re.compile(_TOKEN.encode())
_MEDIA_TYPE_RE = re.compile(_TOKEN + "/" + _TOKEN)
# RFC 9110 5.5: a field value holds no CTL other than HTAB
_CTL_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# one ";" then optionally name=value, value a quoted-string (RFC 9110 5.6.4) or a token-ish run
_PARAM_RE = re.compile(
    r"[ \t]*;[ \t]*(?:(" + _TOKEN + r')[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^;"\s]+)))?'
)
_QUOTED_PAIR_RE = re.compile(r"\\(.)")
# old IE sends the full client path unescaped: filename="C:\dir\a.txt" or "\\host\share\a.txt"
_IE_PATH_RE = re.compile(r"[A-Za-z]:\\|\\\\")
# RFC 8187 3.2.1: ext-value = charset "'" [ language ] "'" value-chars
_EXT_VALUE_RE = re.compile(
    r"([A-Za-z0-9!#$%&+^_`{}~-]+)'([A-Za-z0-9-]*)'"
    r"((?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+.^_`|~-])*)"
)
_EXT_CHARSETS: Final = frozenset({"utf-8", "iso-8859-1", "us-ascii"})
# RFC 2046 5.1.1: boundary := 0*69<bchars> bcharsnospace
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]")
# what may follow "--boundary": "--" (close) or transport padding then CRLF (RFC 2046 5.1.1)
_LINE_END_RE = re.compile(rb"(--)|[ \t]*\r\n")
_LINE_PARTIAL_RE = re.compile(rb"-|[ \t]*\r?")


def _error(msg: str) -> RemoteProtocolError:
    return RemoteProtocolError("multipart: " + msg, status=400)


def _limit(msg: str) -> LimitExceeded:
    return LimitExceeded("multipart: " + msg, status=400)


def _parse_params(value: str, pos: int) -> list[tuple[str, str, bool]]:
    """Parse ``; name=value`` pairs from ``value[pos:]`` into (lower name, raw value, quoted)."""
    out: list[tuple[str, str, bool]] = []
    seen: set[str] = set()
    n = len(value)
    while pos < n:
        m = _PARAM_RE.match(value, pos)
        if m is None:
            if value[pos:].strip(" \t"):
                raise _error("malformed header parameters")
            break
        pos = m.end()
        key = m.group(1)
        if key is None:
            continue  # ";;" or a trailing ";"
        key = key.lower()
        # RFC 6266 4.1: repeated parameter names make the value invalid
        if key in seen:
            raise _error(f"repeated parameter {key!r}")
        seen.add(key)
        quoted = m.group(2)
        out.append((key, quoted if quoted is not None else m.group(3), quoted is not None))
    return out


def _unquote(raw: str, is_filename: bool) -> str:
    if is_filename and _IE_PATH_RE.match(raw):
        return raw
    return _QUOTED_PAIR_RE.sub(lambda m: m.group(1), raw)


def _decode_ext_value(raw: str) -> str:
    m = _EXT_VALUE_RE.fullmatch(raw)
    if m is None:
        raise _error("malformed extended parameter value")
    charset = m.group(1).lower()
    if charset not in _EXT_CHARSETS:  # RFC 8187 3.2.1: UTF-8 and ISO-8859-1 are required
        raise _error("unsupported charset in extended parameter")
    try:
        return unquote_to_bytes(m.group(3)).decode(charset)
    except UnicodeDecodeError:
        raise _error("undecodable extended parameter value") from None


def parse_content_disposition(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Disposition value into (lower-cased type, parameters).

    Parameter names are lower-cased, quoted-strings unescaped, and an
    RFC 8187 ``name*=UTF-8''...`` value replaces the plain ``name`` value.
    Raises RemoteProtocolError(400) on malformed input.
    """
    value = value.strip(" \t")
    m = _TOKEN_RE.match(value)
    if m is None:
        raise _error("malformed Content-Disposition")
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    for key, raw, quoted in _parse_params(value, m.end()):
        if key.endswith("*"):
            if quoted:  # RFC 8187 3.2.1: an ext-value is never a quoted-string
                raise _error("quoted extended parameter value")
            extended[key[:-1]] = _decode_ext_value(raw)
        else:
            params[key] = _unquote(raw, key == "filename") if quoted else raw
    params.update(extended)  # RFC 6266 4.3: the extended form wins
    return m.group().lower(), params


def boundary_from_content_type(value: str) -> bytes:
    """Return the boundary of a ``multipart/form-data`` Content-Type value.

    Raises RemoteProtocolError(400) for another media type, or a missing or
    invalid boundary (RFC 2046 5.1.1: 1-70 bchars, not ending in a space).
    """
    value = value.strip(" \t")
    m = _MEDIA_TYPE_RE.match(value)
    if m is None or m.group().lower() != "multipart/form-data":
        raise _error("Content-Type is not multipart/form-data")
    for key, raw, _quoted in _parse_params(value, m.end()):
        if key == "boundary":
            if _BOUNDARY_RE.fullmatch(raw) is None:
                raise _error("invalid boundary")
            return raw.encode("ascii")
    raise _error("missing boundary")


def _decode_value(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _parse_part_headers(block: bytes) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):  # RFC 9112 5.2: obs-fold is rejected
            raise _error("obsolete line folding in part headers")
        name, colon, value = line.partition(b":")
        if not colon or _HEADER_NAME_RE.fullmatch(name) is None:
            raise _error("malformed part header line")
        value = value.strip(b" \t")
        if _CTL_RE.search(value):
            raise _error("control character in part header value")
        headers.append((name.decode("ascii"), _decode_value(value)))
    return headers


def _part_begin(headers: list[tuple[str, str]]) -> PartBegin:
    found = [v for k, v in headers if k.lower() == "content-disposition"]
    # RFC 7578 4.2: each part MUST have a Content-Disposition header field
    if len(found) != 1:
        raise _error("part needs exactly one Content-Disposition")
    kind, params = parse_content_disposition(found[0])
    # RFC 7578 4.2: the disposition type is "form-data" and a "name" parameter MUST be present
    if kind != "form-data":
        raise _error("Content-Disposition type is not form-data")
    name = params.get("name")
    if name is None:
        raise _error("Content-Disposition without a name")
    return PartBegin(name, params.get("filename"), headers)


def _take(buf: bytes | bytearray, n: int) -> bytes:
    if isinstance(buf, bytes):
        return buf[:n]
    with memoryview(buf) as mv:
        return mv[:n].tobytes()


class MultipartParser:
    """Incremental multipart/form-data parser: append body bytes, pull events.

    Example::

        p = MultipartParser(boundary_from_content_type(hm.header("Content-Type")), limits)
        buf = bytearray()
        # for every piece of the de-chunked body (eof=True with the last one):
        buf += piece
        while True:
            ev, n = p.next_event(buf, eof)
            del buf[:n]
            if ev is NEED_DATA:
                break
            ...  # PartBegin, bytes, PartEnd or MultipartEnd
    """

    __slots__ = ("_dash", "_delim", "_error_msg", "_limits", "_parts", "_preamble", "_state")

    def __init__(self, boundary: bytes, limits: Limits) -> None:
        try:
            valid = _BOUNDARY_RE.fullmatch(boundary.decode("ascii")) is not None
        except UnicodeDecodeError:
            valid = False
        if not valid:
            raise LocalProtocolError("multipart: invalid boundary")
        self._dash = b"--" + boundary
        self._delim = b"\r\n--" + boundary
        self._limits = limits
        self._state = _START
        self._parts = 0
        self._preamble = 0
        self._error_msg = ""

    @property
    def done(self) -> bool:
        """True once MultipartEnd has been returned."""
        return self._state == _EPILOGUE

    def next_event(self, buf: bytes | bytearray, eof: bool = False) -> tuple[MultipartEvent, int]:
        """Parse from the front of ``buf``; return ``(event, bytes consumed)``.

        ``eof=True`` says ``buf`` holds the end of the body.  Raises
        RemoteProtocolError(400) on malformed input, and again on every call
        after that.
        """
        state = self._state
        if state == _ERROR:
            raise _error(self._error_msg)
        try:
            if state == _BODY:
                return self._body(buf, eof)
            if state == _HEADERS:
                return self._headers(buf, 0, eof)
            if state == _EPILOGUE:
                return NEED_DATA, len(buf)
            if state == _CLOSE:
                self._state = _EPILOGUE
                return _MULTIPART_END, 2
            if state == _START:
                return self._start(buf, eof)
            return self._find_first(buf, eof)
        except RemoteProtocolError as e:
            self._state = _ERROR
            self._error_msg = str(e).removeprefix("multipart: ")
            raise

    # -- states -------------------------------------------------------------------
    def _need(self, eof: bool, consumed: int) -> tuple[MultipartEvent, int]:
        if eof:
            raise _error("body ended before the final boundary")
        return NEED_DATA, consumed

    def _start(self, buf: bytes | bytearray, eof: bool) -> tuple[MultipartEvent, int]:
        dash = self._dash
        if buf.startswith(dash):  # RFC 2046 5.1.1: the body may open with the delimiter
            return self._first_delimiter(buf, 0, len(dash), eof)
        if len(buf) < len(dash) and dash.startswith(buf):
            return self._need(eof, 0)
        self._state = _PREAMBLE
        return self._find_first(buf, eof)

    def _find_first(self, buf: bytes | bytearray, eof: bool) -> tuple[MultipartEvent, int]:
        delim = self._delim
        dl = len(delim)
        room = self._limits.max_part_headers - self._preamble
        i = buf.find(delim, 0, room + dl)
        if i >= 0:
            self._preamble += i
            return self._first_delimiter(buf, i, i + dl, eof)
        if len(buf) >= room + dl:
            raise _limit("preamble before the first boundary exceeds max_part_headers")
        drop = max(0, len(buf) - dl + 1)
        self._preamble += drop
        return self._need(eof, drop)

    def _first_delimiter(
        self, buf: bytes | bytearray, start: int, at: int, eof: bool
    ) -> tuple[MultipartEvent, int]:
        line = self._delimiter_line(buf, at)
        if line is None:
            return self._need(eof, start)
        close, end = line
        if close:  # "--boundary--" and no part: a form with no fields
            self._state = _EPILOGUE
            return _MULTIPART_END, end
        self._count_part()
        return self._headers(buf, end, eof)

    def _delimiter_line(self, buf: bytes | bytearray, at: int) -> tuple[bool, int] | None:
        """Check what follows "--boundary" at ``at``: (is close, end) or None if incomplete.

        Transport padding (RFC 2046 5.1.1: SP/HTAB before the CRLF) is capped at
        ``max_part_headers`` bytes, counted the same whether it arrives in one piece
        or many.
        """
        m = _LINE_END_RE.match(buf, at)
        if m is not None:
            if m.group(1) is not None:
                return True, m.end()
            padding = m.end() - at - 2
        elif _LINE_PARTIAL_RE.fullmatch(buf, at) is None:
            raise _error("garbage after a boundary delimiter")
        else:
            padding = len(buf) - at
            if buf.endswith(b"\r"):  # the CR of the CRLF ending the line
                padding -= 1
        if padding > self._limits.max_part_headers:
            raise _limit("transport padding exceeds max_part_headers")
        return None if m is None else (False, m.end())

    def _count_part(self) -> None:
        self._parts += 1
        if self._parts > self._limits.max_parts:
            raise _limit("more than max_parts parts")
        self._state = _HEADERS

    def _headers(self, buf: bytes | bytearray, pos: int, eof: bool) -> tuple[MultipartEvent, int]:
        if buf.startswith(b"\r\n", pos):
            raise _error("part without headers")
        cap = self._limits.max_part_headers
        i = buf.find(b"\r\n\r\n", pos, pos + cap)
        if i < 0:
            if len(buf) - pos >= cap:
                raise _limit("part header section exceeds max_part_headers")
            return self._need(eof, pos)
        ev = _part_begin(_parse_part_headers(bytes(buf[pos:i])))
        self._state = _BODY
        return ev, i + 4

    def _body(self, buf: bytes | bytearray, eof: bool) -> tuple[MultipartEvent, int]:
        delim = self._delim
        dl = len(delim)
        size = self._limits.part_data_size or 1
        n = len(buf)
        i = buf.find(delim, 0, size + dl)
        if i == 0:
            line = self._delimiter_line(buf, dl)
            if line is None:
                return self._need(eof, 0)
            close, end = line
            if close:
                self._state = _CLOSE
                return _PART_END, dl
            self._count_part()
            return _PART_END, end
        if i > 0:
            take = i  # <= size: the search window ends at size + dl
        elif n >= size + dl:
            take = size  # no delimiter starts in the first size + 1 bytes
        else:
            # hold back a tail that may be the start of CRLF "--boundary"; CR occurs
            # only first in the delimiter, so the last CR is the only candidate
            take = n
            k = buf.rfind(b"\r", max(0, n - dl + 1))
            if k >= 0 and delim.startswith(buf[k:]):
                take = k
            if take == 0:
                return self._need(eof, 0)
            take = min(take, size)
        return _take(buf, take), take


# -- filenames ------------------------------------------------------------------------

# C0, DEL, C1, what Windows forbids, and the bidi controls used to disguise extensions
_BAD_FILENAME_CHARS_RE = re.compile(
    '[\x00-\x1f\x7f-\x9f<>:"|?*\u200e\u200f\u202a-\u202e\u2066-\u2069]'
)
_WINDOWS_DEVICES: Final = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)
_MAX_FILENAME_BYTES: Final = 255  # NAME_MAX on Linux, ext4, NTFS (in UTF-16 units), APFS


def _cap_filename(name: str) -> str:
    raw = name.encode("utf-8")
    if len(raw) <= _MAX_FILENAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    ext_len = len(ext.encode("utf-8")) + 1
    if dot and stem and ext_len < _MAX_FILENAME_BYTES:
        cut = stem.encode("utf-8")[: _MAX_FILENAME_BYTES - ext_len]
        stem = cut.decode("utf-8", "ignore").rstrip(". ")
        if stem:
            return stem + "." + ext
    return raw[:_MAX_FILENAME_BYTES].decode("utf-8", "ignore").rstrip(". ")


def sanitize_filename(name: str | None) -> str | None:
    """Return a safe base name for an uploaded file name, or None if nothing safe remains.

    Keeps the last path component (``/`` and ``\\``), removes control
    characters and ``<>:"|?*``, strips leading dots/spaces and trailing
    dots/spaces, prefixes Windows device names (``CON``, ``NUL.txt``) with
    ``_``, NFC-normalises and caps the result at 255 UTF-8 bytes, keeping
    the extension.  Example: ``sanitize_filename("../../etc/pass?wd")`` ->
    ``"passwd"``; ``sanitize_filename("..")`` -> ``None``.
    """
    if name is None:
        return None
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rpartition("/")[2]
    name = _BAD_FILENAME_CHARS_RE.sub("", name)
    name = name.lstrip(". ").rstrip(". ")
    if not name:  # also what "." and ".." become
        return None
    if name.partition(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        name = "_" + name
    return _cap_filename(name) or None

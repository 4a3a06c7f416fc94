"""HTTP/1.1 grammar for the reader: regexes, field checks and framing rules (sans-IO).

The patterns implement RFC 9110 5.6.2 (token), 5.5 (field values) and RFC 9112 2.2, 3,
5 and 7.1; the functions decide a request's framing (Content-Length, Transfer-Encoding,
Connection, Expect, Upgrade) and validate Host and request-targets.  Only
``mgpy.proto.http1`` uses this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import LimitExceeded, RemoteProtocolError

# --- grammar (RFC 9110 5.6.2 token, 5.5 field-value; RFC 9112 2.2, 3, 5, 7.1) ---
_TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_VALUE_CHAR = r"[\t\x20-\x7e\x80-\xff]"  # VCHAR / obs-text / SP / HTAB
# request-target: visible ASCII, no '#' (a fragment is never sent, RFC 9112 3.2)
_TARGET = r"[\x21\x22\x24-\x7e]+"

_REQUEST_LINE = re.compile(rf"({_TOKEN}) ({_TARGET}) HTTP/([0-9]\.[0-9])\r\n")
_STATUS_LINE = re.compile(rf"HTTP/([0-9]\.[0-9]) ([0-9]{{3}})(?: ({_VALUE_CHAR}*))?\r\n")
# A field line, matched from the CRLF ending the previous line up to (not
# including) its own CRLF: a match can only span exactly one line, so the
# field lines are all valid (no bare CR/LF, no CTL, token name, no space
# before the colon, no obs-fold) iff findall returns one match per line.
# The fast form refuses trailing OWS (such a head falls back to _FIELD_OWS).
# No two parts can match the same text, so a failing line backtracks in O(n):
# the value starts after all leading OWS (the lookahead) and is never split.
_FIELD = re.compile(rf"\r\n({_TOKEN}):[ \t]*(?![ \t])({_VALUE_CHAR}*)(?<![ \t])(?=\r\n)")
_FIELD_OWS = re.compile(rf"\r\n({_TOKEN}):({_VALUE_CHAR}*)(?=\r\n)")
# the fields that decide framing (and Host)
_FRAMING = frozenset(("content-length", "transfer-encoding", "connection", "expect", "upgrade"))
_ONE_FIELD = re.compile(rf"{_TOKEN}:{_VALUE_CHAR}*")
_FIELD_BLOCK = re.compile(rf"(?:{_TOKEN}:{_VALUE_CHAR}*\r\n)*\r\n")
_BARE_CR_LF = re.compile(rb"\r[^\n]|(?<!\r)\n")
_TCHAR_B = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]")
_HTTP_SLASH = b"HTTP/"
_DIGITS = re.compile(r"[0-9]{1,18}")  # Content-Length, bounded to fit any int64
# RFC 3986 host: IP-literal / reg-name (unreserved, pct-encoded, sub-delims), then [":" port]
_IP_LITERAL = r"\[[0-9A-Za-z\-._~!$&'()*+,;=:]+\]"
_REG_NAME = r"[0-9A-Za-z\-._~!$&'()*+,;=%]"  # '%' must start pct-encoded: see _BAD_PCT
_HOST = re.compile(rf"(?:{_IP_LITERAL}|{_REG_NAME}*)(?::[0-9]*)?")
_AUTHORITY_FORM = re.compile(rf"(?:{_IP_LITERAL}|{_REG_NAME}+):[0-9]+")
_ABSOLUTE_FORM = re.compile(r"[hH][tT][tT][pP][sS]?://([^/?]*)([^?]*)(?:\?(.*))?", re.S)
_URI_AUTHORITY = re.compile(rf"(?:{_IP_LITERAL}|{_REG_NAME}+)(?::[0-9]*)?")
_BAD_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# RFC 9112 7.1 / 7.1.1: chunk-size [ chunk-ext ]; BWS only around ';' and '='
_CHUNK_EXT = rf"[ \t]*;[ \t]*{_TOKEN}(?:[ \t]*=[ \t]*(?:{_TOKEN}|{_QUOTED}))?"
_CHUNK_LINE = re.compile(rf"([0-9A-Fa-f]{{1,16}})(?:{_CHUNK_EXT})*\r\n".encode("latin-1"))
_TOKEN_RE = re.compile(_TOKEN)
# RFC 9110 10.1.4: transfer-coding = token *( OWS ";" OWS transfer-parameter )
_TRANSFER_CODING = re.compile(
    rf"({_TOKEN})(?:[ \t]*;[ \t]*{_TOKEN}[ \t]*=[ \t]*(?:{_TOKEN}|{_QUOTED}))*"
)
# RFC 9112 5.2: obs-fold = OWS CRLF RWS
_OBS_FOLD = re.compile(r"[ \t]*\r\n[ \t]+")

#: Transfer-Encoding of a message (``transfer_framing``), RFC 9112 6.1 / 6.3:
TE_CHUNKED = 0  #: exactly "chunked"
TE_CODED = 1  #: a well-formed list of codings with "chunked" last, once
TE_UNFRAMED = 2  #: "chunked" is not the final coding (or the list is empty or malformed)

#: header name as sent -> its lower-case form if it is Host or decides framing, else "".
#: Names repeat on every request, so a bounded memo beats lower() per field.
_NAME_KIND: dict[str, str] = {}
#: Host values already validated (bounded); a server sees a handful of them
_GOOD_HOSTS: set[str] = set()
_MEMO_MAX = 512


def _name_kind(name: str) -> str:
    """Classify a field name for _NAME_KIND (and remember it)."""
    lower = name.lower()
    kind = lower if lower == "host" or lower in _FRAMING else ""
    if len(_NAME_KIND) < _MEMO_MAX:
        _NAME_KIND[name] = kind
    return kind


def _check_host(host: str) -> None:
    """Raise unless ``host`` is a valid Host value: uri-host [":" port] (RFC 9110 7.2)."""
    if _HOST.fullmatch(host) is None or _BAD_PCT.search(host) is not None:
        raise RemoteProtocolError("invalid Host")
    if len(_GOOD_HOSTS) < _MEMO_MAX:
        _GOOD_HOSTS.add(host)


def _fields_ows(text: str, rl: int, nl: int, client: bool) -> list[tuple[str, str]]:
    """Fields of a head where some value has trailing OWS, or raise (slow path)."""
    headers: list[tuple[str, str]] = _FIELD_OWS.findall(text, rl)
    if len(headers) != nl - 2:
        raise _head_error(text, client)
    return [(name, value.strip(" \t")) for name, value in headers]


def _head_error(text: str, client: bool) -> RemoteProtocolError:
    """Explain why a complete head is invalid (slow path)."""
    rl = text.find("\r\n")
    m = (_STATUS_LINE if client else _REQUEST_LINE).match(text)
    if m is None:
        if "\r" in text[:rl] or "\n" in text[:rl]:
            return RemoteProtocolError("bare CR or LF in head")  # RFC 9112 2.2
        return RemoteProtocolError("malformed status line" if client else "malformed request line")
    if m.group(1 if client else 3) not in ("1.1", "1.0"):
        return RemoteProtocolError("unsupported HTTP version", 505)
    for line in text[rl + 2 : -4].split("\r\n"):
        if "\r" in line or "\n" in line:
            return RemoteProtocolError("bare CR or LF in head")  # RFC 9112 2.2
        if line[:1] in (" ", "\t"):
            # RFC 9112 5.2: obs-fold is refused with 400
            return RemoteProtocolError("obsolete line folding in header")
        name, colon, _ = line.partition(":")
        if colon and name.rstrip(" \t") != name:
            # RFC 9112 5.1: a server MUST reject whitespace between name and colon
            return RemoteProtocolError("whitespace before colon in header")
        if _ONE_FIELD.fullmatch(line) is None:
            if colon and _TOKEN_RE.fullmatch(name) is not None:
                # RFC 9110 5.5: field values hold no CTL but HTAB (NUL, DEL ...)
                return RemoteProtocolError("control character in header value")
            return RemoteProtocolError("malformed header line")
    return RemoteProtocolError("malformed head")


def _list_tokens(values: Sequence[str]) -> list[str]:
    """Lower-cased members of list fields, empty ones dropped (RFC 9110 5.6.1)."""
    if len(values) == 1 and "," not in values[0]:
        return [values[0].lower()] if values[0] else []  # values arrive OWS-stripped
    return [t for t in (x.strip(" \t").lower() for v in values for x in v.split(",")) if t]


def transfer_framing(values: Sequence[str]) -> int:
    """Classify Transfer-Encoding field values: TE_CHUNKED, TE_CODED or TE_UNFRAMED.

    Raises RemoteProtocolError (400) for a list that applies chunked more than once
    (RFC 9112 6.1: a sender MUST NOT); such a message cannot be framed reliably.
    """
    codings = _list_tokens(values)
    if codings == ["chunked"]:
        return TE_CHUNKED
    if not codings or codings[-1] != "chunked":
        return TE_UNFRAMED
    names = []
    for coding in codings:
        m = _TRANSFER_CODING.fullmatch(coding)
        if m is None:
            return TE_UNFRAMED
        names.append(m.group(1))
    if names.count("chunked") > 1:
        raise RemoteProtocolError("chunked transfer coding applied more than once")
    return TE_CODED


def unfold(text: str, rl: int) -> tuple[str, int]:
    """Replace each obs-fold after the start line (ending at ``rl``) with one SP.

    RFC 9112 5.2: a user agent MUST replace each received obs-fold in a response with
    one or more SP before interpreting the field value.  Whitespace before the first
    field line is not a fold (RFC 9112 2.2) and is left for the caller to refuse.
    Returns the new text and the number of folds replaced.
    """
    fields = text[rl + 2 :]
    if fields[:1] in (" ", "\t"):
        return text, 0
    fields, folds = _OBS_FOLD.subn(" ", fields)
    return (text[: rl + 2] + fields, folds) if folds else (text, 0)


def _content_length(values: list[str]) -> int:
    """Parse Content-Length field values (RFC 9110 8.6, RFC 9112 6.3 (5))."""
    if len(values) == 1 and _DIGITS.fullmatch(values[0]) is not None:
        return int(values[0])
    items = [x.strip(" \t") for v in values for x in v.split(",")]
    first = items[0]
    for x in items:
        # identical repeated values may be taken as one; anything else is invalid
        if x != first or _DIGITS.fullmatch(x) is None:
            raise RemoteProtocolError("invalid Content-Length")
    return int(first)


def _request_framing(
    fields: list[tuple[str, str]], http11: bool, method: str
) -> tuple[bool, int, bool, str, bool]:
    """Return (keep_alive, content_length, chunked, upgrade, expect_continue) of a request."""
    cls: list[str] = []
    tes: list[str] = []
    conns: list[str] = []
    upgrades: list[str] = []
    expects: list[str] = []
    for name, value in fields:
        if name == "content-length":
            cls.append(value)
        elif name == "connection":
            conns.append(value)
        elif name == "transfer-encoding":
            tes.append(value)
        elif name == "upgrade":
            upgrades.append(value)
        else:
            expects.append(value)
    keep_alive = http11
    upgrade = ""
    if conns:
        tokens = _list_tokens(conns)
        # RFC 9112 9.3: "close" ends the connection; HTTP/1.0 persists only on "keep-alive"
        if "close" in tokens:
            keep_alive = False
        elif "keep-alive" in tokens:
            keep_alive = True
        # RFC 9110 7.8: a server MUST ignore Upgrade in an HTTP/1.0 request
        if upgrades and http11 and "upgrade" in tokens:
            upgrade = ", ".join(upgrades).lower()
    expect = False
    for v in expects:
        if v.lower() != "100-continue":
            raise RemoteProtocolError("unsupported expectation", 417)
        # RFC 9110 10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request
        expect = http11
    clen = 0
    chunked = False
    if (tes or cls) and method == "CONNECT":
        # RFC 9110 9.3.6: a CONNECT request has no content; another parser would take
        # these bytes for tunnel data (mgpy never tunnels): the framing is ambiguous
        raise RemoteProtocolError("CONNECT request with Content-Length or Transfer-Encoding")
    if tes:
        _check_request_te(tes, bool(cls), http11)
        chunked = True
        clen = -1
    elif cls:
        clen = _content_length(cls)
    return keep_alive, clen, chunked, upgrade, expect


def _check_request_te(tes: list[str], has_cl: bool, http11: bool) -> None:
    """Raise unless a request's Transfer-Encoding frames its body as plain chunked."""
    # RFC 9112 6.1: TE in HTTP/1.0 MUST be treated as faulty framing
    if not http11:
        raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
    # RFC 9112 6.1 / 6.3 (3): CL with TE is a smuggling attempt -> 400, close
    if has_cl:
        raise RemoteProtocolError("both Content-Length and Transfer-Encoding")
    te = transfer_framing(tes)
    if te == TE_UNFRAMED:
        # RFC 9112 6.3 (4): chunked is not the final coding of a request: the server
        # MUST respond 400 and close (the body's length cannot be determined)
        raise RemoteProtocolError("Transfer-Encoding does not end in chunked")
    if te == TE_CODED:
        # RFC 9112 6.1: a coding it does not understand SHOULD get 501 (nginx, h11)
        raise RemoteProtocolError("unsupported transfer coding", 501)


def _other_target(method: str, target: str) -> tuple[str, str]:
    """Return (path, query) of a request-target not in plain origin-form (RFC 9112 3.2)."""
    if method == "CONNECT":
        # RFC 9112 3.2.3: authority-form, used only (and always) by CONNECT
        if _AUTHORITY_FORM.fullmatch(target) is None or _BAD_PCT.search(target) is not None:
            raise RemoteProtocolError("CONNECT needs an authority-form target")
        return target, ""
    if target == "*":
        # RFC 9112 3.2.4: asterisk-form is only for server-wide OPTIONS
        if method != "OPTIONS":
            raise RemoteProtocolError("asterisk-form target outside OPTIONS")
        return "*", ""
    m = _ABSOLUTE_FORM.fullmatch(target)
    if m is None:
        raise RemoteProtocolError("invalid request-target")
    authority, path, query = m.groups()
    # RFC 9110 4.2.1: an http(s) URI with an empty host MUST be rejected;
    # 4.2.4: userinfo is deprecated and refused here.
    if _URI_AUTHORITY.fullmatch(authority) is None or _BAD_PCT.search(authority) is not None:
        raise RemoteProtocolError("invalid authority in absolute-form target")
    return path or "/", query or ""


class HeadScan:
    """Checks the bytes of a head in wire order: line endings, the start line, the limits.

    One rule makes the status of a bad head independent of how it was split into reads:
    **the violation whose trigger byte comes first wins**, as if the head had arrived
    one byte at a time.  Trigger bytes: a bare LF itself, the byte after a bare CR
    (RFC 9112 2.2); a request line's first byte if it cannot start a method, a status
    line's first byte that breaks "HTTP/"; the CRLF ending the start line (malformed:
    400, other version: 505); the ``limit``-th byte of a line without its CRLF
    (414 for the request line, 431 for a field line); the CRLF of field line
    ``max_header_count + 1`` (431); byte ``max_headers_size`` of an unfinished head
    (431).  On one byte, the checks run in that order.  What only a complete head shows
    (field syntax, Host, framing) comes last.  ``feed`` keeps its position, so a head
    arriving byte by byte is scanned in O(n).
    """

    __slots__ = ("client", "count", "line", "lstart", "nlines", "pos", "size", "start")

    def __init__(self, start: int, line: int, size: int, count: int, client: bool) -> None:
        """Limits: request/status line, field line, head size, field count (``Limits``)."""
        self.client = client
        self.start = start
        self.line = line
        self.size = size
        self.count = count
        self.pos = self.lstart = self.nlines = 0

    def reset(self, base: int) -> None:
        """Start scanning a new head at offset ``base``."""
        self.pos = self.lstart = base
        self.nlines = 0

    def feed(self, buf: bytes | bytearray, base: int, n: int, complete: bool = False) -> None:
        """Check ``buf[pos:n]``; raise the first violation (``complete``: a whole head)."""
        pos, lstart, nlines = self.pos, self.lstart, self.nlines
        size_at = base + self.size - 1
        # a complete head whose last byte is size_at fits exactly
        size_end = n - 1 if complete else n
        while True:
            i = buf.find(b"\r\n", pos, n)
            end = i + 2 if i >= 0 else n  # the bytes of this line that are here
            at, err = self._first_trigger(buf, pos, lstart, nlines, i, end)
            if size_at < size_end and pos <= size_at < end and size_at < at:
                at, err = size_at, LimitExceeded("head too large", 431)
            if err is not None:
                raise err
            if i < 0:
                break
            if nlines == 0:
                self._check_start_line(buf[lstart : i + 2].decode("latin-1"))
            elif i == lstart:
                return  # the empty line ending a complete head
            elif nlines > self.count:
                raise LimitExceeded("too many header lines", 431)
            nlines += 1
            lstart = pos = i + 2
        # a CR as the last byte is judged when the next byte arrives
        self.pos = n - 1 if n > lstart and buf[n - 1] == 13 else n
        self.lstart = lstart
        self.nlines = nlines

    def _first_trigger(
        self, buf: bytes | bytearray, pos: int, lstart: int, nlines: int, i: int, end: int
    ) -> tuple[int, RemoteProtocolError | None]:
        """The earliest violation triggered in ``buf[pos:end]`` of the line at ``lstart``."""
        at = end
        err: RemoteProtocolError | None = None
        m = _BARE_CR_LF.search(buf, pos, end)
        if m is not None:
            # RFC 9112 2.2: CRLF is the only line terminator
            at, err = m.end() - 1, RemoteProtocolError("bare CR or LF in head")
        if nlines == 0:
            # refuse garbage (say a TLS ClientHello) at once, not at a limit or timeout
            k = self._bad_start(buf, max(pos, lstart), min(lstart + 5, end), lstart)
            if 0 <= k < at:
                at = k
                err = RemoteProtocolError(
                    "status line does not start with HTTP/"
                    if self.client
                    else "request line does not start with a method"
                )
        limit = self.line if nlines else self.start
        long_at = lstart + limit - 1
        if (i < 0 or i + 1 > long_at) and long_at < end and long_at < at:
            if nlines:
                at, err = long_at, LimitExceeded("header line too long", 431)
            else:
                at, err = long_at, LimitExceeded("request line too long", 414)
        return at, err

    def _bad_start(self, buf: bytes | bytearray, a: int, b: int, lstart: int) -> int:
        """The offset in [a, b) of the first byte that cannot begin a start line, else -1."""
        if self.client:
            for k in range(a, b):
                if buf[k] != _HTTP_SLASH[k - lstart] and (k > lstart or buf[k] != 13):
                    return k
        elif a == lstart < b and buf[a] != 13 and _TCHAR_B.match(buf, a) is None:
            return a
        return -1

    def _check_start_line(self, line: str) -> None:
        """Validate a request/status line (with its CRLF)."""
        m = (_STATUS_LINE if self.client else _REQUEST_LINE).fullmatch(line)
        if m is None:
            raise RemoteProtocolError("malformed start line")
        if m.group(1 if self.client else 3) not in ("1.1", "1.0"):
            raise RemoteProtocolError("unsupported HTTP version", 505)

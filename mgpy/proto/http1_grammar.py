"""HTTP/1.1 grammar for the reader: regexes, field checks and framing rules (sans-IO).

The patterns implement RFC 9110 5.6.2 (token), 5.5 (field values) and RFC 9112 2.2, 3,
5 and 7.1; the functions decide a request's framing (Content-Length, Transfer-Encoding,
Connection, Expect, Upgrade) and validate Host and request-targets.  Only
``mgpy.proto.http1`` uses this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import RemoteProtocolError

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
    fields: list[tuple[str, str]], http11: bool
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
    if tes:
        # RFC 9112 6.1: TE in HTTP/1.0 MUST be treated as faulty framing
        if not http11:
            raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
        # RFC 9112 6.1 / 6.3 (3): CL with TE is a smuggling attempt -> 400, close
        if cls:
            raise RemoteProtocolError("both Content-Length and Transfer-Encoding")
        codings = _list_tokens(tes)
        if not codings:
            raise RemoteProtocolError("empty Transfer-Encoding")
        # RFC 9112 6.1: unknown codings SHOULD get 501 (nginx, Apache, h11 agree);
        # chunked applied twice or not last is refused the same way.
        if codings != ["chunked"]:
            raise RemoteProtocolError("unsupported Transfer-Encoding", 501)
        chunked = True
        clen = -1
    elif cls:
        clen = _content_length(cls)
    return keep_alive, clen, chunked, upgrade, expect


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

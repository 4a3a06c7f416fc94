"""Small HTTP helpers: URL coding, form variables, header parameters, auth, dates, globs.

These mirror the mongoose 6 helpers (``mg_url_decode``, ``mg_get_http_var``,
``mg_http_parse_header``, ``mg_match_prefix`` ...) with the behaviour the RFCs
ask for instead of mongoose's shortcuts:

* URL coding works on bytes: text is UTF-8 encoded before ``%XX`` decoding and
  the result is decoded as UTF-8 with ``errors="replace"`` (a bad byte becomes
  U+FFFD instead of an exception or a lone surrogate).  Invalid ``%`` escapes
  are kept literally.
* Header parameters are parsed by a real tokenizer (RFC 9110 5.6): quoted
  strings with backslash escapes, ``;`` or ``,`` separators, case-insensitive
  names, and a name never matches a longer name that merely ends with it.
* ``glob_match`` is a bit-parallel NFA (Shift-And with star loops), linear in
  the path length whatever the pattern, so ``**a**a**a**b`` cannot blow up.
* Dates use ``calendar``/``email.utils``; nothing here reads the clock except
  ``parse_http_date``'s RFC 850 two-digit-year rule, which takes ``now=``.

Everything is pure: no sockets, no files, no ``time``.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime
import email.utils
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

from ..errors import LocalProtocolError

__all__ = [
    "basic_auth_header",
    "format_http_date",
    "get_http_var",
    "get_http_vars",
    "glob_match",
    "http_parse_header",
    "parse_basic_auth",
    "parse_header_params",
    "parse_http_date",
    "parse_list_header",
    "parse_qvalues",
    "request_target",
    "select_endpoint",
    "url_decode",
    "url_encode",
]


def _to_bytes(s: str | bytes) -> bytes:
    if not isinstance(s, str):
        return bytes(s)
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate (e.g. from surrogateescape) has no UTF-8 form: U+FFFD stands in
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def url_decode(s: str | bytes, form: bool = True) -> str:
    """Decode ``%XX`` escapes (and ``+`` as space when ``form``) and return UTF-8 text.

    Invalid escapes such as ``%zz`` or a trailing ``%4`` are kept literally;
    bytes that are not valid UTF-8 become U+FFFD, and so does a lone surrogate in ``s``.
    """
    b = _to_bytes(s)
    if form:
        b = b.replace(b"+", b" ")
    if b"%" in b:
        b = unquote_to_bytes(b)  # C-speed table lookups; bad escapes stay as they are
    return b.decode("utf-8", errors="replace")


def url_encode(s: str | bytes, safe: str = "") -> str:
    """Percent-encode everything except RFC 3986 2.3 unreserved characters and ``safe``."""
    return quote(_to_bytes(s), safe=safe)


def get_http_vars(buf: str | bytes) -> list[tuple[str, str]]:
    """Return every ``name=value`` pair of a query string or urlencoded body, decoded, in order.

    Only ``&`` separates pairs (not ``;``); a pair without ``=`` has the value
    ``""``; empty segments are skipped.
    """
    out: list[tuple[str, str]] = []
    for seg in _to_bytes(buf).split(b"&"):
        if not seg:
            continue
        name, _, value = seg.partition(b"=")
        out.append((url_decode(name), url_decode(value)))
    return out


def get_http_var(buf: str | bytes, name: str) -> str | None:
    """Return the decoded value of the first variable ``name`` in ``buf``, or None.

    ``name`` is compared case-sensitively with the decoded variable name;
    ``"a"`` and ``"a="`` both give ``""``.
    """
    for seg in _to_bytes(buf).split(b"&"):
        if not seg:
            continue
        n, _, value = seg.partition(b"=")
        if url_decode(n) == name:
            return url_decode(value)
    return None


# --- header parameters (RFC 9110 5.6) -----------------------------------------------

_WS = " \t"
_NAME_STOP = frozenset(' \t;,="')
_VALUE_STOP = frozenset(" \t;,")


def _read_quoted(value: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; return (content, next index)."""
    # RFC 9110 5.6.4: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
    out: list[str] = []
    i += 1
    n = len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    return "".join(out), n  # unterminated: take the rest, as browsers do


def _tokenize_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a header value into its leading bare item and its ``name=value`` parameters."""
    params: list[tuple[str, str]] = []
    main = ""
    first = True
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in _WS or c in ";,":
            i += 1
            continue
        if c == '"':  # a stray quoted-string where a name belongs: skip it whole
            _, i = _read_quoted(value, i)
            first = False
            continue
        start = i
        while i < n and value[i] not in _NAME_STOP:
            i += 1
        if i == start:  # a lone "=": skip it
            i += 1
            continue
        name = value[start:i]
        j = i
        while j < n and value[j] in _WS:
            j += 1
        if j < n and value[j] == "=":
            j += 1
            while j < n and value[j] in _WS:
                j += 1
            if j < n and value[j] == '"':
                v, i = _read_quoted(value, j)
            else:
                k = j
                while k < n and value[k] not in _VALUE_STOP:
                    k += 1
                v, i = value[j:k], k
            params.append((name.lower(), v))
        elif first:
            # The bare leading item: "form-data", "text/html", an auth scheme.
            main = name
        first = False
    return main, params


def http_parse_header(value: str, name: str) -> str | None:
    """Return parameter ``name`` of a header value, unquoted, or None when absent.

    Works on ``Content-Disposition: form-data; name="a\\"b"; filename=x.txt``,
    ``Content-Type`` parameters and ``Authorization: Digest username="u", nc=1``.
    Names are case-insensitive (RFC 9110 5.6.6); the first occurrence wins;
    ``xname=1`` is not ``name``.
    """
    want = name.lower()
    if not want:
        return None
    for k, v in _tokenize_params(value)[1]:
        if k == want:
            return v
    return None


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``'form-data; name="a"'`` into ``("form-data", {"name": "a"})``.

    The leading item is returned as written (``""`` when the value starts with
    a parameter); keys are lower-cased; the first of repeated keys wins.
    """
    main, pairs = _tokenize_params(value)
    params: dict[str, str] = {}
    for k, v in pairs:
        params.setdefault(k, v)
    return main, params


def parse_list_header(value: str) -> list[str]:
    """Split a comma-separated list (RFC 9110 5.6.1), honouring quoted strings.

    Elements are stripped; empty elements are dropped (RFC 9110 5.6.1.2); an
    element that is a single quoted-string is returned unquoted.
    """
    out: list[str] = []
    cur: list[str] = []
    i, n = 0, len(value)

    def flush() -> None:
        item = "".join(cur).strip(_WS)
        cur.clear()
        if len(item) >= 2 and item[0] == '"':
            text, end = _read_quoted(item, 0)
            if end == len(item):
                item = text
        if item:
            out.append(item)

    while i < n:
        c = value[i]
        if c == ",":
            flush()
            i += 1
        elif c == '"':
            start = i
            _, i = _read_quoted(value, i)
            cur.append(value[start:i])
        else:
            cur.append(c)
            i += 1
    flush()
    return out


# RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")


def parse_qvalues(value: str) -> list[tuple[str, float]]:
    """Parse ``'br;q=0.8, gzip, *;q=0'`` into ``[("br", 0.8), ("gzip", 1.0), ("*", 0.0)]``.

    Items are lower-cased and kept in header order; a missing weight is 1.0
    and a malformed one makes that item 0.0 (not acceptable).
    """
    out: list[tuple[str, float]] = []
    for item in parse_list_header(value):
        head, _, rest = item.partition(";")
        coding = head.strip(_WS).lower()
        if not coding:
            continue
        q = 1.0
        qs = http_parse_header(";" + rest, "q") if rest else None
        if qs is not None:
            q = float(qs) if _QVALUE_RE.fullmatch(qs) else 0.0
        out.append((coding, q))
    return out


# --- Basic auth (RFC 7617) ------------------------------------------------------------


def parse_basic_auth(value: str | None) -> tuple[str, str] | None:
    """Decode ``'Basic base64(user:pass)'`` into ``(user, password)``; None if absent or malformed.

    The scheme is case-insensitive; the credentials are decoded as UTF-8
    (RFC 7617 2.1), falling back to ISO-8859-1 for legacy clients.
    """
    if not value:
        return None
    scheme, _, token = value.strip(_WS).partition(" ")
    if scheme.lower() != "basic":
        return None
    token = token.strip(_WS)
    if not token:
        return None
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return user, password


def _has_ctl(s: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in s)


def basic_auth_header(user: str, password: str) -> str:
    """Return the ``Authorization`` value ``'Basic ...'`` for ``user``/``password`` (UTF-8).

    Raises LocalProtocolError when ``user`` contains ``:`` or either contains a
    control character (RFC 7617 2).
    """
    if ":" in user:
        raise LocalProtocolError("Basic auth user-id must not contain ':'")
    if _has_ctl(user) or _has_ctl(password):
        raise LocalProtocolError("Basic auth credentials must not contain control characters")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return "Basic " + token


# --- endpoint globs ------------------------------------------------------------------
#
# A pattern is compiled to tokens: a literal character, "?" (one char except
# "/"), "*" (a run without "/") or "**" (any run).  Consecutive stars collapse
# into one, so the epsilon-closure of the NFA is a single shift.  State bit i
# means "the first i tokens are consumed"; one step per path character:
#     D = ((D << 1) & B[ch]) | (D & L[ch]);  D |= (D << 1) & STARS
# where B[ch] marks non-star tokens accepting ch and L[ch] star tokens looping
# on ch.  Cost: O(len(path)) small-int operations, whatever the pattern.


class _Glob:
    __slots__ = ("anchored", "dstar", "final", "lit", "qmark", "stars")

    def __init__(self, pattern: str) -> None:
        self.anchored = pattern.endswith("$")
        if self.anchored:
            pattern = pattern[:-1]
        tokens: list[str] = []
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                tok, i = "**", i + 2
            else:
                tok, i = pattern[i], i + 1
            if tok in ("*", "**") and tokens and tokens[-1] in ("*", "**"):
                if tok == "**":
                    tokens[-1] = "**"
                continue
            tokens.append(tok)
        lit: dict[str, int] = {}
        qmark = stars = dstar = 0
        for idx, tok in enumerate(tokens, start=1):
            bit = 1 << idx
            if tok == "?":
                qmark |= bit
            elif tok == "*":
                stars |= bit
            elif tok == "**":
                stars |= bit
                dstar |= bit
            else:
                lit[tok] = lit.get(tok, 0) | bit
        self.lit = lit
        self.qmark = qmark
        self.stars = stars
        self.dstar = dstar
        self.final = 1 << len(tokens)

    def match(self, path: str) -> int:
        """Return the longest matched prefix length ending on a '/' boundary, or -1."""
        lit, qmark, stars, dstar = self.lit, self.qmark, self.stars, self.dstar
        d = 1
        d |= (d << 1) & stars
        final = self.final
        n = len(path)
        best = -1
        if d & final and _boundary(path, 0):
            best = 0
        for e, ch in enumerate(path, start=1):
            if ch == "/":
                d = ((d << 1) & lit.get(ch, 0)) | (d & dstar)
            else:
                d = ((d << 1) & (lit.get(ch, 0) | qmark)) | (d & stars)
            d |= (d << 1) & stars
            if not d:
                break
            if d & final and (e == n or path[e] == "/" or ch == "/"):
                best = e
        if self.anchored and best != n:
            return -1
        return best


def _boundary(path: str, e: int) -> bool:
    return e == len(path) or path[e] == "/" or (e > 0 and path[e - 1] == "/")


@lru_cache(maxsize=256)
def _compile_globs(pattern: str) -> tuple[_Glob, ...]:
    return tuple(_Glob(alt) for alt in pattern.split("|") if alt and alt != "$")


def glob_match(pattern: str, path: str) -> int:
    """Return how many characters of ``path`` the endpoint ``pattern`` matches, or -1.

    ``*`` matches a run without ``/``, ``**`` any run, ``?`` one character
    other than ``/``, ``|`` separates alternatives (the longest match counts)
    and a trailing ``$`` (mongoose) demands the whole path.  Otherwise a
    pattern matches a prefix of the path ending on a ``/`` boundary: ``/api``
    matches ``/api``, ``/api/`` and ``/api/x`` (length 4) but not ``/apix``.
    Empty alternatives never match.
    """
    best = -1
    for g in _compile_globs(pattern):
        m = g.match(path)
        if m > best:
            best = m
    return best


def select_endpoint(patterns: Sequence[str], path: str) -> int | None:
    """Return the index of the pattern that best matches ``path``, or None.

    The longest match wins; on a tie the longer pattern, then the earlier one.
    """
    best: tuple[int, int] | None = None
    winner: int | None = None
    for idx, p in enumerate(patterns):
        m = glob_match(p, path)
        if m < 0:
            continue
        key = (m, len(p))
        if best is None or key > best:
            best, winner = key, idx
    return winner


# --- dates (RFC 9110 5.6.7) ----------------------------------------------------------

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_DAYS = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAYS = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MON = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_IMF_RE = re.compile(rf"{_DAYS}, ([0-9]{{2}}) {_MON} ([0-9]{{4}}) {_TIME} GMT")
_RFC850_RE = re.compile(rf"{_LONG_DAYS}, ([0-9]{{2}})-{_MON}-([0-9]{{2}}) {_TIME} GMT")
_ASCTIME_RE = re.compile(rf"{_DAYS} {_MON} ([0-9 ][0-9]) {_TIME} ([0-9]{{4}})")


def _timestamp(year: int, mon: int, day: int, hh: int, mm: int, ss: int) -> float | None:
    if not (1 <= day <= calendar.monthrange(year, mon)[1]):
        return None
    if hh > 23 or mm > 59 or ss > 60:  # 60: a leap second (RFC 9110 5.6.7 second)
        return None
    return float(calendar.timegm((year, mon, day, hh, mm, ss, 0, 0, 0)))


def parse_http_date(value: str, now: float | None = None) -> float | None:
    """Parse an HTTP date into a POSIX timestamp; None if malformed.

    Accepts IMF-fixdate and the obsolete RFC 850 and asctime forms
    (RFC 9110 5.6.7).  ``now`` (default: the current UTC time) resolves
    RFC 850 two-digit years.
    """
    value = value.strip(_WS)
    m = _IMF_RE.fullmatch(value)
    if m:
        day, mon, year, hh, mi, ss = m.groups()
        if int(year) < 1:
            return None
        return _timestamp(int(year), _MONTHS[mon], int(day), int(hh), int(mi), int(ss))
    m = _ASCTIME_RE.fullmatch(value)
    if m:
        mon, day, hh, mi, ss, year = m.groups()
        if int(year) < 1:
            return None
        return _timestamp(int(year), _MONTHS[mon], int(day.lstrip()), int(hh), int(mi), int(ss))
    m = _RFC850_RE.fullmatch(value)
    if m:
        day, mon, yy, hh, mi, ss = m.groups()
        if now is None:
            now_year = datetime.datetime.now(datetime.timezone.utc).year
        else:
            now_year = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).year
        # RFC 9110 5.6.7: a two-digit year more than 50 years in the future MUST be
        # read as the most recent past year with the same last two digits.
        year = now_year - now_year % 100 + int(yy)
        if year > now_year + 50:
            year -= 100
        return _timestamp(year, _MONTHS[mon], int(day), int(hh), int(mi), int(ss))
    return None


def format_http_date(ts: float) -> str:
    """Format a POSIX timestamp as an IMF-fixdate: ``"Sun, 06 Nov 1994 08:49:37 GMT"``."""
    return email.utils.formatdate(math.floor(ts), usegmt=True)


def request_target(head: bytes) -> str | None:
    """The request-target of a request head exactly as received (RFC 9112 3.2), or None.

    Digest authentication compares its ``uri`` parameter with this (RFC 7616 3.4.6).
    """
    end = head.find(b"\r\n")
    parts = head[: end if end >= 0 else len(head)].split(b" ")
    return parts[1].decode("latin-1") if len(parts) == 3 else None

"""Sans-IO representation selection for static files: Range, validators, conditions, codings.

What a file server decides before it sends a byte, as pure functions over
header values, sizes and times (no files, no clock):

* ``parse_range`` -- RFC 9110 14.1.2 byte ranges: ``a-b``, ``a-`` and suffix
  ``-n``, several comma-separated.  The result is one of three things: ignore
  the header (``None``: another unit, bad syntax, too many ranges -- the full
  representation is sent with 200, which RFC 9110 14.2 allows), unsatisfiable
  (``[]``: answer 416 with ``Content-Range: bytes */size``), or a list of
  ``(first, last)`` inclusive ranges, overlapping ones coalesced (RFC 9110 14.2
  MAY; defeats the "many overlapping ranges" amplification, CVE-2011-3192).
* Entity tags (RFC 9110 8.8.3): ``parse_etags`` reads a list that may contain
  commas inside tags; ``etag_match`` compares weakly or strongly (13.1.2).
* ``evaluate_preconditions`` applies If-Match, If-Unmodified-Since,
  If-None-Match and If-Modified-Since in the order of RFC 9110 13.2.2 and
  says 200, 304 or 412; ``if_range_allows`` decides whether a Range still
  applies (13.1.5: a strong ETag match or an exact Last-Modified date).
* ``choose_coding`` negotiates Accept-Encoding (12.5.3) with q-values:
  ``br;q=0`` means "never br", ``*`` covers unlisted codings, ``identity`` is
  acceptable unless refused, ``x-gzip`` is ``gzip`` (8.4.1.3).  It returns
  ``None`` when nothing available is acceptable (the caller answers 406).
* ``content_range`` and ``multipart_head`` render ``multipart/byteranges``
  framing (RFC 9110 14.6) so its length is known before the body is sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .httputil import parse_http_date, parse_qvalues

__all__ = [
    "MAX_RANGES",
    "choose_coding",
    "content_range",
    "etag_match",
    "evaluate_preconditions",
    "if_range_allows",
    "multipart_head",
    "multipart_tail",
    "parse_etags",
    "parse_range",
]

#: more ranges than this in one request: the header is ignored and 200 sent (Apache: 200)
MAX_RANGES = 64

_DIGITS = frozenset("0123456789")
_WS = " \t"


def _int(text: str) -> int | None:
    text = text.strip(_WS)
    if not text or not set(text) <= _DIGITS or len(text) > 19:
        return None
    return int(text)


def parse_range(
    value: str, size: int, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]] | None:
    """Resolve a ``Range`` header against a representation of ``size`` bytes.

    Returns ``None`` to ignore the header (send 200 with everything), ``[]``
    when no range is satisfiable (send 416), else inclusive ``(first, last)``
    pairs in request order, with overlapping or adjacent ranges coalesced.
    """
    unit, sep, spec = value.partition("=")
    # RFC 9110 14.1: range units are case-insensitive; only "bytes" is known here
    if not sep or unit.strip(_WS).lower() != "bytes":
        return None
    items = spec.split(",")
    if len(items) > max_ranges:
        return None
    out: list[tuple[int, int]] = []
    seen = 0
    for raw in items:
        item = raw.strip(_WS)
        if not item:
            continue  # RFC 9110 5.6.1: empty list elements are ignored
        first_s, dash, last_s = item.partition("-")
        if not dash:
            return None
        seen += 1
        if not first_s.strip(_WS):
            suffix = _int(last_s)
            if suffix is None:
                return None
            # RFC 9110 14.1.2: a suffix range selects the last n bytes (all if shorter)
            if suffix == 0:
                continue
            if size == 0:
                return None  # the whole (empty) representation: nothing to cut
            out.append((max(0, size - suffix), size - 1))
            continue
        first = _int(first_s)
        if first is None:
            return None
        if last_s.strip(_WS):
            last = _int(last_s)
            # RFC 9110 14.1.1: last-pos less than first-pos makes the range invalid
            if last is None or last < first:
                return None
        else:
            last = size - 1
        if first >= size:
            continue  # unsatisfiable on its own (14.1.2)
        out.append((first, min(last, size - 1)))
    if not seen:
        return None
    if len(out) > 1:
        out = _coalesce(out)
    return out


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping/adjacent ranges (sorted) if any overlap; else keep request order."""
    ordered = sorted(ranges)
    merged: list[tuple[int, int]] = [ordered[0]]
    for first, last in ordered[1:]:
        pf, pl = merged[-1]
        if first <= pl + 1:
            merged[-1] = (pf, max(pl, last))
        else:
            merged.append((first, last))
    if len(merged) == len(ranges):
        return ranges
    return merged


def content_range(first: int, last: int, size: int) -> str:
    """``Content-Range`` value for an inclusive byte range (RFC 9110 14.4)."""
    return f"bytes {first}-{last}/{size}"


def multipart_head(boundary: str, ctype: str, first: int, last: int, size: int) -> bytes:
    """The delimiter and headers that open one part of ``multipart/byteranges`` (14.6)."""
    return (
        f"\r\n--{boundary}\r\nContent-Type: {ctype}\r\n"
        f"Content-Range: {content_range(first, last, size)}\r\n\r\n"
    ).encode("latin-1")


def multipart_tail(boundary: str) -> bytes:
    """The close delimiter that ends a ``multipart/byteranges`` body."""
    return f"\r\n--{boundary}--\r\n".encode("latin-1")


# --- entity tags (RFC 9110 8.8.3) -------------------------------------------------------


def parse_etags(value: str) -> list[tuple[bool, str]] | None:
    """Parse an If-Match / If-None-Match list into ``(weak, opaque_tag)`` pairs.

    Returns ``None`` for ``*``.  Tags keep their quotes (``'"abc"'``); commas
    inside a tag are part of it; malformed members are skipped.
    """
    v = value.strip(_WS)
    if v == "*":
        return None
    out: list[tuple[bool, str]] = []
    i, n = 0, len(v)
    while i < n:
        c = v[i]
        if c in " \t,":
            i += 1
            continue
        weak = False
        if v.startswith("W/", i):
            weak = True
            i += 2
        if i < n and v[i] == '"':
            end = v.find('"', i + 1)
            if end < 0:
                break
            out.append((weak, v[i : end + 1]))
            i = end + 1
            continue
        nxt = v.find(",", i)  # not an entity-tag: skip this member
        if nxt < 0:
            break
        i = nxt + 1
    return out


def etag_match(header: str, etag: str, strong: bool = False) -> bool:
    """Whether ``etag`` (a strong tag like ``'"x"'``) is in the list ``header``.

    RFC 9110 13.1.2: If-None-Match uses the weak comparison (``W/`` ignored);
    If-Match and If-Range use the strong one (weak tags never match).
    """
    tags = parse_etags(header)
    if tags is None:
        return True
    for weak, tag in tags:
        if tag == etag and not (strong and weak):
            return True
    return False


def evaluate_preconditions(
    method: str,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
    etag: str,
    mtime: float,
) -> int:
    """Apply the conditional headers in RFC 9110 13.2.2 order: return 200, 304 or 412.

    ``etag`` is the selected representation's strong tag and ``mtime`` its
    modification time (POSIX seconds; compared at one-second resolution).
    """
    lm = math.floor(mtime)
    # 13.2.2 step 1 / 13.1.1: If-Match needs a strong match
    if if_match is not None:
        if not etag_match(if_match, etag, strong=True):
            return 412
    elif if_unmodified_since is not None:
        # step 2 / 13.1.4: ignored unless a valid date (and only without If-Match)
        t = parse_http_date(if_unmodified_since)
        if t is not None and lm > t:
            return 412
    safe = method in ("GET", "HEAD")
    # step 3 / 13.1.2: If-None-Match compares weakly; GET/HEAD get 304, others 412
    if if_none_match is not None:
        if etag_match(if_none_match, etag):
            return 304 if safe else 412
    elif if_modified_since is not None and safe:
        # step 4 / 13.1.3: only for GET/HEAD, only without If-None-Match
        t = parse_http_date(if_modified_since)
        if t is not None and lm <= t:
            return 304
    return 200


def if_range_allows(value: str, etag: str, mtime: float) -> bool:
    """Whether a Range may be honoured given ``If-Range: value`` (RFC 9110 13.1.5).

    An entity-tag must match strongly (a weak tag never does); a date must
    equal Last-Modified exactly.  Anything else means "send it all".
    """
    v = value.strip(_WS)
    if v.startswith('"') or v.startswith("W/"):
        return not v.startswith("W/") and v == etag
    t = parse_http_date(v)
    return t is not None and t == math.floor(mtime)


# --- content coding (RFC 9110 12.5.3) -----------------------------------------------------

_ALIASES = {"x-gzip": "gzip"}


def choose_coding(accept_encoding: str | None, available: Sequence[str]) -> str | None:
    """Pick a content coding for a response among ``available`` (best first) or ``"identity"``.

    No header: ``"identity"`` (12.5.3: the client has no preference; the
    uncompressed form is the safe choice).  Otherwise the acceptable coding
    with the highest q-value wins, ties going to the earlier entry of
    ``available`` and then to identity.  Returns ``None`` when nothing is
    acceptable, not even identity (the caller may answer 406).
    """
    if accept_encoding is None:
        return "identity"
    q: dict[str, float] = {}
    for coding, weight in parse_qvalues(accept_encoding):
        coding = _ALIASES.get(coding, coding)
        if coding not in q:
            q[coding] = weight
    star = q.get("*")
    best = None
    best_q = 0.0
    for coding in available:
        w = q.get(coding, star if star is not None else 0.0)
        if w > best_q:
            best, best_q = coding, w
    # identity is acceptable unless refused by "identity;q=0" or an unanswered "*;q=0"
    if "identity" in q:
        iq = q["identity"]
    elif star is not None:
        iq = star if star > 0 else 0.0
    else:
        iq = 0.001  # acceptable, least preferred
    if best is not None and best_q >= iq:
        return best
    if iq > 0:
        return "identity"
    return best

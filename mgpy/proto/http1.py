"""Sans-IO HTTP/1.1: an incremental message reader and a head serializer.

Theory of operation
-------------------
``HttpReader`` reads one direction of one connection: requests on the server
side, responses on the client side.  It never owns the receive buffer:
``next_event(buf, eof)`` parses from the front of the caller's buffer (the
bytearray behind an Mbuf) and returns ``(event, consumed)``; the caller
deletes ``consumed`` bytes from the front before calling again and never
alters the front otherwise.  Events: an ``HttpMessage`` (a complete head),
``bytes`` (a piece of body), ``END`` (the body is complete) or ``NEED_DATA``
(always with ``consumed == 0``).  States::

    HEAD --head without body--> HEAD
    HEAD --head--> BODY_CL --last byte--> END_PENDING --END--> HEAD
    HEAD --head--> CHUNK_SIZE <-> CHUNK_DATA <-> CHUNK_CRLF; "0" -> TRAILERS --END--> HEAD
    HEAD --head--> UNTIL_EOF --eof: END--> HEAD          (client side)
    HEAD --101 / 2xx to CONNECT--> SWITCHED               (client side)
    any --RemoteProtocolError--> DEAD                     (every later call raises)

A complete head (the hot path) costs one ``find(b"\\r\\n\\r\\n")``, one copy,
one latin-1 decode, one regex match of the start line and one ``findall``
of a field-line regex that can only match a whole line between two CRLFs:
the head is valid (token names, no space before the colon, no obs-fold,
no CTL, no bare CR or LF) iff there is one match per line.  The few fields
that decide framing are then picked out through a memo of field names.
While a head is incomplete only the new bytes are scanned (bare CR/LF,
line lengths, line count: ``HeadScan``), so a head arriving byte by byte
costs O(n) and an oversized head is refused as soon as a limit is passed.
A complete head that may break a limit is scanned the same way, so a head
that breaks several rules gets one status however it was split into reads:
that of the violation whose trigger byte comes first.  Bodies are handed
out as they arrive, so a large body needs no more memory than a read.

Bytes processed but not yet reported (empty lines before a request, 1xx
responses, chunk-size lines and chunk CRLFs) are kept in ``_skip`` and
counted in ``consumed`` of the next event; positions remembered across a
``NEED_DATA`` stay valid because the caller keeps the front of ``buf``.

Refused (request smuggling is the threat model, RFC 9112 11.2): bare CR or
LF, obs-fold, whitespace before a colon, CTLs, non-token methods and names,
missing/duplicate/invalid Host, CL with TE, malformed or conflicting
Content-Length, a Transfer-Encoding whose final coding is not ``chunked``
(400) or that applies another coding first (``gzip, chunked``: 501), TE in
HTTP/1.0, CONNECT with CL or TE, malformed chunk lines, more than
``_MAX_CHUNK_EXT`` chunk-extension bytes in one message, versions other than
1.0/1.1 (505).  A response (client side) is read as RFC 9112 tells a user
agent: obs-fold is replaced by a space, and a Transfer-Encoding whose final
coding is not ``chunked`` means the body runs until the server closes.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ..events import HttpMessage
from ..limits import Limits
from ._sentinel import NEED_DATA, Sentinel
from .http1_grammar import (
    _BARE_CR_LF,
    _CHUNK_LINE,
    _FIELD,
    _FIELD_BLOCK,
    _GOOD_HOSTS,
    _NAME_KIND,
    _REQUEST_LINE,
    _STATUS_LINE,
    TE_UNFRAMED,
    HeadScan,
    _check_host,
    _content_length,
    _fields_ows,
    _head_error,
    _list_tokens,
    _name_kind,
    _other_target,
    _request_framing,
    transfer_framing,
    unfold,
)
from .http1_write import (  # the serializer, re-exported
    check_header,
    encode_chunk,
    reason_phrase,
    request_head,
    response_head,
    status_line,
)

__all__ = [
    "END",
    "NEED_DATA",
    "HttpReader",
    "check_header",
    "encode_chunk",
    "reason_phrase",
    "request_head",
    "response_head",
    "status_line",
]


#: the body of the current message is complete
END: Final[object] = Sentinel("END")


#: empty lines tolerated before a request line (RFC 9112 2.2 asks for "at least one")
_MAX_EMPTY_LINES = 8
#: pieces of body at least this large are copied out through a memoryview (one copy, not two)
_BIG_COPY = 2048
#: chunk-extension bytes allowed per message (Node.js after CVE-2024-22019: 16 KiB);
#: mgpy ignores extensions, so more only costs parsing
_MAX_CHUNK_EXT = 16 * 1024

_HEAD = 0
_BODY_CL = 1
_END_PENDING = 2
_CHUNK_SIZE = 3
_CHUNK_DATA = 4
_CHUNK_CRLF = 5
_TRAILERS = 6
_UNTIL_EOF = 7
_SWITCHED = 8
_DEAD = 9


_new_message = HttpMessage.__new__

#: Request heads seen recently, per set of limits: head bytes -> the parse result.
#: Clients that poll the same URL (dashboards, devices, health checks) or re-fetch an
#: asset send byte-identical heads; the bytes were validated once, so the same bytes
#: under the same limits give the same result.  Bounded: small heads only, and the
#: table is emptied when full.  Each request still gets its own HttpMessage and list.
_HEAD_MEMOS: dict[tuple[int, ...], dict[bytes, tuple[Any, ...]]] = {}
_MEMO_HEADS = 256
_MEMO_HEAD_MAX = 1024


def _incomplete() -> RemoteProtocolError:
    return RemoteProtocolError("incomplete message: connection closed mid-message", 400)


def _copy(buf: bytes | bytearray, a: int, b: int) -> bytes:
    """Return ``buf[a:b]`` as bytes, copied once."""
    if type(buf) is bytes:
        return buf[a:b]
    if b - a < _BIG_COPY:
        return bytes(buf[a:b])
    with memoryview(buf) as view:
        return view[a:b].tobytes()


class HttpReader:
    """Incremental reader for one direction of one HTTP/1.1 connection.

    Example::

        r = HttpReader("server", Limits())
        ev, n = r.next_event(buf)      # HttpMessage, bytes, END or NEED_DATA
        del buf[:n]
    """

    __slots__ = (
        "_client",
        "_dead",
        "_empty_lines",
        "_ext",
        "_hfind",
        "_hint",
        "_interim",
        "_max_chunk_line",
        "_max_header_count",
        "_max_header_line",
        "_max_headers_size",
        "_max_request_line",
        "_memo",
        "_method",
        "_partial",
        "_remaining",
        "_scan",
        "_skip",
        "_small_head",
        "_state",
        "in_body",
    )

    def __init__(self, side: Literal["server", "client"], limits: Limits) -> None:
        if side not in ("server", "client"):
            raise ValueError("side must be 'server' or 'client'")
        self._client = side == "client"
        self._max_request_line = limits.max_request_line
        self._max_header_line = limits.max_header_line
        self._max_headers_size = limits.max_headers_size
        self._max_header_count = limits.max_header_count
        self._max_chunk_line = limits.max_chunk_line
        # a head no larger than this needs no per-line length check
        self._small_head = min(limits.max_header_line, limits.max_headers_size)
        # request heads already validated under these very limits (see _HEAD_MEMO)
        key = (
            limits.max_request_line,
            limits.max_header_line,
            limits.max_headers_size,
            limits.max_header_count,
        )
        self._memo = None if side == "client" else _HEAD_MEMOS.setdefault(key, {})
        self._state = _HEAD
        #: True between a head and its END
        self.in_body = False
        self._dead: RemoteProtocolError | None = None
        self._skip = 0  # processed bytes at the front not reported yet
        self._remaining = 0  # body bytes left (CL body or current chunk)
        self._hint = 0  # chunk line / trailer scan position kept across NEED_DATA
        self._method = "GET"
        self._interim = False  # client: a 1xx was skipped for the pending response
        self._empty_lines = 0
        self._partial = False  # the incremental head scan (_scan) is in use
        self._hfind = 0  # where to resume find(CRLFCRLF)
        self._scan: HeadScan | None = None  # wire-order checks of a head, made when needed
        self._ext = 0  # chunk-extension bytes of the current message

    def expect_response(self, method: str) -> None:
        """Tell a client-side reader the method of the request the next response answers."""
        self._method = method

    def next_event(self, buf: bytes | bytearray, eof: bool = False) -> tuple[object, int]:
        """Parse from the front of ``buf``; return ``(event, bytes consumed)``.

        ``eof`` says the peer closed: mid-message that raises, except for a
        response read until close, which then ends with ``END``.

        Raises:
            RemoteProtocolError: the peer broke the protocol (``status`` holds
                the HTTP status to answer with); the reader is dead afterwards.
            LocalProtocolError: called again after a 101 / CONNECT response.
        """
        try:
            state = self._state
            if state == _HEAD:
                return self._read_head(buf, eof)
            if state == _BODY_CL:
                return self._read_cl(buf, eof)
            if state == _END_PENDING:
                self._state = _HEAD
                self.in_body = False
                return END, 0
            if state <= _CHUNK_CRLF:
                return self._read_chunked(buf, eof)
            if state == _TRAILERS:
                return self._read_trailers(buf, self._skip, eof)
            if state == _UNTIL_EOF:
                return self._read_until_eof(buf, eof)
            if state == _SWITCHED:
                raise LocalProtocolError("the connection switched protocols; reader is done")
            assert self._dead is not None
            raise self._dead
        except RemoteProtocolError as exc:
            self._dead = exc
            self._state = _DEAD
            self.in_body = False
            raise

    # --- heads ----------------------------------------------------------------
    def _read_head(self, buf: bytes | bytearray, eof: bool) -> tuple[object, int]:
        while True:
            base = self._skip
            start = self._hfind
            end = buf.find(b"\r\n\r\n", start if start > base else base)
            if end < 0:
                return self._head_incomplete(buf, base, eof)
            hend = end + 4
            raw = bytes(buf[base:hend])
            memo = self._memo
            if memo is not None and not base:
                hit = memo.get(raw)
                if hit is not None:
                    return self._from_memo(raw, hit), hend
            rl = raw.find(b"\r\n")
            if not rl:
                self._skip_empty_lines(buf, base)
                continue
            nl = raw.count(b"\r\n")
            if (
                hend - base > self._small_head
                or rl + 2 > self._max_request_line
                or nl - 2 > self._max_header_count
            ):
                # a limit may be broken: find the first violation in wire order, so the
                # status is the one the same bytes give when they arrive one by one
                self._scanner().feed(raw, 0, len(raw), complete=True)
            if self._partial:
                self._partial = False
                self._hfind = 0
            if not self._client:
                return self._request(raw, rl, nl), hend
            hm = self._response(raw, rl, nl)
            if hm is not None:
                return hm, hend
            # RFC 9110 15.2: a client MUST parse (and here skips) 1xx responses
            # that precede the final response, even unexpected ones.
            self._interim = True
            self._skip = hend
            if hend > 4 * self._max_headers_size:
                raise LimitExceeded("too many interim (1xx) responses", 431)

    def _skip_empty_lines(self, buf: bytes | bytearray, base: int) -> int:
        # RFC 9112 2.2: a server SHOULD ignore at least one empty line (CRLF)
        # received prior to the request-line.
        while buf.startswith(b"\r\n", base):
            base += 2
            self._empty_lines += 1
            if self._empty_lines > _MAX_EMPTY_LINES:
                raise RemoteProtocolError("too many empty lines before the request line")
        self._skip = base
        self._partial = False
        self._hfind = 0
        return base

    def _head_incomplete(self, buf: bytes | bytearray, base: int, eof: bool) -> tuple[object, int]:
        """No CRLFCRLF yet: check the new bytes in wire order (``HeadScan``), then wait."""
        if buf.startswith(b"\r\n", base):
            base = self._skip_empty_lines(buf, base)
        n = len(buf)
        if eof:
            if n == base and not self._interim:
                return NEED_DATA, 0
            raise _incomplete()
        scan = self._scan
        if not self._partial or scan is None:
            self._partial = True
            scan = self._scanner(base)
        scan.feed(buf, base, n)
        self._hfind = n - 3 if n - 3 > base else base
        return NEED_DATA, 0

    def _scanner(self, base: int = 0) -> HeadScan:
        """The head scanner, reset to a head starting at ``base``."""
        scan = self._scan
        if scan is None:
            scan = self._scan = HeadScan(
                self._max_request_line,
                self._max_header_line,
                self._max_headers_size,
                self._max_header_count,
                self._client,
            )
        scan.reset(base)
        return scan

    def _request(self, raw: bytes, rl: int, nl: int) -> HttpMessage:
        text = raw.decode("latin-1")
        m = _REQUEST_LINE.match(text)
        if m is None:
            raise _head_error(text, False)
        method, target, version = m.groups()
        # RFC 9112 2.3: we speak HTTP/1.1 and 1.0; other well-formed versions get 505
        if version == "1.1":
            http11 = True
        elif version == "1.0":
            http11 = False
        else:
            raise RemoteProtocolError("unsupported HTTP version", 505)
        headers = _FIELD.findall(text, rl)
        if len(headers) != nl - 2:
            headers = _fields_ows(text, rl, nl, False)
        keep_alive = http11
        clen = 0
        chunked = False
        upgrade = ""
        expect = False
        hosts = 0
        host = ""
        other: list[tuple[str, str]] | None = None
        kinds = _NAME_KIND
        for name, value in headers:
            kind = kinds.get(name)
            if kind is None:
                kind = _name_kind(name)
            if kind:
                if kind == "host":
                    hosts += 1
                    host = value
                elif other is None:
                    other = [(kind, value)]
                else:
                    other.append((kind, value))
        # RFC 9112 3.2: a server MUST respond 400 to an HTTP/1.1 request that
        # lacks Host, and to any request with more than one Host or an invalid one.
        if hosts != 1 and (http11 or hosts):
            raise RemoteProtocolError("missing Host" if hosts == 0 else "more than one Host")
        if hosts and host not in _GOOD_HOSTS:
            _check_host(host)
        if other is not None:
            keep_alive, clen, chunked, upgrade, expect = _request_framing(other, http11, method)
        if target[0] == "/" and method != "CONNECT":
            path, _, query = target.partition("?")
        else:
            path, query = _other_target(method, target)
        parsed = (
            method,
            path,
            query,
            "HTTP/1.1" if http11 else "HTTP/1.0",
            tuple(headers),
            keep_alive,
            clen,
            chunked,
            upgrade,
            expect,
        )
        if self._skip:
            self._skip = self._empty_lines = 0
        elif len(raw) <= _MEMO_HEAD_MAX and self._memo is not None:
            memo = self._memo
            if len(memo) >= _MEMO_HEADS:
                memo.clear()
            memo[raw] = parsed
        return self._from_memo(raw, parsed)

    def _from_memo(self, raw: bytes, parsed: tuple[Any, ...]) -> HttpMessage:
        """Build the request event from a parse result (fresh, or memoised for these bytes)."""
        method, path, query, proto, headers, keep_alive, clen, chunked, upgrade, expect = parsed
        # HttpMessage.__new__ + every slot: a third cheaper than __init__ on the hot path
        hm = _new_message(HttpMessage)
        hm.method = method
        hm.uri = path
        hm.query_string = query
        hm.proto = proto
        hm.headers = list(headers)
        hm.body = b""
        hm.resp_code = 0
        hm.resp_status_msg = ""
        hm.head = raw
        hm.keep_alive = keep_alive
        hm.content_length = clen
        hm.chunked = chunked
        hm.upgrade = upgrade
        hm.expect_continue = expect
        if chunked:
            self._state = _CHUNK_SIZE
            self._ext = 0
            self.in_body = True
        elif clen:
            self._state = _BODY_CL
            self._remaining = clen
            self.in_body = True
        if self._partial:
            self._partial = False
            self._hfind = 0
        return hm

    def _response(self, raw: bytes, rl: int, nl: int) -> HttpMessage | None:
        text = raw.decode("latin-1")
        m = _STATUS_LINE.match(text)
        if m is None:
            raise _head_error(text, True)
        version, code_s, reason = m.groups()
        if version not in ("1.1", "1.0"):
            raise RemoteProtocolError("unsupported HTTP version", 505)
        headers = _FIELD.findall(text, rl)
        if len(headers) != nl - 2:
            text, folds = unfold(text, rl)  # RFC 9112 5.2: a user agent MUST unfold
            headers = _fields_ows(text, rl, nl - folds, True)
        code = int(code_s)
        # RFC 9110 15: valid status codes are 100..599
        if not 100 <= code <= 599:
            raise RemoteProtocolError("invalid status code")
        if code < 200 and code != 101:
            return None
        http11 = version == "1.1"
        hm = HttpMessage("", "", "", "HTTP/1.1" if http11 else "HTTP/1.0", headers)
        hm.resp_code = code
        hm.resp_status_msg = reason or ""
        hm.head = raw
        method = self._method
        self._method = "GET"
        self._interim = False
        self._skip = 0
        self._empty_lines = 0
        fields: dict[str, list[str]] = {}
        for name, value in headers:
            kind = _NAME_KIND.get(name)
            if kind is None:
                kind = _name_kind(name)
            if kind:
                fields.setdefault(kind, []).append(value)
        tokens = _list_tokens(fields.get("connection", ()))
        keep_alive = "close" not in tokens and (http11 or "keep-alive" in tokens)
        if "upgrade" in tokens and "upgrade" in fields:
            hm.upgrade = ", ".join(fields["upgrade"]).lower()
        hm.keep_alive = keep_alive
        hm.content_length = 0
        if code == 101 or (method == "CONNECT" and code < 300):
            self._state = _SWITCHED  # the bytes that follow are another protocol
            return hm
        # RFC 9112 6.3 (1): HEAD responses, 1xx, 204 and 304 never have content
        if method == "HEAD" or code == 204 or code == 304:
            return hm
        self._frame_response(hm, fields, http11)
        return hm

    def _frame_response(self, hm: HttpMessage, fields: dict[str, list[str]], http11: bool) -> None:
        """Set up reading the body of a response that may have one (RFC 9112 6.3)."""
        tes = fields.get("transfer-encoding")
        cls = fields.get("content-length")
        if tes is not None:
            # RFC 9112 6.1: TE in HTTP/1.0 MUST be treated as faulty framing;
            # 6.3 (3): CL with TE "ought to be handled as an error".
            if not http11:
                raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 response")
            if cls is not None:
                raise RemoteProtocolError("both Content-Length and Transfer-Encoding")
            hm.content_length = -1
            if transfer_framing(tes) == TE_UNFRAMED:
                # RFC 9112 6.3 (4): chunked is not the final coding of a response: the
                # body is everything until the server closes
                hm.keep_alive = False
                self._state = _UNTIL_EOF
            else:
                # chunked framing; codings applied before it (gzip, chunked) stay on the
                # body, as Transfer-Encoding says
                hm.chunked = True
                self._state = _CHUNK_SIZE
                self._ext = 0
        elif cls is not None:
            clen = _content_length(cls)
            hm.content_length = clen
            if not clen:
                return
            self._state = _BODY_CL
            self._remaining = clen
        else:
            # RFC 9112 6.3 (8): the body is everything until the server closes
            hm.content_length = -1
            hm.keep_alive = False
            self._state = _UNTIL_EOF
        self.in_body = True

    # --- bodies ---------------------------------------------------------------
    def _read_cl(self, buf: bytes | bytearray, eof: bool) -> tuple[object, int]:
        n = len(buf)
        if not n:
            if eof:
                raise _incomplete()
            return NEED_DATA, 0
        rem = self._remaining
        if n >= rem:
            self._state = _END_PENDING
            self._remaining = 0
            return _copy(buf, 0, rem), rem
        self._remaining = rem - n
        return _copy(buf, 0, n), n

    def _read_until_eof(self, buf: bytes | bytearray, eof: bool) -> tuple[object, int]:
        n = len(buf)
        if n:
            return _copy(buf, 0, n), n
        if eof:
            self._state = _HEAD
            self.in_body = False
            return END, 0
        return NEED_DATA, 0

    def _read_chunked(self, buf: bytes | bytearray, eof: bool) -> tuple[object, int]:
        """Decode as many chunks as ``buf`` holds; return their data joined."""
        pos = self._skip
        n = len(buf)
        state = self._state
        first = last = -1  # the data range when there is a single piece
        pieces: list[bytes | bytearray] | None = None
        max_line = self._max_chunk_line
        while True:
            if state == _CHUNK_DATA:
                if pos == n:
                    break
                rem = self._remaining
                end = pos + rem if pos + rem < n else n
                if first < 0:
                    first, last = pos, end
                else:
                    if pieces is None:
                        pieces = [buf[first:last]]
                    pieces.append(buf[pos:end])
                self._remaining = rem - (end - pos)
                pos = end
                if self._remaining:
                    break
                state = _CHUNK_CRLF
            if state == _CHUNK_CRLF:
                # RFC 9112 7.1: chunk-data is followed by exactly CRLF
                if n - pos < 2:
                    if pos < n and buf[pos] != 13:
                        raise RemoteProtocolError("chunk data not followed by CRLF")
                    break
                if buf[pos] != 13 or buf[pos + 1] != 10:
                    raise RemoteProtocolError("chunk data not followed by CRLF")
                pos += 2
                state = _CHUNK_SIZE
            # A complete line is matched at once; otherwise find() tells an
            # incomplete line (resumed at _hint next time) from a bad one.
            hint = self._hint
            if hint <= pos:
                hint = pos
                m = _CHUNK_LINE.match(buf, pos)
            else:
                m = None
            if m is None:
                i = buf.find(b"\r\n", hint)
                if i < 0:
                    if n - pos >= max_line:
                        raise LimitExceeded("chunk line too long", 400)
                    if _BARE_CR_LF.search(buf, hint) is not None:
                        raise RemoteProtocolError("bare CR or LF in chunk line")
                    self._hint = n - 1 if n > pos else pos
                    break
                if i + 2 - pos > max_line:
                    raise LimitExceeded("chunk line too long", 400)
                if hint > pos:
                    m = _CHUNK_LINE.match(buf, pos)
                if m is None:
                    raise RemoteProtocolError("malformed chunk line")
            if m.end() - pos > max_line:
                raise LimitExceeded("chunk line too long", 400)
            if m.end() - m.end(1) > 2:
                self._count_ext(m.end() - m.end(1) - 2)
            size = int(m.group(1), 16)
            pos = m.end()
            self._hint = 0
            if not size:
                state = _TRAILERS
                break
            self._remaining = size
            state = _CHUNK_DATA
        self._state = state
        if first >= 0:
            self._skip = 0
            self._hint = 0
            return (_copy(buf, first, last) if pieces is None else b"".join(pieces)), pos
        if state == _TRAILERS:
            return self._read_trailers(buf, pos, eof)
        if eof:
            raise _incomplete()
        self._skip = pos
        return NEED_DATA, 0

    def _count_ext(self, n: int) -> None:
        """Count ``n`` chunk-extension bytes; bounded per message, not only per line
        (as Go and Node.js did for CVE-2023-39326 and CVE-2024-22019)."""
        self._ext += n
        if self._ext > _MAX_CHUNK_EXT:
            raise LimitExceeded("chunk extensions too large", 400)

    def _read_trailers(self, buf: bytes | bytearray, pos: int, eof: bool) -> tuple[object, int]:
        """Consume the trailer section after the last chunk (RFC 9112 7.1.2)."""
        if buf.startswith(b"\r\n", pos):
            end = pos + 2
        else:
            start = self._hint if self._hint > pos else pos
            i = buf.find(b"\r\n\r\n", start)
            if i < 0:
                if len(buf) - pos >= self._max_headers_size:
                    raise LimitExceeded("trailer section too large", 431)
                if eof:
                    raise _incomplete()
                self._skip = pos
                self._hint = len(buf) - 3 if len(buf) - 3 > pos else pos
                return NEED_DATA, 0
            end = i + 4
            text = buf[pos:end].decode("latin-1")
            if len(text) > self._max_headers_size:
                raise LimitExceeded("trailer section too large", 431)
            if text.count("\r\n") - 1 > self._max_header_count:
                raise LimitExceeded("too many trailer fields", 431)
            # trailer fields are validated like header fields, then ignored
            if _FIELD_BLOCK.fullmatch(text) is None:
                raise RemoteProtocolError("malformed trailer field")
            if any(len(t) + 2 > self._max_header_line for t in text.split("\r\n")):
                raise LimitExceeded("trailer line too long", 431)
        self._state = _HEAD
        self.in_body = False
        self._skip = 0
        self._hint = 0
        return END, end

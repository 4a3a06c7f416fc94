"""permessage-deflate (RFC 7692): options, negotiation and the Sec-WebSocket-Extensions grammar.

This module is text only: it turns header values into agreed parameters and back.
The zlib side (one codec per connection, and the compressor for frames shared by a
broadcast) is ``deflate_codec.py``; ``ws.py`` applies it to frames.

Negotiation, server side (``negotiate``): the request's extension header values are
parsed per RFC 6455 9.1 (tokens, quoted-string values, several extensions and several
offers in one or more header values); the first permessage-deflate offer we can accept
wins.  An offer with an unknown, duplicated or ill-valued parameter is declined (RFC
7692 5.1, 7.1) and the next one tried; an element that does not parse is skipped, so a
broken header only costs compression, never the connection.

Negotiation, client side (``offer`` / ``accept``): the offer comes from the options; the
response is checked strictly, and anything RFC 7692 5.1 / 7.1 says the client MUST fail
the connection for raises RemoteProtocolError: an extension we did not offer, two
permessage-deflate elements, an unknown or repeated parameter, a bad value, a missing
``server_no_context_takeover`` we asked for.  A ``client_max_window_bits`` above the one
we offered is not among them: RFC 7692 7.1.2.2 lets the server ignore our value, and we
keep compressing with the smaller window we promised (Autobahn 13.4.x / 13.6.x answer 15
to any offer of the parameter).

Why the defaults (``DeflateOptions``) are what they are: memory first.  The server adds
``server_no_context_takeover`` and ``client_no_context_takeover`` to every response,
which RFC 7692 7.1.1.1 and 7.1.1.2 let it do unasked.  Each message is then compressed
and inflated on its own, so an idle connection holds no zlib object at all (before and
after a message: the target is <= 4 KiB per idle connection), and a message sent to
many connections is compressed once (``ws.broadcast_frame``).  The cost is ratio on
streams of tiny similar messages, which the threshold sends uncompressed anyway.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, TypeAlias

from ..errors import RemoteProtocolError

__all__ = [
    "EXTENSION",
    "DeflateOptions",
    "DeflateParams",
    "accept",
    "negotiate",
    "offer",
    "parse_extensions",
]

#: RFC 7692 5: the extension token
EXTENSION: Final = "permessage-deflate"

_SNCT: Final = "server_no_context_takeover"
_CNCT: Final = "client_no_context_takeover"
_SMWB: Final = "server_max_window_bits"
_CMWB: Final = "client_max_window_bits"

#: RFC 7692 7.1.2: window bits are 8..15 ("a decimal integer value without leading zeroes")
MIN_WINDOW_BITS: Final = 8
MAX_WINDOW_BITS: Final = 15
_WINDOW_VALUE: Final = re.compile(r"8|9|1[0-5]")

# RFC 9110 5.6.2: token = 1*tchar; RFC 9110 5.6.4 quoted-string with quoted-pairs
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED: Final = re.compile(r'"((?:[^"\\]|\\.)*)"')
_QUOTED_PAIR: Final = re.compile(r"\\(.)")

#: one parameter: (name, value or None when it has no value)
ExtParam: TypeAlias = tuple[str, str | None]
#: one list element of Sec-WebSocket-Extensions: (extension token, parameters in order)
Extension: TypeAlias = tuple[str, tuple[ExtParam, ...]]


# -- options and agreed parameters ------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DeflateOptions:
    """What an endpoint is willing to negotiate for permessage-deflate (RFC 7692 7.1).

    Each field has a meaning per side:

    - ``server_no_context_takeover`` (True): server: put in every response, so the server
      compresses each message on its own (no compressor kept between messages, and one
      compressed frame serves every such connection).  Client: asked for in the offer, so
      our decompressor is dropped between messages.
    - ``client_no_context_takeover`` (True): server: put in every response, so the client
      compresses each message on its own and the server keeps no decompressor between
      messages.  Client: announced in the offer; we drop our compressor after each message.
    - ``server_max_window_bits`` (12, like websockets): server: the largest LZ77 window we
      compress with, announced in every response (RFC 7692 7.1.2.1 allows it unasked;
      a client asking for less gets less).  Client: asked for in the offer, followed by a
      fallback offer without it (RFC 7692 7.1.3) for servers that cannot honour it.
      None: no limit of ours (15).  A 4 KiB window costs a fresh compressor ~6 us where
      32 KiB costs ~30 us, and loses little on messages of a few KiB.
    - ``client_max_window_bits`` (12): server: the limit put in the response when the
      client offers the parameter (RFC 7692 7.1.2.2: never when it does not); bounds the
      decompressor we keep under client context takeover.  Client: offered with this
      value (None: offered without one, so the server may pick any).
    - ``level`` (6, zlib's default as in websockets and ws), ``mem_level`` (5, as
      websockets: an 8 KiB hash table instead of 64 KiB, which makes a fresh compressor
      cheap and changes ratios on small messages very little).
    - ``threshold`` (128): whole messages shorter than this are sent uncompressed; below
      it DEFLATE saves a few bytes at best and costs a compressor.  Node's ws uses 1 KiB;
      JSON pushes of a few hundred bytes still shrink by half, hence lower.  Fragmented
      messages (``WS_DONT_FIN``) are always compressed: their size is not known.

    Window bits 8 are legal in RFC 7692 but zlib cannot compress raw DEFLATE with a
    256-byte window; a compressor agreed on 8 runs with 9, which is safe: zlib never
    emits a distance beyond its window minus 262 bytes (MIN_LOOKAHEAD), 250 for a
    512-byte window.  Inflating with 8 works as agreed.  (websockets passes 8 to zlib,
    which newer zlib refuses; wsproto declines 8.)
    """

    server_no_context_takeover: bool = True
    client_no_context_takeover: bool = True
    server_max_window_bits: int | None = 12
    client_max_window_bits: int | None = 12
    level: int = 6
    mem_level: int = 5
    threshold: int = 128

    def __post_init__(self) -> None:
        for name in (_SNCT, _CNCT):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"DeflateOptions.{name} must be a bool")
        for name in (_SMWB, _CMWB):
            bits = getattr(self, name)
            if bits is not None:
                _check_int(name, bits, MIN_WINDOW_BITS, MAX_WINDOW_BITS)
        _check_int("level", self.level, -1, 9)
        _check_int("mem_level", self.mem_level, 1, 9)
        _check_int("threshold", self.threshold, 0, None)


def _check_int(name: str, value: object, lo: int, hi: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int")
    if hi is None and value < lo:
        raise ValueError(f"{name} must be >= {lo}")
    if hi is not None and not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}")


@dataclasses.dataclass(frozen=True, slots=True)
class DeflateParams:
    """The parameters one connection agreed on, with the local zlib settings.

    Window bits are 8..15 (15 where the parameter was absent).  Equal parameters give
    byte-identical compressed messages, so this object is the key a broadcast groups
    connections by: it is immutable, and its hash is computed once.
    """

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int
    client_max_window_bits: int
    level: int
    mem_level: int
    threshold: int
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int(_SMWB, self.server_max_window_bits, MIN_WINDOW_BITS, MAX_WINDOW_BITS)
        _check_int(_CMWB, self.client_max_window_bits, MIN_WINDOW_BITS, MAX_WINDOW_BITS)
        key = (
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits,
            self.client_max_window_bits,
            self.level,
            self.mem_level,
            self.threshold,
        )
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash


#: one DeflateParams object per distinct value (bounded), so that connections which agreed
#: the same parameters share it: a broadcast then groups them by identity, without the
#: dataclass __eq__ for each connection
_interned: dict[DeflateParams, DeflateParams] = {}
_INTERN_MAX: Final = 256


def _params(
    snct: bool, cnct: bool, smwb: int | None, cmwb: int | None, opts: DeflateOptions
) -> DeflateParams:
    p = DeflateParams(
        snct,
        cnct,
        smwb if smwb is not None else MAX_WINDOW_BITS,
        cmwb if cmwb is not None else MAX_WINDOW_BITS,
        opts.level,
        opts.mem_level,
        opts.threshold,
    )
    q = _interned.get(p)
    if q is not None:
        return q
    if len(_interned) < _INTERN_MAX:
        _interned[p] = p
    return p


# -- Sec-WebSocket-Extensions (RFC 6455 9.1) ---------------------------------------


def _split(value: str, sep: str) -> list[str]:
    """Split ``value`` at ``sep`` outside quoted strings."""
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for i, ch in enumerate(value):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == sep:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


def _param(text: str) -> ExtParam | None:
    """Parse ``token [ "=" (token | quoted-string) ]``; None if it does not parse."""
    name, eq, value = text.partition("=")
    name = name.strip(" \t")
    if not _TOKEN.fullmatch(name):
        return None
    if not eq:
        return name, None
    value = value.strip(" \t")
    m = _QUOTED.fullmatch(value)
    if m is not None:
        # RFC 6455 9.1: a quoted value, once unescaped, MUST conform to token.
        value = _QUOTED_PAIR.sub(r"\1", m.group(1))
    return (name, value) if _TOKEN.fullmatch(value) else None


def _elements(values: Iterable[str]) -> Iterator[Extension | None]:
    """Yield every non-empty list element as (name, params), or None where it is malformed."""
    for value in values:
        for element in _split(value, ","):
            if not element.strip(" \t"):
                continue  # RFC 9110 5.6.1: empty list elements are allowed and ignored
            name, *raw = _split(element, ";")
            name = name.strip(" \t")
            params = [_param(p) for p in raw]
            if not _TOKEN.fullmatch(name) or None in params:
                yield None
            else:
                yield name, tuple(p for p in params if p is not None)


def parse_extensions(values: Iterable[str]) -> list[Extension]:
    """Parse Sec-WebSocket-Extensions header values (RFC 6455 9.1) into (name, params).

    Raises RemoteProtocolError (400) if any element does not follow the grammar.
    """
    out: list[Extension] = []
    for element in _elements(values):
        if element is None:
            raise RemoteProtocolError("malformed Sec-WebSocket-Extensions", status=400)
        out.append(element)
    return out


def _format(params: Sequence[ExtParam]) -> str:
    return "; ".join([EXTENSION] + [n if v is None else f"{n}={v}" for n, v in params])


def _read_params(
    params: Sequence[ExtParam], valueless_cmwb: bool
) -> tuple[bool, bool, int | None, int | bool | None] | None:
    """Check RFC 7692 7.1 parameters; return (snct, cnct, smwb, cmwb) or None if invalid.

    ``cmwb`` is True for a valueless client_max_window_bits (allowed in offers only).
    """
    seen: set[str] = set()
    snct = cnct = False
    smwb: int | None = None
    cmwb: int | bool | None = None
    for name, value in params:
        if name in seen:
            return None  # RFC 7692 7: a parameter MUST NOT appear twice
        seen.add(name)
        if name in (_SNCT, _CNCT):
            if value is not None:
                return None  # RFC 7692 7.1.1: these have no value
            if name == _SNCT:
                snct = True
            else:
                cnct = True
        elif name in (_SMWB, _CMWB):
            if value is None:
                if name == _SMWB or not valueless_cmwb:
                    return None  # RFC 7692 7.1.2: a value is required here
                cmwb = True
            elif not _WINDOW_VALUE.fullmatch(value):
                return None
            elif name == _SMWB:
                smwb = int(value)
            else:
                cmwb = int(value)
        else:
            return None  # RFC 7692 7: unknown parameter
    return snct, cnct, smwb, cmwb


# -- server side ---------------------------------------------------------------------


def negotiate(values: Iterable[str], options: DeflateOptions) -> tuple[DeflateParams, str] | None:
    """Pick the first acceptable permessage-deflate offer of a request (RFC 7692 5, 7.1).

    ``values`` are the request's Sec-WebSocket-Extensions header values.  Return the
    agreed parameters and the value for the response's Sec-WebSocket-Extensions header,
    or None to decline (no offer, or none acceptable).
    """
    for element in _elements(values):
        if element is None or element[0] != EXTENSION:
            continue
        read = _read_params(element[1], valueless_cmwb=True)
        if read is None:
            continue  # RFC 7692 5.1: decline an offer with an invalid parameter
        snct, cnct, smwb, cmwb = read
        # RFC 7692 7.1.1.1: accepting server_no_context_takeover MUST echo it; the
        # server MAY also add it unasked.  7.1.1.2: client_no_context_takeover MAY be
        # added whether or not it was offered.
        snct = snct or options.server_no_context_takeover
        cnct = cnct or options.client_no_context_takeover
        # RFC 7692 7.1.2.1: answer server_max_window_bits with the same or a smaller
        # value; it MAY be included although the offer lacks it.
        mine = options.server_max_window_bits
        if smwb is not None and mine is not None:
            smwb = min(smwb, mine)
        elif smwb is None:
            smwb = mine
        # RFC 7692 7.1.2.2: client_max_window_bits only if offered, same or smaller.
        limit = options.client_max_window_bits
        if cmwb is None:
            resp_cmwb = None
        elif cmwb is True:
            resp_cmwb = limit
        else:
            resp_cmwb = cmwb if limit is None else min(cmwb, limit)
        params: list[ExtParam] = [(_SNCT, None)] if snct else []
        if cnct:
            params.append((_CNCT, None))
        if smwb is not None:
            params.append((_SMWB, str(smwb)))
        if resp_cmwb is not None:
            params.append((_CMWB, str(resp_cmwb)))
        return _params(snct, cnct, smwb, resp_cmwb, options), _format(params)
    return None


# -- client side ---------------------------------------------------------------------


def offer(options: DeflateOptions) -> str:
    """Return the Sec-WebSocket-Extensions value a client sends (RFC 7692 5, 7.1).

    With ``server_max_window_bits`` set, a second offer without it follows (RFC 7692
    7.1.3): a server that cannot limit its window declines the first and takes that.
    """
    params: list[ExtParam] = []
    if options.server_no_context_takeover:
        params.append((_SNCT, None))
    if options.client_no_context_takeover:
        params.append((_CNCT, None))
    bits = options.client_max_window_bits
    # always offered: it lets the server limit our window (RFC 7692 7.1.2.2)
    params.append((_CMWB, None if bits is None else str(bits)))
    if options.server_max_window_bits is None:
        return _format(params)
    first = [*params[:-1], (_SMWB, str(options.server_max_window_bits)), params[-1]]
    return f"{_format(first)}, {_format(params)}"


def accept(values: Iterable[str], options: DeflateOptions) -> DeflateParams | None:
    """Check the server's Sec-WebSocket-Extensions against our ``offer(options)``.

    Return the agreed parameters, or None when the server accepted no extension.
    Raises RemoteProtocolError where RFC 6455 9.1 and RFC 7692 5.1 / 7.1 say the
    client MUST fail the connection.
    """
    try:
        elements = parse_extensions(values)
    except RemoteProtocolError:
        raise RemoteProtocolError("malformed Sec-WebSocket-Extensions in the response") from None
    if not elements:
        return None
    if len(elements) > 1 or elements[0][0] != EXTENSION:
        # RFC 6455 9.1: only offered extensions, each once; RFC 7692 5: one PMCE.
        raise RemoteProtocolError("server accepted an extension that was not offered")
    read = _read_params(elements[0][1], valueless_cmwb=False)
    if read is None:
        raise RemoteProtocolError("invalid permessage-deflate parameters in the response")
    snct, cnct, smwb, cmwb = read
    assert cmwb is not True  # valueless refused above
    # RFC 7692 7.1.1.1: a server accepting our server_no_context_takeover MUST echo it.
    if options.server_no_context_takeover and not snct:
        raise RemoteProtocolError("server dropped server_no_context_takeover")
    # RFC 7692 7.1.2.2: the server "may either ignore this value or use" it: we compress
    # with the smaller of our offer and its answer, which honours both.
    limit = options.client_max_window_bits
    if cmwb is not None and limit is not None:
        cmwb = min(cmwb, limit)
    # RFC 7692 7.1.2.1: any server_max_window_bits is acceptable: either it answers the
    # first offer (same or smaller) or it is one the server MAY add to the fallback.
    return _params(
        snct,
        cnct or options.client_no_context_takeover,
        smwb,
        cmwb if cmwb is not None else limit,
        options,
    )

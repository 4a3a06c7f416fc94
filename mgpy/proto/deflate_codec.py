"""The zlib side of permessage-deflate (RFC 7692 7.2): one codec per connection.

States, per direction: no zlib object while idle -> one while a message is compressed
or inflated -> dropped at the message's end, unless context takeover applies to that
direction; then it lives with the connection, its memory bounded by the agreed window.
With the default options neither direction takes over context, so an idle connection
holds no zlib object at all.

Compressing (7.2.1): DEFLATE ended with a sync flush, whose 00 00 ff ff tail is removed;
in a fragmented message each fragment is flushed (so it can be inflated on arrival) and
only the last one loses the tail.  A whole message under the threshold goes out
uncompressed, and so does one that did not shrink when no context is kept (nothing of
it is in a window the peer must mirror).  ``compress_shared`` computes exactly what
every server connection with the same parameters and no server context takeover would
send, which is what lets a broadcast compress once.  Without context, every message is
compressed by a ``Compressors`` pool (one per Manager): one zlib compressor per setting
serves every message of every connection, each message ended with a full flush (the same
00 00 ff ff as a sync flush, and the history reset), which is byte for byte what a fresh
compressor produces, without allocating and initialising one per message.

Inflating (7.2.2): each piece of payload as it arrives, then 00 00 ff ff at the end of
the message.  The output is bounded with zlib's ``max_length``: a frame that would
inflate past the caller's budget raises LimitExceeded (1009) once the budget is
exceeded, having produced no more than budget + 1 bytes.  Refused: data that is not
DEFLATE (RemoteProtocolError, 1007).  A message ended with a final block (BFINAL, RFC
7692 7.2.3.4) is accepted; the next message then starts from an empty window.
"""

from __future__ import annotations

import zlib
from typing import Final

from ..errors import LimitExceeded, RemoteProtocolError
from .deflate import DeflateParams

__all__ = ["TAIL", "Compressors", "PerMessageDeflate", "compress_shared", "wire_cap"]

#: RFC 7692 7.2.1 / 7.2.2: the end of the empty stored block a sync flush produces
TAIL: Final = b"\x00\x00\xff\xff"
#: zlib refuses raw DEFLATE with an 8-bit window; 9 is safe (see DeflateOptions)
_ZLIB_MIN_BITS: Final = 9
_SYNC: Final = zlib.Z_SYNC_FLUSH
_FULL: Final = zlib.Z_FULL_FLUSH
#: RFC 6455 7.4.1: 1007, data in a message not consistent with its type
_BAD_DATA: Final = 1007
#: slack on the compressed size of a message, for block headers
_WIRE_SLACK: Final = 1024
#: payloads shorter than this get the tail appended before one inflate call
_JOIN_TAIL: Final = 16384


def wire_cap(max_message: int) -> int:
    """Compressed bytes a message inflating to at most ``max_message`` may take.

    DEFLATE stays below 9/8 of its input (fixed Huffman codes spend at most 9 bits
    per byte, stored blocks 5 bytes per 64 KiB); a peer that needs more is padding
    with empty blocks, and the receiver answers 1009 from the frame header.
    """
    return max_message + (max_message >> 3) + _WIRE_SLACK


_Args = tuple[int, int, int, int]  # zlib.compressobj's level, method, wbits, memLevel


def _args(bits: int, params: DeflateParams) -> _Args:
    return (params.level, zlib.DEFLATED, -max(bits, _ZLIB_MIN_BITS), params.mem_level)


class Compressors:
    """Compress whole messages without context, one zlib compressor per setting for all.

    A message compressed here refers to nothing before it: it is ended with a full
    flush (RFC 7692 7.2.1's 00 00 ff ff, as a sync flush ends it), which also clears the
    compressor's history, so the next message starts as a fresh compressor would, byte
    for byte (tests/proto/test_deflate_codec.py compares the two).  Not thread-safe: one
    pool belongs to one Manager (``mgpy.ws`` keeps it); a Manager per thread is fine.
    """

    __slots__ = ("_comps",)

    def __init__(self) -> None:
        self._comps: dict[_Args, zlib._Compress] = {}

    def alone(self, args: _Args, data: bytes) -> bytes:
        """DEFLATE ``data`` with ``zlib.compressobj(*args)``'s setting, sync tail included."""
        comps = self._comps
        c = comps.get(args)
        if c is None:
            c = comps[args] = zlib.compressobj(*args)
        try:
            return c.compress(data) + c.flush(_FULL)
        except BaseException:
            del comps[args]  # part of a message may be inside: never reuse it
            raise

    def __len__(self) -> int:
        return len(self._comps)


def _once(args: _Args, data: bytes, pool: Compressors | None) -> bytes | None:
    """Compress ``data`` with no context; None if that does not pay."""
    if pool is None:
        c = zlib.compressobj(*args)
        out = c.compress(data) + c.flush(_SYNC)
    else:
        out = pool.alone(args, data)
    # RFC 7692 7.2.1: drop the flush's tail; send as is if it did not shrink
    return out[:-4] if len(out) - 4 < len(data) else None


def compress_shared(
    params: DeflateParams, data: bytes, pool: Compressors | None = None
) -> bytes | None:
    """Return a whole server message compressed as any connection with ``params`` sends it.

    None means "send it uncompressed".  Requires ``server_no_context_takeover``.
    ``pool``: the Manager's ``Compressors`` (None: a compressor made for this message).
    """
    if not params.server_no_context_takeover:
        raise ValueError("a compressed message is shared only without server context takeover")
    if len(data) < params.threshold:
        return None
    return _once(_args(params.server_max_window_bits, params), data, pool)


def _inflate(d: zlib._Decompress, data: bytes, budget: int) -> bytes:
    """Inflate ``data``, producing at most ``budget`` bytes (else LimitExceeded)."""
    try:
        out = d.decompress(data, budget + 1)  # max_length 0 would mean "unbounded"
    except zlib.error:
        raise RemoteProtocolError("invalid compressed data", ws_code=_BAD_DATA) from None
    if len(out) > budget:
        raise LimitExceeded(f"message inflates past {budget} more bytes")
    return out


class PerMessageDeflate:
    """Compress outgoing and inflate incoming messages of one connection (RFC 7692 7.2)."""

    __slots__ = (
        "_cargs",
        "_cbits",
        "_comp",
        "_dbits",
        "_decomp",
        "_keep_c",
        "_keep_d",
        "_pool",
        "_threshold",
        "params",
    )

    def __init__(self, params: DeflateParams, side: str, pool: Compressors | None = None) -> None:
        """``pool``: the Manager's ``Compressors`` for messages sent without context."""
        self.params = params
        self._pool = pool
        if side == "server":
            # RFC 7692 7.1.1: "no context takeover" is per sender; the windows are per sender
            self._keep_c = not params.server_no_context_takeover
            self._keep_d = not params.client_no_context_takeover
            self._cbits = params.server_max_window_bits
            self._dbits = params.client_max_window_bits
        else:
            self._keep_c = not params.client_no_context_takeover
            self._keep_d = not params.server_no_context_takeover
            self._cbits = params.client_max_window_bits
            self._dbits = params.server_max_window_bits
        self._comp: zlib._Compress | None = None
        self._decomp: zlib._Decompress | None = None
        #: zlib.compressobj's arguments, and the threshold, looked up once
        self._cargs = _args(self._cbits, params)
        self._threshold = params.threshold

    @property
    def holds_state(self) -> bool:
        """True while a zlib object is kept (context takeover, or a message under way)."""
        return self._comp is not None or self._decomp is not None

    def compress(self, data: bytes) -> bytes | None:
        """Return a whole message's compressed payload, or None to send it uncompressed."""
        if len(data) < self._threshold:
            return None  # (with context takeover: never seen by the compressor either)
        if not self._keep_c:
            return _once(self._cargs, data, self._pool)
        c = self._comp
        if c is None:
            c = self._comp = zlib.compressobj(*self._cargs)
        out = c.compress(data) + c.flush(_SYNC)
        return out[:-4] if out.endswith(TAIL) else out

    def compress_fragment(self, data: bytes, fin: bool) -> bytes:
        """Return one fragment of a compressed message; ``fin`` for the last one."""
        c = self._comp
        if c is None:
            c = self._comp = zlib.compressobj(*self._cargs)
        out = c.compress(data) + c.flush(_SYNC)
        if not fin:
            return out
        if not self._keep_c:
            self._comp = None
        # a repeated flush adds nothing, so the tail may already have gone out
        return out[:-4] if out.endswith(TAIL) else out

    def decompress(self, data: bytes, budget: int) -> bytes:
        """Inflate a piece of a compressed message's payload, at most ``budget`` bytes."""
        d = self._decomp
        if d is None:
            d = self._decomp = zlib.decompressobj(-self._dbits)
        return _inflate(d, data, budget)

    def decompress_end(self, budget: int) -> bytes:
        """Finish the message (RFC 7692 7.2.2: append 00 00 ff ff); return the last output."""
        d = self._decomp
        if d is None:
            d = zlib.decompressobj(-self._dbits)
        out = _inflate(d, TAIL, budget)
        self._decomp = d if self._keep_d and not d.eof else None
        return out

    def decompress_message(self, payload: bytes, budget: int) -> bytes:
        """Inflate a compressed message received in one frame, at most ``budget`` bytes."""
        d = self._decomp
        if d is None:
            d = zlib.decompressobj(-self._dbits)
        if len(payload) < _JOIN_TAIL:  # one call: copying a small payload costs less
            out = _inflate(d, payload + TAIL, budget)
        else:
            out = _inflate(d, payload, budget)
            end = _inflate(d, TAIL, budget - len(out))  # no copy of a big payload
            if end:
                out += end
        self._decomp = d if self._keep_d and not d.eof else None
        return out

    def release(self) -> None:
        """Drop every zlib object (the connection is closed or failed)."""
        self._comp = None
        self._decomp = None

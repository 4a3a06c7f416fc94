"""WebSocket frame encoding and payload pieces (RFC 6455 5.2-5.3), shared by ``ws.WsProtocol``.

Sans-IO helpers with no state of their own: masking (the C accelerator when built and
allowed), payload slices unmasked in one call, the pieces a fragmented payload is
collected in (a few objects, then one growing buffer: never one object per fragment),
minimal-length frame headers, and ``broadcast_frame``, which builds one server frame
for every connection that would send the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, TypeAlias

from .._accel import apply_mask_py, load_speedups
from ..errors import LocalProtocolError
from .deflate import DeflateParams
from .deflate_codec import Compressors, compress_shared

__all__ = [
    "BIG",
    "MAX_PIECES",
    "S16",
    "S64",
    "SMALL_HDR",
    "VALID_SEND_OPS",
    "Buffer",
    "Pieces",
    "apply_mask",
    "broadcast_frame",
    "frame_length",
    "grow",
    "joined",
    "unmask_payload",
    "unmasked_frame",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

# RFC 6455 5.3 masking: the C twin of _accel.apply_mask_py when it is built and allowed
_speedups = load_speedups()  # None: not built, or MGPY_NO_EXTENSIONS set
apply_mask: Callable[[Buffer, Buffer], bytes] = (
    apply_mask_py if _speedups is None else _speedups.apply_mask
)

#: payloads at least this long are sliced through a memoryview (saves one copy)
BIG: Final = 4096


def unmask_payload(buf: Buffer, s: int, e: int, mask: Buffer | None) -> bytes:
    """Return ``buf[s:e]`` as bytes, unmasked with ``mask`` (already rotated) if given."""
    if e - s < BIG:
        return apply_mask(buf[s:e], mask) if mask is not None else bytes(buf[s:e])
    with memoryview(buf) as mv:
        return apply_mask(mv[s:e], mask) if mask is not None else bytes(mv[s:e])


#: pieces of a payload kept as they came before they are joined into one bytearray: a
#: big frame read in a few pieces is joined once at its end, a flood of tiny fragments
#: (or of tiny reads) costs one growing buffer, never one object each
MAX_PIECES: Final = 8

Pieces: TypeAlias = "list[bytes] | bytearray"


def grow(buf: Pieces | None, chunk: bytes) -> Pieces:
    """Append ``chunk`` to the payload pieces ``buf`` (None: the first piece)."""
    if buf is None:
        return [chunk]
    if isinstance(buf, list):
        if len(buf) < MAX_PIECES:
            buf.append(chunk)
            return buf
        buf = bytearray().join(buf)
    buf += chunk
    return buf


def joined(buf: Pieces | None) -> bytes:
    """The payload held by ``buf`` as one bytes object."""
    if buf is None:
        return b""
    if isinstance(buf, list):
        return buf[0] if len(buf) == 1 else b"".join(buf)
    return bytes(buf)


def frame_length(n: int, masked: bool) -> int:
    """Bytes on the wire for a frame with an ``n``-byte payload (RFC 6455 5.2)."""
    return n + (2 if n < 126 else 4 if n < 0x10000 else 10) + (4 if masked else 0)


# -- header encoding -----------------------------------------------------------

S16: Final = struct.Struct("!BBH")
S64: Final = struct.Struct("!BBQ")
#: the 2-byte headers of unmasked FIN text/binary frames, indexed [b0 & 3][length]
SMALL_HDR: Final = (
    (),
    tuple(bytes((0x81, n)) for n in range(126)),
    tuple(bytes((0x82, n)) for n in range(126)),
)
VALID_SEND_OPS: Final = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))


def unmasked_frame(b0: int, data: bytes) -> bytes:
    """A server frame with the minimal length form (RFC 6455 5.2)."""
    n = len(data)
    if n < 126:
        return bytes((b0, n)) + data
    if n < 0x10000:
        return S16.pack(b0, 126, n) + data
    return S64.pack(b0, 127, n) + data


def broadcast_frame(
    op: int,
    data: bytes | str,
    deflate: DeflateParams | None = None,
    compressors: Compressors | None = None,
) -> bytes:
    """Build the frame of one whole text/binary message for many server connections.

    Every connection whose ``can_share_frames`` is True and whose ``deflate`` equals
    ``deflate`` would send exactly these bytes (server frames are unmasked, and
    without server context takeover a message compresses the same everywhere), so a
    broadcast builds one frame per distinct ``deflate`` (a cheap dict key) and writes
    it to every connection.  Raises LocalProtocolError for another opcode, and
    ValueError for parameters with server context takeover.
    """
    if op != 1 and op != 2:
        raise LocalProtocolError(f"broadcast_frame sends text or binary messages, not {op:#x}")
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, bytes):
        data = bytes(data)
    if deflate is not None:
        z = compress_shared(deflate, data, compressors)
        if z is not None:
            return unmasked_frame(0xC0 | op, z)
    return unmasked_frame(0x80 | op, data)

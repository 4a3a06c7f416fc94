"""Sans-IO WebSocket (RFC 6455) frame codec: bytes in -> WsMessage events, messages in -> bytes.

Theory of operation
-------------------
``WsProtocol`` never owns the receive buffer.  ``next_event(buf)`` parses from
the front of the caller's buffer (the bytearray behind an Mbuf) and returns
``(event, consumed)``; the caller deletes ``consumed`` bytes from the front
before calling again.  Three layers are stacked, like wsproto's:

* frames: a 2..14 byte header is parsed only once it is complete and is
  validated before any payload is buffered (RSV bits, opcode, FIN on control
  frames, mask direction, minimal length encoding, size limit).  A frame whose
  payload is entirely in ``buf`` is unmasked in one call and, if it is a whole
  unfragmented message, returned at once (the hot path: one slice, one
  unmask, one WsMessage).  Otherwise the header and whatever payload is there
  are consumed and unmasked now (the mask offset is kept), so a 16 MiB message
  never needs more than a few bytes of the caller's buffer;
* messages: fragments are reassembled in one buffer (or passed through with
  ``defrag=False``), at most ``max_fragments`` of them; a compressed message
  (RSV1 on its first frame) is inflated piece by piece as it arrives, its
  output bounded by ``max_message``; text is UTF-8 validated incrementally (on
  the inflated data) so that an invalid sequence fails as soon as the chunk
  holding it arrives;
* control: ping -> pong queued, close -> code/reason validated, echo queued.

``consumed`` may be > 0 with ``NEED_DATA`` when a partial payload or a
non-final fragment was swallowed; the core keeps parsing the rest of ``buf``
within the same call, so ``NEED_DATA`` always means "append more bytes".

States: OPEN -> CLOSING (we sent close) -> CLOSED (both closes seen), or
OPEN -> CLOSED directly when the peer's close arrives first (the echo is
queued).  Bytes produced while receiving (pong, close echo, the close frame
for an error) wait in ``data_to_send()``.  A protocol violation raises
``RemoteProtocolError`` (``LimitExceeded`` for size) carrying the close code;
the matching close frame is queued and the object is dead afterwards.

permessage-deflate (RFC 7692) applies when the constructor gets the negotiated
``DeflateParams`` (``deflate.negotiate`` / ``deflate.accept``); without them
every RSV bit is refused.  With them RSV1 marks the first frame of a compressed
message only (RSV1 on a continuation or control frame: 1002), control frames
are never compressed, messages below the threshold go out uncompressed, and
``broadcast_frame`` builds a frame once for every connection with the same
parameters.  The uncompressed paths test no more than before.
"""

from __future__ import annotations

import codecs
import secrets
from collections.abc import Callable
from typing import Final, Literal

from .._accel import apply_mask_py
from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ..events import WS_DONT_FIN, WsMessage
from ..limits import Limits
from ._sentinel import NEED_DATA
from .deflate import DeflateParams
from .deflate_codec import Compressors, PerMessageDeflate, wire_cap
from .ws_frame import (
    BIG,
    MAX_PIECES,
    S16,
    S64,
    SMALL_HDR,
    VALID_SEND_OPS,
    Buffer,
    Pieces,
    apply_mask,
    broadcast_frame,
    frame_length,
    grow,
    joined,
    unmask_payload,
    unmasked_frame,
)
from .ws_handshake import (
    GUID,
    accept_key,
    check_client_handshake,
    check_close_payload,
    check_server_handshake,
    client_handshake_headers,
    client_subprotocols,
    close_payload,
    new_client_key,
    parse_close,
    server_handshake_headers,
    valid_close_code,
)

__all__ = [
    "CLOSED",
    "CLOSING",
    "GUID",
    "NEED_DATA",
    "OPEN",
    "WsProtocol",
    "accept_key",
    "apply_mask",
    "apply_mask_py",
    "broadcast_frame",
    "check_client_handshake",
    "check_server_handshake",
    "client_handshake_headers",
    "client_subprotocols",
    "frame_length",
    "new_client_key",
    "server_handshake_headers",
    "valid_close_code",
]

OPEN: Final = 1  #: both directions open
CLOSING: Final = 2  #: we sent a close frame and wait for the peer's
CLOSED: Final = 3  #: close handshake done (or failed): input is ignored, sending refused


_Utf8Decoder: Final = codecs.getincrementaldecoder("utf-8")


class WsProtocol:
    """One WebSocket endpoint: parses received frames and encodes frames to send.

    Example (server side, after the handshake)::

        ws = WsProtocol("server")
        buf += sock.recv(65536)
        ev, n = ws.next_event(buf)
        del buf[:n]
        if isinstance(ev, WsMessage) and ev.opcode == WS_OP_TEXT:
            sock.sendall(ws.send(WS_OP_TEXT, ev.data))
        sock.sendall(ws.data_to_send())     # pongs and close echoes
    """

    __slots__ = (
        "_busy",
        "_dec",
        "_failed",
        "_fast_send",
        "_fr_b0",
        "_fr_buf",
        "_fr_left",
        "_fr_mask",
        "_fr_off",
        "_is_client",
        "_mask_bit",
        "_msg_buf",
        "_msg_defrag",
        "_msg_frags",
        "_msg_len",
        "_msg_op",
        "_msg_wire",
        "_msg_z",
        "_out",
        "_pmd",
        "_rng",
        "_send_frag",
        "_send_z",
        "close_code",
        "close_reason",
        "deflate",
        "defrag",
        "max_fragments",
        "max_message",
        "side",
        "state",
    )

    def __init__(
        self,
        side: Literal["server", "client"],
        max_message: int = 1 << 20,
        defrag: bool = True,
        rng: Callable[[int], bytes] | None = None,
        *,
        max_fragments: int = Limits.ws_max_fragments,
        deflate: DeflateParams | None = None,
        compressors: Compressors | None = None,
    ) -> None:
        if side not in ("server", "client"):
            raise ValueError("side must be 'server' or 'client'")
        if max_fragments < 1:
            raise ValueError("max_fragments must be >= 1")
        self.side = side
        self._is_client = side == "client"
        # RFC 6455 5.1: client-to-server frames are masked, server-to-client are not.
        self._mask_bit = 0 if self._is_client else 0x80
        self.max_message = max_message
        #: data frames one message may take, empty ones included (Limits.ws_max_fragments)
        self.max_fragments = max_fragments
        self.defrag = defrag
        self._rng: Callable[[int], bytes] = rng if rng is not None else secrets.token_bytes
        self.state: int = OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        self._out: list[bytes] | None = None  # created on demand: idle connections stay small
        self._failed: RemoteProtocolError | None = None
        # the frame whose payload is arriving: first byte, bytes still due, mask and its offset;
        # a control frame's payload collects in _fr_buf (data goes to _msg_buf)
        self._fr_left = 0
        self._fr_b0 = 0
        self._fr_mask: bytes | None = None
        self._fr_off = 0
        self._fr_buf: Pieces | None = None
        # the data message in progress (opcode 1/2, or 0 for none): its payload so far (the
        # fragment so far when not defragmenting; see grow: never one object per fragment),
        # its length (what max_message bounds) and its number of frames
        self._msg_op = 0
        self._msg_len = 0
        self._msg_frags = 0
        self._msg_defrag = defrag
        self._msg_buf: Pieces | None = None
        self._dec: codecs.IncrementalDecoder | None = None
        #: the permessage-deflate parameters agreed at the handshake (None: no extension)
        self.deflate = deflate
        self._pmd = None if deflate is None else PerMessageDeflate(deflate, side, compressors)
        self._msg_z = False  # the message in progress is compressed (RSV1 on its first frame)
        self._msg_wire = 0  # its compressed bytes so far
        self._send_frag = 0  # opcode of the fragmented message we are sending, else 0
        self._send_z = False  # ... and whether it is compressed
        #: send() may take its plain path: OPEN, no fragmented send, no compression
        self._fast_send = deflate is None
        #: False while the next_event hot path applies (see there)
        self._busy = False

    def __repr__(self) -> str:
        return f"<WsProtocol {self.side} state={self.state}>"

    # -- receiving -----------------------------------------------------------
    def next_event(self, buf: bytes | bytearray) -> tuple[WsMessage | object, int]:
        """Parse the front of ``buf``; return ``(WsMessage or NEED_DATA, bytes consumed)``.

        Raises RemoteProtocolError (1002/1007) or LimitExceeded (1009); the
        close frame for it is then waiting in ``data_to_send()``.
        """
        # Hot path: idle (no partial frame, no fragmented message, not closed) and
        # the front of buf is a whole FIN text/binary frame with a 7-bit length and
        # the right mask bit: every rule the general loop checks holds already.
        n = len(buf)
        if n >= 2 and not self._busy:
            b0 = buf[0]
            ln = buf[1] ^ self._mask_bit
            if (b0 == 0x81 or b0 == 0x82) and ln < 126 and ln <= self.max_message:
                if self._mask_bit:
                    e = ln + 6
                    if e <= n:
                        data = apply_mask(buf[6:e], buf[2:6])
                        # RFC 6455 8.1: a text message MUST be valid UTF-8.
                        if b0 == 0x81 and not data.isascii():
                            self._check_utf8(data)
                        return WsMessage(data, b0), e
                else:
                    e = ln + 2
                    if e <= n:
                        data = bytes(buf[2:e])
                        if b0 == 0x81 and not data.isascii():
                            self._check_utf8(data)
                        return WsMessage(data, b0), e
            elif (b0 == 0xC1 or b0 == 0xC2) and ln < 127 and self._pmd is not None:
                # The same for a whole compressed message (RFC 7692 6: RSV1, text or
                # binary, FIN) with a 7- or 16-bit length: inflated in one call.
                got = self._whole_compressed(buf, n, b0, ln)
                if got is not None:
                    return got
        try:
            return self._next_event(buf, n)
        finally:
            self._busy = self.state == CLOSED or self._fr_left > 0 or self._msg_op != 0

    def _whole_compressed(
        self, buf: bytes | bytearray, n: int, b0: int, ln: int
    ) -> tuple[WsMessage, int] | None:
        """next_event's hot path for a whole compressed frame; None: take the general path.

        Idle and OPEN (not ``_busy``), the mask bit right (``ln`` < 128): what is left to
        check is the 16-bit length's minimal form and the wire cap (as ``_next_event``).
        """
        s = 2
        if ln == 126:
            if n < 4:
                return None
            ln = (buf[2] << 8) | buf[3]
            if ln < 126:
                return None  # RFC 6455 5.2: not minimal; the general path fails it
            s = 4
        if ln > wire_cap(self.max_message):
            return None
        if self._mask_bit:
            e = s + 4 + ln
            if e > n:
                return None
            data = self._inflate(unmask_payload(buf, s + 4, e, buf[s : s + 4]), None)
        else:
            e = s + ln
            if e > n:
                return None
            data = self._inflate(unmask_payload(buf, s, e, None), None)
        # RFC 6455 8.1: the inflated text MUST be valid UTF-8.
        if b0 == 0xC1 and not data.isascii():
            self._check_utf8(data)
        return WsMessage(data, b0 & ~0x40), e

    def _next_event(self, buf: bytes | bytearray, n: int) -> tuple[WsMessage | object, int]:
        """The general parser: every frame shape, partial payloads, fragments."""
        if self.state == CLOSED:
            if self._failed is not None:
                f = self._failed
                raise RemoteProtocolError(f"connection already failed: {f}", f.status, f.ws_code)
            return NEED_DATA, n  # RFC 6455 5.5.1: nothing follows a close
        pos = 0
        while True:
            if self._fr_left:
                ev, pos = self._continue_payload(buf, pos, n)
                if ev is NEED_DATA and not self._fr_left and self.state != CLOSED:
                    continue  # a non-final fragment completed: parse on
                return ev, pos
            if n - pos < 2:
                return NEED_DATA, pos
            b0 = buf[pos]
            b1 = buf[pos + 1]
            op = b0 & 0x0F
            ln = b1 & 0x7F
            if b0 & 0x70:
                # RFC 6455 5.2: RSV1-3 MUST be 0 unless an extension defines them;
                # permessage-deflate defines RSV1 (RFC 7692 6).
                if b0 & 0x30 or self._pmd is None:
                    raise self._fail(RemoteProtocolError("reserved bits set"))
                # RFC 7692 6.1: RSV1 only on the first frame of a data message.
                if op == 0 or op >= 8:
                    raise self._fail(RemoteProtocolError("RSV1 on a control or continuation"))
            if op >= 8:
                # RFC 6455 5.2: opcodes 0xB-0xF are reserved -> fail.
                if op > 10:
                    raise self._fail(RemoteProtocolError(f"reserved opcode {op}"))
                # RFC 6455 5.5: control frames MUST NOT be fragmented and carry <= 125 bytes.
                if not b0 & 0x80:
                    raise self._fail(RemoteProtocolError("fragmented control frame"))
                if ln > 125:
                    raise self._fail(RemoteProtocolError("control frame payload > 125 bytes"))
            elif op == 0:
                # RFC 6455 5.4: a continuation needs a message to continue.
                if not self._msg_op:
                    raise self._fail(RemoteProtocolError("continuation frame without a message"))
                if self._msg_frags >= self.max_fragments:
                    # empty frames count: bytes alone bound neither the work nor the wait
                    raise self._fail(
                        LimitExceeded(f"message in more than {self.max_fragments} fragments")
                    )
            elif op > 2:
                raise self._fail(RemoteProtocolError(f"reserved opcode {op}"))
            elif self._msg_op:
                # RFC 6455 5.4: fragments of one message MUST NOT interleave with another.
                raise self._fail(RemoteProtocolError("new message before the last one ended"))
            # RFC 6455 5.1: the server MUST fail on unmasked frames, the client on masked ones.
            if b1 & 0x80 != self._mask_bit:
                raise self._fail(
                    RemoteProtocolError(
                        "unmasked client frame" if self._mask_bit else "masked server frame"
                    )
                )
            s = pos + 2
            if ln == 126:
                if n - pos < 4:
                    return NEED_DATA, pos
                ln = (buf[s] << 8) | buf[s + 1]
                s += 2
                # RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the length"
                if ln < 126:
                    raise self._fail(RemoteProtocolError("non-minimal 16-bit length"))
            elif ln == 127:
                if n - pos < 10:
                    return NEED_DATA, pos
                ln = int.from_bytes(buf[s : s + 8], "big")
                s += 8
                # RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0.
                if ln >> 63:
                    raise self._fail(RemoteProtocolError("64-bit length with the high bit set"))
                if ln < 0x10000:
                    raise self._fail(RemoteProtocolError("non-minimal 64-bit length"))
            # Checked against the declared length, before buffering any of it; _msg_len
            # is what earlier fragments of a message being reassembled hold (else 0).
            if op < 8:
                if not (b0 & 0x40 if op else self._msg_z):
                    if self._msg_len + ln > self.max_message:
                        raise self._fail(
                            LimitExceeded(f"message larger than {self.max_message} bytes")
                        )
                elif self._msg_wire + ln > wire_cap(self.max_message):
                    raise self._fail(LimitExceeded("compressed message too large"))
            if self._mask_bit:
                if n - s < 4:
                    return NEED_DATA, pos
                mask: Buffer | None = buf[s : s + 4]
                s += 4
            else:
                mask = None
            e = s + ln
            if e <= n and (b0 == 0x81 or b0 == 0x82):
                # Hot path: a whole unfragmented data message (no message in progress,
                # checked above).  RFC 6455 8.1: text MUST be valid UTF-8.
                if ln < BIG:
                    data = apply_mask(buf[s:e], mask) if mask is not None else bytes(buf[s:e])
                else:
                    data = unmask_payload(buf, s, e, mask)
                if b0 == 0x81 and not data.isascii():
                    self._check_utf8(data)
                return WsMessage(data, b0), e
            if e <= n and (b0 == 0xC1 or b0 == 0xC2):
                # A whole compressed message in one frame: inflate it in one call.
                data = self._inflate(unmask_payload(buf, s, e, mask), None)
                if b0 == 0xC1 and not data.isascii():
                    self._check_utf8(data)
                return WsMessage(data, b0 & ~0x40), e
            # Any other frame, or a partial payload: take what is there, keep the mask
            # and its offset for the rest.
            self._fr_b0 = b0
            self._fr_left = ln
            self._fr_mask = bytes(mask) if mask is not None else None
            self._fr_off = 0
            if op == 0:
                self._msg_frags += 1
            elif op < 8:
                self._msg_op = op
                self._msg_frags = 1
                self._msg_z = bool(b0 & 0x40)
                # a change of ``defrag`` takes effect at the next message, never inside one
                self._msg_defrag = self.defrag
            if op < 8:
                # what max_message and the wire cap are checked against (see above)
                if self._msg_z:
                    self._msg_wire += ln
                else:
                    self._msg_len += ln
            ev, pos = self._continue_payload(buf, s, n)
            if ev is NEED_DATA and not self._fr_left and self.state != CLOSED:
                continue
            return ev, pos

    def _continue_payload(self, buf: Buffer, pos: int, n: int) -> tuple[WsMessage | object, int]:
        """Consume up to ``_fr_left`` payload bytes; finish the frame when complete."""
        b0 = self._fr_b0
        take = min(self._fr_left, n - pos)
        chunk = b""
        if take:
            mask = self._fr_mask
            if mask is not None:
                o = self._fr_off
                if o:
                    mask = mask[o:] + mask[:o]
                self._fr_off = (o + take) & 3
            chunk = unmask_payload(buf, pos, pos + take, mask)
            pos += take
            self._fr_left -= take
            if b0 & 0x08:
                if self._fr_left or self._fr_buf is not None:
                    self._fr_buf = grow(self._fr_buf, chunk)
            else:
                self._add(self._inflate(chunk, False) if self._msg_z else chunk)
        if self._fr_left:
            return NEED_DATA, pos
        if b0 & 0x08:
            if self._fr_buf is not None:
                chunk = joined(self._fr_buf)
                self._fr_buf = None
            return self._control(b0, chunk), pos
        ev = self._data_frame_done(b0)
        return (ev if ev is not None else NEED_DATA), pos

    def _add(self, data: bytes) -> None:
        """Add message data (RFC 6455 8.1: text is UTF-8 checked as it comes)."""
        if data:
            if self._msg_op == 1:
                self._feed_utf8(data, False)
            pieces = self._msg_buf
            if pieces is None:
                self._msg_buf = [data]
            elif isinstance(pieces, list) and len(pieces) < MAX_PIECES:
                pieces.append(data)
            else:
                self._msg_buf = grow(pieces, data)

    def _data_frame_done(self, b0: int) -> WsMessage | None:
        """Finish a data frame; return the message (or fragment) to deliver, else None."""
        fin = b0 & 0x80
        if fin and self._msg_z:
            self._add(self._inflate(b"", True))  # RFC 7692 7.2.2: the message's end
        if fin and self._msg_op == 1:
            self._feed_utf8(b"", True)  # no truncated sequence at the end
        if self._msg_defrag:
            if not fin:
                return None
            b0 = 0x80 | self._msg_op
        data = joined(self._msg_buf)
        self._msg_buf = None
        if fin:
            self._end_message()
        else:
            self._msg_len = self._msg_wire = 0  # without defrag the limits are per fragment
        return WsMessage(data, b0 & ~0x40)  # the extension is invisible to the application

    def _inflate(self, data: bytes, end: bool | None) -> bytes:
        """Inflate a piece of the compressed message (``end``: its end, None: all of it).

        At most what max_message leaves (RFC 7692 7.2.2 does not bound the output).
        """
        pmd = self._pmd
        assert pmd is not None
        budget = self.max_message - self._msg_len
        try:
            if end is None:
                return pmd.decompress_message(data, budget)
            out = pmd.decompress_end(budget) if end else pmd.decompress(data, budget)
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        self._msg_len += len(out)
        return out

    def _end_message(self) -> None:
        self._msg_op = 0
        self._msg_len = 0
        self._msg_frags = 0
        self._msg_wire = 0
        self._msg_z = False
        self._msg_buf = None
        self._dec = None

    def _control(self, b0: int, payload: bytes) -> WsMessage:
        """Handle a ping, pong or close frame (RFC 6455 5.5)."""
        op = b0 & 0x0F
        if op == 0x9:
            # RFC 6455 5.5.2/5.5.3: answer a ping with a pong carrying the same data,
            # unless we already sent our close (nothing may follow it).
            if self.state == OPEN:
                self._queue(self._frame(0x8A, payload))
        elif op == 0x8:
            self._receive_close(payload)
        return WsMessage(payload, b0)

    def _receive_close(self, payload: bytes) -> None:
        """Validate the peer's close (RFC 6455 5.5.1, 7.4) and move toward CLOSED."""
        try:
            self.close_code, self.close_reason = parse_close(payload)
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        if self.state == OPEN:
            # RFC 6455 5.5.1: reply with a close frame, typically echoing the code.
            echo = payload[:2]
            self._queue(self._frame(0x88, echo))
        self.state = CLOSED
        self._reset_message()

    def _check_utf8(self, data: bytes) -> None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(
                RemoteProtocolError("invalid UTF-8 in text message", ws_code=1007)
            ) from None

    def _feed_utf8(self, data: bytes, final: bool) -> None:
        """Run ``data`` through the message's incremental UTF-8 decoder (RFC 6455 8.1)."""
        dec = self._dec
        if dec is None:
            dec = self._dec = _Utf8Decoder()
        try:
            dec.decode(data, final)
        except UnicodeDecodeError:
            raise self._fail(
                RemoteProtocolError("invalid UTF-8 in text message", ws_code=1007)
            ) from None
        if final:
            self._dec = None
            return
        # CPython holds ED A0..ED BF back as "incomplete", but it can only start
        # a surrogate, which is never valid UTF-8: fail now, not one byte later.
        pending = dec.getstate()[0]
        if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
            raise self._fail(RemoteProtocolError("UTF-8 encoded surrogate", ws_code=1007))

    def _reset_message(self) -> None:
        """CLOSED: drop the message in progress and every zlib object."""
        self._end_message()
        self._fr_buf = None
        self._fr_left = 0
        self._fast_send = False
        if self._pmd is not None:
            self._pmd.release()

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        """Queue the close frame for ``exc`` (RFC 6455 7.1.7), go dead, return ``exc``."""
        if self._failed is None:
            self._failed = exc
            self._busy = True
            if self.state == OPEN:
                self._queue(self._frame(0x88, exc.ws_code.to_bytes(2, "big")))
            self.state = CLOSED
            self._reset_message()
        return exc

    # -- sending ---------------------------------------------------------------
    def send(self, op: int, data: bytes | str) -> bytes:
        """Return the frame carrying ``data``; OR ``WS_DONT_FIN`` into ``op`` for a fragment.

        ``str`` is sent as UTF-8.  Client frames are masked with a fresh key.
        Raises LocalProtocolError after our close, for a control frame over
        125 bytes or fragmented, and for fragments out of order.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        if (op == 1 or op == 2) and self._fast_send:
            if not self._is_client and len(data) < 126:
                return SMALL_HDR[op][len(data)] + data
            return self._frame(0x80 | op, data)
        return self._send_other(op, data)

    def send_parts(self, op: int, data: bytes) -> tuple[bytes, bytes]:
        """Like ``send`` but return ``(header, payload)`` for an unmasked (server) data frame.

        Writing the two pieces with scatter-gather I/O (or appending them to a buffer)
        spares copying a large payload once more to join it to its header.  Anything
        else (client frames, fragments, control frames) comes back as ``(frame, b"")``.
        """
        if (op == 1 or op == 2) and self._fast_send:
            if not self._is_client:
                n = len(data)
                b0 = 0x80 | op
                if n < 126:
                    return bytes((b0, n)), data
                if n < 0x10000:
                    return S16.pack(b0, 126, n), data
                return S64.pack(b0, 127, n), data
        return self.send(op, data), b""

    def _send_other(self, op: int, data: bytes) -> bytes:
        """send() for everything but an uncompressed unfragmented data message."""
        pmd = self._pmd
        if pmd is not None and (op == 1 or op == 2) and not self._send_frag and self.state == OPEN:
            if len(data) >= pmd.params.threshold:
                z = pmd.compress(data)  # None: it did not shrink
                if z is not None:
                    return self._frame(0xC0 | op, z)  # RFC 7692 6: RSV1, compressed
            return self._frame(0x80 | op, data)
        opcode = op & ~WS_DONT_FIN
        fin = 0 if op & WS_DONT_FIN else 0x80
        if opcode not in VALID_SEND_OPS:
            raise LocalProtocolError(f"invalid opcode {op:#x}")
        if not isinstance(data, bytes):
            data = bytes(data)  # a bytearray or memoryview from the application
        if opcode == 0x8:
            if not fin:
                raise LocalProtocolError("control frames cannot be fragmented")
            return self._send_close(check_close_payload(data))
        if self.state != OPEN:
            # RFC 6455 5.5.1: nothing may be sent after our close frame.
            raise LocalProtocolError("cannot send after the close frame")
        if opcode >= 8:
            # RFC 6455 5.5: control frames are never fragmented and carry <= 125 bytes.
            if not fin:
                raise LocalProtocolError("control frames cannot be fragmented")
            if len(data) > 125:
                raise LocalProtocolError("control frame payload > 125 bytes")
        elif opcode == 0:
            if not self._send_frag:
                raise LocalProtocolError("continuation frame without a message in progress")
            if self._send_z:
                data = self._compress_fragment(data, fin)
            if fin:
                self._send_frag = 0
                self._fast_send = self._pmd is None
        else:
            if self._send_frag:
                raise LocalProtocolError("previous fragmented message is not finished")
            if not fin:
                self._send_frag = opcode
                self._fast_send = False
                self._send_z = pmd is not None  # fragments: always compressed, size unknown
                if pmd is not None:
                    # RFC 7692 6.1: RSV1 on the first frame of the message only
                    return self._frame(0x40 | opcode, self._compress_fragment(data, False))
        return self._frame(fin | opcode, data)

    def _compress_fragment(self, data: bytes, fin: int) -> bytes:
        pmd = self._pmd
        assert pmd is not None
        return pmd.compress_fragment(data, bool(fin))

    @property
    def can_share_frames(self) -> bool:
        """True if ``broadcast_frame(op, data, self.deflate)`` is what ``send`` would return.

        That is: a server, OPEN, not inside a fragmented message, and no compression or
        compression without server context takeover (each message on its own).
        """
        return (
            not self._is_client
            and self.state == OPEN
            and not self._send_frag
            and (self.deflate is None or self.deflate.server_no_context_takeover)
        )

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """Return our close frame and enter CLOSING; b"" if a close was already sent.

        Raises LocalProtocolError for a code that may not be sent or a reason
        longer than 123 bytes of UTF-8 (RFC 6455 5.5, 7.4).
        """
        return self._send_close(close_payload(code, reason))

    def _send_close(self, payload: bytes) -> bytes:
        if self.state != OPEN:
            return b""
        self.state = CLOSING
        self._fast_send = False
        return self._frame(0x88, payload)

    def _queue(self, frame: bytes) -> None:
        if self._out is None:
            self._out = [frame]
        else:
            self._out.append(frame)

    def data_to_send(self) -> bytes:
        """Return (and forget) bytes queued while receiving: pongs, close echo, error close."""
        out = self._out
        if not out:
            return b""
        self._out = None
        return out[0] if len(out) == 1 else b"".join(out)

    def _frame(self, b0: int, data: bytes) -> bytes:
        """Encode one frame with the minimal length form (RFC 6455 5.2)."""
        n = len(data)
        if self._is_client:
            # RFC 6455 5.3: a fresh, unpredictable masking key for every frame.
            mask = self._rng(4)
            if n < 126:
                hdr = bytes((b0, 0x80 | n))
            elif n < 0x10000:
                hdr = S16.pack(b0, 0xFE, n)
            else:
                hdr = S64.pack(b0, 0xFF, n)
            return b"".join((hdr, mask, apply_mask(data, mask)))
        return unmasked_frame(b0, data)

"""The envelope of a hub message relayed through Redis pub/sub (``mgpy.pubsub.redis``).

On the channel ``<prefix><topic>`` a message published by an mgpy hub reads::

    mgpy1 <id> <op> <node>:<seq> <event>\\n<data>

``id`` is the cluster-wide message id (Redis' INCR, added by the publishing script, which
writes ``mgpy1 <id>`` in front of what ``envelope_tail`` returns), ``op`` the WebSocket
opcode (1 text, 2 binary), ``node:seq`` the publishing process and its own sequence
number (how a publisher recognises its own message coming back), ``event`` the SSE event
name (empty: none).  Anything else on the channel is not an envelope: ``parse_envelope``
returns None and the hub delivers it as it is.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["MAGIC", "Envelope", "envelope_tail", "parse_envelope"]

#: what every envelope starts with (the format's version)
MAGIC: Final = b"mgpy1"


class Envelope(NamedTuple):
    """A parsed envelope; ``node``/``seq`` are b"" / None when the origin is not ours."""

    ident: int
    op: int
    node: bytes
    seq: int | None
    event: str | None
    data: bytes


def envelope_tail(op: int, node: bytes, seq: int, event: str | None, data: bytes) -> bytes:
    """The envelope after ``mgpy1 <id>``: `` <op> <node>:<seq> <event>\\n<data>``."""
    ev = event.encode() if event else b""
    return b" %d %s:%d %s\n%s" % (op, node, seq, ev, data)


def parse_envelope(data: bytes) -> Envelope | None:
    """Read an envelope; None for a message that is not one."""
    if not data.startswith(MAGIC):
        return None
    nl = data.find(b"\n")
    if nl < 0:
        return None
    fields = data[len(MAGIC) + 1 : nl].split(b" ", 3)
    if len(fields) != 4 or not fields[0].isdigit() or fields[1] not in (b"1", b"2"):
        return None
    ident, op, origin, event = fields
    node, _, seq = origin.partition(b":")
    return Envelope(
        int(ident),
        int(op),
        node,
        int(seq) if seq.isdigit() else None,
        event.decode("utf-8", "replace") or None,
        data[nl + 1 :],
    )

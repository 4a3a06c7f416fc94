"""WebSocket echo and push on mgpy (permessage-deflate on, its default).

A text message "push" broadcasts a text frame holding repr(time.monotonic()), taken once
at broadcast start, to every WebSocket connection; "push SIZE" broadcasts a JSON text of
SIZE bytes stamped the same way (push_message.py).  The push goes out with
mgpy.ws_broadcast, which builds each distinct frame once (compressed once for every
connection that agreed the same parameters).  Any other message is echoed with its own
opcode.  Compression is whatever each client negotiated: none when it offers none.
"""

from __future__ import annotations

import argparse
from typing import Any

from push_message import push_message, push_size

import mgpy
from mgpy import Ev

MGR: Any = None


def handler(c: Any, ev: int, ev_data: Any) -> None:
    """Echo each message, or broadcast the clock on "push"."""
    if ev == Ev.WS_FRAME:
        size = push_size(ev_data.data) if ev_data.opcode == mgpy.WS_OP_TEXT else None
        if size is not None:
            mgpy.ws_broadcast(MGR.connections, mgpy.WS_OP_TEXT, push_message(size))
        else:
            c.send_websocket_frame(ev_data.opcode, ev_data.data)


def main() -> None:
    """Listen on 127.0.0.1:PORT and poll forever."""
    global MGR
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--compress", action="store_true", help="(the default: accepted for symmetry)")
    args = ap.parse_args()
    MGR = mgpy.Manager()
    lc = MGR.bind(f"127.0.0.1:{args.port}", handler)
    lc.set_protocol_http_websocket()
    while True:
        MGR.poll(1000)


if __name__ == "__main__":
    main()

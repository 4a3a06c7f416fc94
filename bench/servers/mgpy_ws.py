"""WebSocket echo and push on mgpy.

A text message "push" broadcasts a text frame holding repr(time.monotonic()), taken once
at broadcast start, to every WebSocket connection in mgr.connections; any other message is
echoed with its own opcode.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import mgpy
from mgpy import Ev, F

MGR: Any = None


def handler(c: Any, ev: int, ev_data: Any) -> None:
    """Echo each message, or broadcast the clock on "push"."""
    if ev == Ev.WS_FRAME:
        if ev_data.opcode == mgpy.WS_OP_TEXT and ev_data.data == b"push":
            stamp = repr(time.monotonic())
            for other in MGR.connections:
                if other.flags & F.IS_WEBSOCKET:
                    other.send_websocket_frame(mgpy.WS_OP_TEXT, stamp)
        else:
            c.send_websocket_frame(ev_data.opcode, ev_data.data)


def main() -> None:
    """Listen on 127.0.0.1:PORT and poll forever."""
    global MGR
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    MGR = mgpy.Manager()
    lc = MGR.bind(f"127.0.0.1:{args.port}", handler)
    lc.set_protocol_http_websocket()
    while True:
        MGR.poll(1000)


if __name__ == "__main__":
    main()

"""WebSocket peer on aiohttp (web.WebSocketResponse, compression off, no heartbeat).

Same behaviour as mgpy_ws.py: a text message "push" sends repr(time.monotonic()), taken
once at broadcast start, to every open WebSocket in turn (await send_str); any other
message is echoed with its own type.
"""

from __future__ import annotations

import argparse
import time

from aiohttp import WSMsgType, web

CONNS: set[web.WebSocketResponse] = set()


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    """Echo each message, or broadcast the clock on "push"."""
    ws = web.WebSocketResponse(compress=False, max_msg_size=2**24)
    await ws.prepare(request)
    CONNS.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if msg.data == "push":
                    stamp = repr(time.monotonic())
                    for other in list(CONNS):
                        if not other.closed:
                            await other.send_str(stamp)
                else:
                    await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    finally:
        CONNS.discard(ws)
    return ws


def main() -> None:
    """Serve WebSockets at / on 127.0.0.1:PORT."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    app = web.Application()
    app.router.add_get("/", ws_handler)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()

"""WebSocket peer on aiohttp (web.WebSocketResponse, no heartbeat; --compress: compress=True).

Same behaviour as mgpy_ws.py: a text message "push" sends repr(time.monotonic()), taken
once at broadcast start, to every open WebSocket in turn (await send_str); "push SIZE" a
JSON text of SIZE bytes stamped the same way (push_message.py); any other message is
echoed with its own type.  Without --compress permessage-deflate is refused; with it,
aiohttp's server defaults apply (compress=True: it accepts the client's offer).
"""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web
from push_message import push_message, push_size

CONNS: set[web.WebSocketResponse] = set()
COMPRESS = False


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    """Echo each message, or broadcast the clock on "push"."""
    ws = web.WebSocketResponse(compress=COMPRESS, max_msg_size=2**24)
    await ws.prepare(request)
    CONNS.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                size = push_size(msg.data)
                if size is not None:
                    text = push_message(size)
                    for other in list(CONNS):
                        if not other.closed:
                            await other.send_str(text)
                else:
                    await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    finally:
        CONNS.discard(ws)
    return ws


def main() -> None:
    """Serve WebSockets at / on 127.0.0.1:PORT."""
    global COMPRESS
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--compress", action="store_true", help="accept permessage-deflate")
    args = ap.parse_args()
    COMPRESS = args.compress
    app = web.Application()
    app.router.add_get("/", ws_handler)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()

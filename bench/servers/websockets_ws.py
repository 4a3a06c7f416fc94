"""WebSocket peer on the `websockets` library (asyncio server, no pings; --compress: its
default permessage-deflate, else none).

Same behaviour as mgpy_ws.py: a text message "push" broadcasts repr(time.monotonic()),
taken once at broadcast start, to every open connection (websockets.broadcast); "push
SIZE" a JSON text of SIZE bytes stamped the same way (push_message.py); any other message
is echoed with its own type.
"""

from __future__ import annotations

import argparse
import asyncio

import websockets
from push_message import push_message, push_size
from websockets.asyncio.server import ServerConnection, broadcast, serve

CONNS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    """Echo each message, or broadcast the clock on "push"."""
    CONNS.add(ws)
    try:
        async for msg in ws:
            size = push_size(msg) if isinstance(msg, str) else None
            if size is not None:
                broadcast(CONNS, push_message(size))
            else:
                await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    finally:
        CONNS.discard(ws)


async def run(port: int, compress: bool) -> None:
    """Serve on 127.0.0.1:port forever."""
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression="deflate" if compress else None,
        max_size=2**24,
        ping_interval=None,
        backlog=1024,
    ) as server:
        await server.serve_forever()


def main() -> None:
    """Parse options and run the server."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--compress", action="store_true", help="negotiate permessage-deflate")
    args = ap.parse_args()
    asyncio.run(run(args.port, args.compress))


if __name__ == "__main__":
    main()

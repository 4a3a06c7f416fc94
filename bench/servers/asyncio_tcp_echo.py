"""Raw TCP echo peer: an asyncio Protocol that writes back every chunk it receives.

`--uvloop` runs the same Protocol on uvloop's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast


class Echo(asyncio.Protocol):
    """Echo every received chunk straight back on the transport."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        """Write the chunk back."""
        self.transport.write(data)


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:port forever."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Parse options and run the server."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.port))
    else:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()

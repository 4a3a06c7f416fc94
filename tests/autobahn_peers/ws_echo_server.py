"""Reference WebSocket echo server for the Autobahn harness, built on `websockets`.

Strategy: the stand-in for mgpy's server when validating tools/autobahn/run.py. Every data
message is sent back to its sender with the same opcode; the `websockets` library does
the protocol work (validation, close codes, UTF-8), which is known to be Autobahn-clean.
Compression is disabled (sections 12/13 are excluded by the harness), keepalive pings are
off so they cannot disturb a case, and the message cap is 16 MiB because section 9 sends
messages that large. Listens on 127.0.0.1 only. Not a pytest module (no test_ prefix).

Usage: .venv/bin/python tests/autobahn_peers/ws_echo_server.py --port N
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import websockets.asyncio.messages
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE = 16 * 1024 * 1024  # Autobahn 9.1.6 / 9.2.6: 16 MiB messages
# websockets >= 15 refuses messages of more than 4096 fragments (1009 "too many
# fragments"); Autobahn 9.3.1 / 9.4.1 send 4 MiB as 64-byte frames: one text/binary
# frame then 65536 continuation frames, 65537 frames in all.
websockets.asyncio.messages.MAX_FRAGMENTS = 1 << 17


async def echo(ws: ServerConnection) -> None:
    """Send every message back as it came (text stays text, binary stays binary)."""
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


async def run(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        echo,
        host,
        port,
        compression=None,
        max_size=MAX_MESSAGE,
        max_queue=None,
        ping_interval=None,
        write_limit=2**20,
    ):
        print(f"ws_echo_server: listening on ws://{host}:{port}", flush=True)
        await stop


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    asyncio.run(run(args.host, args.port))


if __name__ == "__main__":
    main()

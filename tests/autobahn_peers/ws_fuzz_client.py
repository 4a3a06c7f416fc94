"""Reference Autobahn fuzzing-server client, built on `websockets`.

Strategy: the stand-in for mgpy's Autobahn client when validating tools/autobahn/run.py.
It follows the protocol every Autobahn client follows: ask `/getCaseCount`, then for
N = 1..count connect to `/runCase?case=N&agent=AGENT` and echo every data message back
with its opcode until the fuzzing server closes, then connect to
`/updateReports?agent=AGENT` so the server writes its reports. A case whose connection
fails is the fuzzing server's business to judge, so errors inside a case are swallowed;
errors talking to the control endpoints are not. Compression is disabled, keepalive
pings are off, messages up to 16 MiB are accepted (section 9), and no proxy is used.
Not a pytest module (no test_ prefix).

Usage: .venv/bin/python tests/autobahn_peers/ws_fuzz_client.py --url ws://127.0.0.1:9001
           --agent websockets
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import quote

import websockets.asyncio.messages
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

MAX_MESSAGE = 16 * 1024 * 1024  # Autobahn 9.1.6 / 9.2.6: 16 MiB messages
# websockets >= 15 refuses messages of more than 4096 fragments (1009 "too many
# fragments"); Autobahn 9.3.1 / 9.4.1 send 4 MiB as 64-byte frames: one text/binary
# frame then 65536 continuation frames, 65537 frames in all.
websockets.asyncio.messages.MAX_FRAGMENTS = 1 << 17
OPTIONS: dict[str, Any] = {
    "compression": None,
    "max_size": MAX_MESSAGE,
    "max_queue": None,
    "ping_interval": None,
    "proxy": None,
    "open_timeout": 30,
}


async def get_case_count(url: str) -> int:
    """Ask the fuzzing server how many cases its spec selects."""
    async with connect(f"{url}/getCaseCount", **OPTIONS) as ws:
        return int(json.loads(await ws.recv()))


async def run_case(url: str, case: int, agent: str) -> None:
    """Run one case: echo every message until the fuzzing server ends the connection."""
    with contextlib.suppress(WebSocketException, OSError):
        async with connect(f"{url}/runCase?case={case}&agent={quote(agent)}", **OPTIONS) as ws:
            async for message in ws:
                await ws.send(message)


async def update_reports(url: str, agent: str) -> None:
    """Tell the fuzzing server to write its reports, and wait until it has."""
    async with connect(f"{url}/updateReports?agent={quote(agent)}", **OPTIONS) as ws:
        with contextlib.suppress(WebSocketException):
            async for _ in ws:
                pass


async def run(url: str, agent: str) -> None:
    """Run every case the fuzzing server offers, then have it write the reports."""
    count = await get_case_count(url)
    print(f"ws_fuzz_client: {count} cases", flush=True)
    for case in range(1, count + 1):
        await run_case(url, case, agent)
    await update_reports(url, agent)
    print("ws_fuzz_client: done", flush=True)


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("--agent", required=True, help="agent name shown in the report")
    args = parser.parse_args()
    asyncio.run(run(args.url.rstrip("/"), args.agent))


if __name__ == "__main__":
    main()

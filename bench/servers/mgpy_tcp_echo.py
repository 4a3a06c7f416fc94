"""Raw TCP echo on mgpy: on RECV, send back everything in recv_mbuf and clear it."""

from __future__ import annotations

import argparse
from typing import Any

import mgpy
from mgpy import Ev


def handler(c: Any, ev: int, ev_data: Any) -> None:
    """Echo whatever arrived."""
    if ev == Ev.RECV:
        c.send(bytes(c.recv_mbuf))
        c.recv_mbuf.clear()


def main() -> None:
    """Listen on 127.0.0.1:PORT and poll forever."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    mgr = mgpy.Manager()
    mgr.bind(f"127.0.0.1:{args.port}", handler)
    while True:
        mgr.poll(1000)


if __name__ == "__main__":
    main()

"""A line-based chat over raw TCP: how to plug your own protocol into mgpy.

mgpy's protocols are just handlers that sit in front of yours (mongoose's
``proto_handler``).  ``line_protocol`` below turns the byte stream in
``c.recv_mbuf`` into one ``EV_LINE`` event per line and forwards every other
event unchanged, exactly the way the built-in HTTP handler turns bytes into
``Ev.HTTP_REQUEST``.  The chat server on top only ever sees whole lines.

Try it:  python examples/tcp_chat.py --listen 127.0.0.1:9000
         nc 127.0.0.1 9000      (in two terminals; type /nick NAME, then chat)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import mgpy
from mgpy import Ev, F

#: our protocol's event number: user events start at 1000, clear of mgpy's
EV_LINE = 1000
#: longest line accepted; a longer one closes the connection (every buffer has a limit)
MAX_LINE = 4096


def line_protocol(c: mgpy.Connection, ev: int, ev_data: Any) -> None:
    """Protocol handler: split received bytes into lines, deliver EV_LINE(str) per line."""
    c.handler(c, ev, ev_data)  # forward the raw event first, as mongoose does
    if ev != Ev.RECV:
        return
    mb = c.recv_mbuf
    while not c.flags & F.CLOSE_IMMEDIATELY:
        end = mb.find(b"\n")
        if end < 0:
            if mb.len > MAX_LINE:
                c.send(b"* line too long, bye\n")
                c.flags |= F.SEND_AND_CLOSE
                mb.clear()
            return
        line = bytes(mb.view()[:end]).rstrip(b"\r").decode("utf-8", "replace")
        mb.remove(end + 1)
        c.handler(c, EV_LINE, line)


class Chat:
    """The application: nicknames and broadcasting, written against EV_LINE only."""

    def __init__(self, mgr: mgpy.Manager) -> None:
        self.mgr = mgr

    def members(self) -> list[mgpy.Connection]:
        return [
            c for c in self.mgr.connections if c.user_data is not None and not c.flags & F.LISTENING
        ]

    def say(self, text: str, exclude: mgpy.Connection | None = None) -> None:
        for c in self.members():
            if c is not exclude:
                c.send(text + "\n")

    def handler(self, c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == Ev.ACCEPT:
            c.user_data = f"guest{c.peer[1]}"
            c.send(f"* welcome {c.user_data}; /nick NAME to rename, /who to list\n")
            self.say(f"* {c.user_data} joined", exclude=c)
        elif ev == EV_LINE:
            line = ev_data.strip()
            if line.startswith("/nick "):
                old, c.user_data = c.user_data, line[6:].strip()[:32] or c.user_data
                self.say(f"* {old} is now {c.user_data}")
            elif line == "/who":
                c.send("* here: " + ", ".join(str(m.user_data) for m in self.members()) + "\n")
            elif line:
                self.say(f"<{c.user_data}> {line}", exclude=c)
        elif ev == Ev.CLOSE and c.user_data is not None and not c.flags & F.LISTENING:
            name, c.user_data = c.user_data, None
            self.say(f"* {name} left")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Line-based TCP chat: a custom protocol on mgpy.")
    ap.add_argument("--listen", default="127.0.0.1:9000", help="address (default 127.0.0.1:9000)")
    args = ap.parse_args(argv)
    with mgpy.Manager() as mgr:
        chat = Chat(mgr)
        try:
            lc = mgr.bind(args.listen, chat.handler)
        except mgpy.Error as e:
            print(f"tcp_chat: {e}", file=sys.stderr)
            return 2
        lc.proto_handler = line_protocol  # accepted connections inherit it
        print(f"chat on tcp://{lc.local[0]}:{lc.local[1]}", flush=True)
        try:
            while True:
                mgr.poll(1000)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

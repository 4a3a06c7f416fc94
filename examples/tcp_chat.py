"""A line-based chat over raw TCP: how to plug your own protocol into mgpy.

mgpy's protocols are handlers that sit in front of yours (mongoose's
``proto_handler``).  ``line_protocol`` below turns the byte stream in
``c.recv_mbuf`` into one ``EV_LINE`` event per line and forwards every other event
unchanged, exactly the way the built-in HTTP handler turns bytes into
``Ev.HTTP_REQUEST``.  It uses only the documented protocol interface
(docs/protocols.md), like HTTP and WebSocket do:

- per-connection state in ``c.proto_data``;
- an idle timeout with ``c.call_later`` (a handle, pushed back with ``reschedule`` on
  every line, cancelled with the connection when it closes);
- a polite goodbye: the last words, then ``c.shutdown_write()`` (FIN after the queued
  data), and the client is given a few seconds to close its side;
- ``c.error_reason`` + ``c.close()`` when the client breaks the protocol (an over-long
  line): our message is written, then the handler gets ERROR(reason) and CLOSE.

The chat server on top only ever sees whole lines (and EV_GOODBYE when its client is
being let go).

Try it:  python examples/tcp_chat.py --listen 127.0.0.1:9000
         nc 127.0.0.1 9000      (in two terminals; type /nick NAME, then chat; /quit)
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import mgpy
from mgpy import Ev

#: our protocol's events: user events start at 1000, clear of mgpy's
EV_LINE = 1000  #: ev_data: the line (str, without its line end)
EV_GOODBYE = 1001  #: ev_data: why the client is let go (idle, quit); the handler may say bye
#: longest line accepted; a longer one fails the connection (every buffer has a limit)
MAX_LINE = 4096
#: after our goodbye (FIN), how long the client has to close its side
LINGER = 5.0


class LineState:
    """The protocol's per-connection state, in ``c.proto_data``."""

    __slots__ = ("idle", "idle_timer", "leaving")

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self.idle_timer: mgpy.TimerHandle | None = None
        self.leaving = False


def line_protocol(c: mgpy.Connection, ev: int, ev_data: Any) -> None:
    """Protocol handler: split received bytes into lines, deliver EV_LINE(str) per line."""
    if ev == Ev.ACCEPT:
        st = c.proto_data = LineState(c.listener.proto_data if c.listener else 0.0)
        if st.idle:
            st.idle_timer = c.call_later(st.idle, goodbye, c, "idle")
    c.handler(c, ev, ev_data)  # forward the raw event, as mongoose does
    st = c.proto_data
    if ev != Ev.RECV or not isinstance(st, LineState):
        return
    mb = c.recv_mbuf
    if st.leaving:
        mb.clear()  # we said goodbye: whatever still comes is dropped
        return
    if st.idle_timer is not None:
        st.idle_timer.reschedule(st.idle)  # cheap: no timer heap work for a later deadline
    while not c.is_closing and not st.leaving:
        end = mb.find(b"\n")
        if end < 0:
            if mb.len > MAX_LINE:
                c.send(b"* line too long, bye\n")
                c.error_reason = f"line longer than {MAX_LINE} bytes"
                c.close()  # after the message: then ERROR(reason), CLOSE
                mb.clear()
            return
        line = bytes(mb.view()[:end]).rstrip(b"\r").decode("utf-8", "replace")
        mb.remove(end + 1)
        c.handler(c, EV_LINE, line)


def goodbye(c: mgpy.Connection, why: str) -> None:
    """Let the client go politely: the handler's last words, FIN, then wait for its close."""
    st = c.proto_data
    if not isinstance(st, LineState) or st.leaving or c.is_closing:
        return
    st.leaving = True
    if st.idle_timer is not None:
        st.idle_timer.cancel()
    c.handler(c, EV_GOODBYE, why)
    c.shutdown_write()  # the client reads everything queued, then EOF
    c.call_later(LINGER, c.abort)  # a client that never closes its side is cut off


class Chat:
    """The application: nicknames and broadcasting, written against EV_LINE only."""

    def __init__(self, mgr: mgpy.Manager) -> None:
        self.mgr = mgr

    def members(self) -> list[mgpy.Connection]:
        return [
            c
            for c in self.mgr.connections
            if c.user_data is not None
            and not c.is_listener
            and not (isinstance(c.proto_data, LineState) and c.proto_data.leaving)
        ]

    def say(self, text: str, exclude: mgpy.Connection | None = None) -> None:
        for c in self.members():
            if c is not exclude:
                c.send(text + "\n")

    def handler(self, c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == Ev.ACCEPT:
            c.user_data = f"guest{c.peer[1]}"
            c.send(f"* welcome {c.user_data}; /nick NAME to rename, /who to list, /quit\n")
            self.say(f"* {c.user_data} joined", exclude=c)
        elif ev == EV_LINE:
            line = ev_data.strip()
            if line.startswith("/nick "):
                old, c.user_data = c.user_data, line[6:].strip()[:32] or c.user_data
                self.say(f"* {old} is now {c.user_data}")
            elif line == "/who":
                c.send("* here: " + ", ".join(str(m.user_data) for m in self.members()) + "\n")
            elif line == "/quit":
                goodbye(c, "quit")
            elif line:
                self.say(f"<{c.user_data}> {line}", exclude=c)
        elif ev == EV_GOODBYE:
            c.send("* idle too long, bye\n" if ev_data == "idle" else "* bye\n")
            self.say(f"* {c.user_data} left", exclude=c)
        elif ev == Ev.CLOSE and c.user_data is not None and not c.is_listener:
            name, c.user_data = c.user_data, None
            st = c.proto_data
            if not (isinstance(st, LineState) and st.leaving):
                self.say(f"* {name} left")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Line-based TCP chat: a custom protocol on mgpy.")
    ap.add_argument("--listen", default="127.0.0.1:9000", help="address (default 127.0.0.1:9000)")
    ap.add_argument(
        "--idle",
        type=float,
        default=300.0,
        help="seconds of silence before a client is let go (0 = never; default 300)",
    )
    args = ap.parse_args(argv)
    stop: list[int] = []
    with mgpy.Manager() as mgr:

        def on_signal(*_: object) -> None:
            stop.append(1)
            mgr.wakeup()  # poll() returns now, not at its timeout

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        chat = Chat(mgr)
        try:
            lc = mgr.bind(args.listen, chat.handler)
        except mgpy.Error as e:
            print(f"tcp_chat: {e}", file=sys.stderr)
            return 2
        lc.proto_handler = line_protocol  # accepted connections inherit it
        lc.proto_data = args.idle  # the listener's protocol state: the idle timeout
        print(f"chat on tcp://{lc.local[0]}:{lc.local[1]}", flush=True)
        while not stop:
            mgr.poll(1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())

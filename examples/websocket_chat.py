"""WebSocket chat: a page and a broadcast, mongoose's classic ``websocket_chat`` example.

``GET /`` serves a one-file chat page; the page opens a WebSocket to ``/ws``.
Every text message a client sends is prefixed with the sender's address and
pushed to every *other* WebSocket client (the page shows your own lines
itself), and joins and leaves are announced, exactly like mongoose's C
example.  Pushing is just a loop over ``mgr.connections``; code running on
another thread would use ``mgr.broadcast(fn, data)`` instead, which runs
``fn`` on the loop thread for every connection.

A chat must not let one stuck browser tab make the server buffer without
bound: with ``Limits(ws_slow_policy="drop")`` a client whose send queue
passes ``ws_send_queue`` simply misses messages (``mgpy.ws_dropped(c)`` counts
them), and a message larger than ``ws_max_message`` closes its sender with 1009.

Try it:  python examples/websocket_chat.py --listen 127.0.0.1:8000
         then open http://127.0.0.1:8000/ in two browser windows.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import mgpy
from mgpy import Ev, F

#: the longest chat message accepted (bigger ones close the sender with 1009)
MAX_MESSAGE = 16 * 1024
LIMITS = mgpy.Limits(ws_max_message=MAX_MESSAGE, ws_send_queue=256 * 1024, ws_slow_policy="drop")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mgpy WebSocket chat</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; }
  .me { color: #06c; } .sys { color: #888; }
  form { display: flex; gap: .5em; margin-top: .5em; } #text { flex: 1; }
</style>
</head>
<body>
<h1>WebSocket chat</h1>
<p id="status">connecting&hellip;</p>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" maxlength="1000" autofocus>
<button>Send</button></form>
<script>
const log = document.getElementById("log");
const status = document.getElementById("status");
function show(text, cls) {
  const div = document.createElement("div");
  div.textContent = text;
  if (cls) div.className = cls;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
}
let ws;
function connect() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => { status.textContent = "connected"; };
  ws.onmessage = (e) => show(e.data, ["++ ", "-- "].includes(e.data.slice(0, 3)) ? "sys" : "");
  ws.onclose = () => {
    status.textContent = "disconnected, retrying in 2 s";
    setTimeout(connect, 2000);
  };
}
connect();
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  if (input.value && ws.readyState === WebSocket.OPEN) {
    ws.send(input.value);
    show("me: " + input.value, "me");
    input.value = "";
  }
};
</script>
</body>
</html>
"""


class ChatServer:
    """The chat: serves the page, relays messages between WebSocket clients."""

    def __init__(self, listen: str) -> None:
        self.mgr = mgpy.Manager(limits=LIMITS)
        self.listener = self.mgr.bind(listen, self.handler)
        self.listener.set_protocol_http_websocket()
        self.stop: list[int] = []  # the signals that ask run() to return

    def url(self) -> str:
        host, port = self.listener.local[0], self.listener.local[1]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def broadcast(self, sender: mgpy.Connection, text: str) -> None:
        """Send ``text`` to every chat client except ``sender`` (mongoose's broadcast())."""
        print(text, flush=True)  # local echo, as the C example does
        for c in self.mgr.connections:
            if c is not sender and c.flags & F.IS_WEBSOCKET:
                c.send_websocket_frame(mgpy.WS_OP_TEXT, text)

    @staticmethod
    def name(c: mgpy.Connection) -> str:
        host, port = c.peer[0], c.peer[1]
        return f"{host}:{port}"

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            if ev_data.method in ("GET", "HEAD") and ev_data.uri == "/":
                mgpy.http_reply(c, 200, PAGE, {"Content-Type": "text/html; charset=utf-8"})
            else:
                mgpy.http_send_error(c, 404)
        elif ev == Ev.WS_HANDSHAKE_REQUEST:
            if ev_data.uri != "/ws":
                mgpy.http_send_error(c, 404)
        elif ev == Ev.WS_HANDSHAKE_DONE:
            self.broadcast(c, f"++ joined {self.name(c)}")
        elif ev == Ev.WS_FRAME:
            if ev_data.opcode == mgpy.WS_OP_TEXT:
                self.broadcast(c, f"{self.name(c)} {ev_data.text}")
        elif ev == Ev.CLOSE:
            if c.flags & F.IS_WEBSOCKET:
                self.broadcast(c, f"-- left {self.name(c)}")

    def stop_on_signals(self) -> None:
        """Make SIGINT (Ctrl-C) and SIGTERM end ``run`` cleanly."""

        def on_signal(signum: int, frame: object) -> None:
            self.stop.append(signum)
            self.mgr.wakeup()  # return from poll() now, not at its timeout

        # SIGINT too: a chat started in the background (`... &`) ignores Ctrl-C otherwise
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    def run(self) -> None:
        """Poll until stopped, then close every connection."""
        try:
            while not self.stop:
                self.mgr.poll(500)
        finally:
            self.mgr.close()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve the chat."""
    p = argparse.ArgumentParser(
        description="A WebSocket chat server: GET / serves the chat page, ws://HOST/ws relays "
        "every message to the other participants (mongoose's websocket_chat example)."
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:8000",
        help="address to listen on, e.g. 127.0.0.1:8000 or 0.0.0.0:8000 (port 0 picks a free one)",
    )
    args = p.parse_args(argv)
    try:
        server = ChatServer(args.listen)
    except mgpy.Error as e:
        print(f"websocket_chat: error: {e}", file=sys.stderr)
        return 2
    server.stop_on_signals()  # before saying it is ready: a signal from then on is handled
    print(f"websocket_chat: open {server.url()} in two browser windows", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

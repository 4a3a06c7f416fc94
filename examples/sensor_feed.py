"""A sensor feed pushed to browsers: a worker thread, Manager.broadcast and timers.

The "sensor" runs in its own thread (as a real driver would block on a bus or
a serial port) and hands every reading to the poll loop with
``mgr.broadcast(fn, reading)`` -- the one thread-safe entry point.  ``fn``
runs on the loop for every connection and pushes the reading to WebSocket
clients.  A connection timer on the listener logs a summary every few
seconds, and the page at / shows the live value.

Try it:  python examples/sensor_feed.py --listen 127.0.0.1:8001   then open the URL.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import signal
import sys
import threading
import time
from typing import Any

import mgpy
from mgpy import Ev, F

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>mgpy sensor feed</title>
<style>body{font:16px system-ui,sans-serif;margin:2rem;color:#123}#v{font-size:4rem;font-weight:700}
#s{color:#666}</style></head><body><h1>Sensor feed</h1>
<div id="v">&ndash;</div><div id="s">connecting</div>
<script>
function connect(){const ws=new WebSocket((location.protocol==="https:"?"wss://":"ws://")+location.host+"/ws");
ws.onopen=()=>{document.getElementById("s").textContent="live"};
ws.onmessage=(e)=>{const r=JSON.parse(e.data);
document.getElementById("v").textContent=r.value.toFixed(2)+" \\u00b0C";
document.getElementById("s").textContent="reading #"+r.seq};
ws.onclose=()=>{document.getElementById("s").textContent="reconnecting";setTimeout(connect,1000)};}
connect();
</script></body></html>"""

log = logging.getLogger("sensor_feed")


def push_reading(c: mgpy.Connection, ev: int, reading: Any) -> None:
    """Runs on the poll loop for every connection (ev is Ev.POLL): push to WebSockets."""
    if c.flags & F.IS_WEBSOCKET:
        c.send_websocket_frame(mgpy.WS_OP_TEXT, reading)


def sensor(mgr: mgpy.Manager, period: float, stop: threading.Event) -> None:
    """The worker thread: read the sensor, hand each reading to the loop."""
    seq = 0
    while not stop.wait(period):
        seq += 1
        value = 21.0 + 2.0 * math.sin(seq / 20) + random.uniform(-0.1, 0.1)
        mgr.broadcast(push_reading, json.dumps({"seq": seq, "value": value, "time": time.time()}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Push readings from a worker thread to browsers.")
    ap.add_argument("--listen", default="127.0.0.1:8001", help="address (default 127.0.0.1:8001)")
    ap.add_argument(
        "--period", type=float, default=0.5, help="seconds between readings (default 0.5)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    def handler(c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            if ev_data.uri == "/":
                mgpy.http_reply(c, 200, PAGE, {"Content-Type": "text/html; charset=utf-8"})
            else:
                mgpy.http_send_error(c, 404)
        elif ev == Ev.TIMER:  # only the listener has a timer: a periodic summary
            n = sum(1 for x in mgr.connections if x.flags & F.IS_WEBSOCKET)
            log.info("%d WebSocket client(s) watching", n)
            c.set_timer(time.time() + 5)

    with mgpy.Manager() as mgr:
        try:
            lc = mgr.bind(args.listen, handler)
        except mgpy.Error as e:
            print(f"sensor_feed: {e}", file=sys.stderr)
            return 2
        lc.set_protocol_http_websocket()
        lc.set_timer(time.time() + 5)
        stop = threading.Event()
        worker = threading.Thread(target=sensor, args=(mgr, args.period, stop), daemon=True)
        worker.start()
        stopping: list[int] = []

        def on_signal(signum: int, frame: object) -> None:
            stopping.append(signum)  # leave the loop below; the `with` then closes everything
            mgr.wakeup()  # now, not when poll() times out

        signal.signal(signal.SIGINT, on_signal)  # Ctrl-C, also when started in the background
        signal.signal(signal.SIGTERM, on_signal)  # kill, systemd, docker stop
        print(f"sensor feed on http://{lc.local[0]}:{lc.local[1]}/", flush=True)
        try:
            while not stopping:
                mgr.poll(1000)
        finally:
            stop.set()
            worker.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())

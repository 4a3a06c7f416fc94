"""Push at scale: worker processes on one port, and publish-to-receive latency through Redis.

Strategy (bench/harness.py's rules: servers pinned to SERVER_CPU, generators to GEN_CPU,
CPU of each side measured around every run):

1. Hello world, HTTP/1.1 keep-alive, ``wrk -t1 -c50``: one mgpy process, then
   ``run_workers(1)`` and ``run_workers(2)`` (the mgpy.workers supervisor with workers
   sharing the port through SO_REUSEPORT).  Reported: requests/s and the server's CPU
   time per request (all its processes).  Target: CPU per request with 2 workers within
   10 % of 1 worker (workers add no per-request work).  On a machine whose server side
   has one CPU (this 2-vCPU VM: the other runs wrk) two workers cannot serve more
   requests/s than one; ``--server-cpus 0-1`` gives them more CPUs where there are.
2. Publish-to-receive latency: a real ``redis-server`` (persistence off), ``--workers 2``
   each with a ``Hub(redis=...)``, SUBS WebSocket subscribers spread over the workers by
   the kernel (the split is reported), one publisher.  Each message carries
   ``time.time_ns()`` when it is sent; every subscriber's receive time minus that is
   one sample (the kernel's receive time stamp, SO_TIMESTAMPNS: the generator's own
   reading order does not count).  Messages go one at a time (the next when every
   subscriber has the last), after a warm-up.  Reported: p50/p99/max per delivery, the
   first subscriber's latency (publish, Redis, worker, one socket) and the time for the
   whole fan-out.

Results: a table on stdout, bench/results/push.json and bench/results/push.md.

    python bench/push_bench.py [--seconds 5] [--subs 1000] [--messages 200] [--quick]

The same file is the servers: ``push_bench.py serve-hello`` and ``serve-push``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import selectors
import shutil
import socket
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

import harness as h

PY = sys.executable
RESULTS = h.BENCH / "results"
SELF = str(Path(__file__).resolve())
HELLO = b"Hello, World!"
CONNS = 50
SUBS = 1000
TOPIC = "bench"
TARGET_CPU_GROWTH = 1.10  # CPU per request, 2 workers / 1 worker
#: Linux: the kernel stamps each received packet (SCM_TIMESTAMPNS has the same number), so
#: a delivery is timed when it reached the socket, not when the generator got to read it
SO_TIMESTAMPNS = 35


# ----------------------------------------------------------------------------------
# servers
# ----------------------------------------------------------------------------------
def serve_hello(port: int, workers: int) -> int:
    """Hello world on 127.0.0.1:PORT: one process (workers 0) or run_workers(N)."""
    import mgpy
    from mgpy.workers import Worker, run_workers

    def handler(c: Any, ev: int, ev_data: Any) -> None:
        if ev == mgpy.Ev.HTTP_REQUEST:
            mgpy.http_reply(c, 200, HELLO, headers={"Content-Type": "text/plain"})

    def one(w: Worker | None) -> None:
        mgr = mgpy.Manager()
        addr = w.listen if w is not None and w.listen else f"127.0.0.1:{port}"
        mgr.bind(addr, handler, reuse_port=w is not None).set_protocol_http_websocket()
        if w is not None:
            w.run(mgr)
        else:
            while True:
                mgr.poll(1000)

    if not workers:
        one(None)
        return 0
    return run_workers(workers, one, listen=f"127.0.0.1:{port}")


def serve_push(port: int, workers: int, redis: str) -> int:
    """/sub subscribes to TOPIC (and is told its worker), /pub publishes what it gets."""
    import mgpy
    from mgpy.pubsub import Hub
    from mgpy.workers import Worker, run_workers

    def one(w: Worker) -> None:
        mgr = mgpy.Manager()
        hub = Hub(mgr, redis)

        def handler(c: Any, ev: int, ev_data: Any) -> None:
            if ev == mgpy.Ev.WS_HANDSHAKE_DONE:
                if ev_data.uri == "/sub":
                    c.send_websocket_frame(mgpy.WS_OP_TEXT, f"w{w.index}")
                    hub.subscribe(c, TOPIC)
            elif ev == mgpy.Ev.WS_FRAME:
                hub.publish(TOPIC, ev_data.data)
            elif ev == mgpy.Ev.HTTP_REQUEST:  # readiness: 200 once Redis is linked
                mgpy.http_reply(c, 200 if hub.redis_up else 503, "")

        lc = mgr.bind(w.listen or f"127.0.0.1:{port}", handler, reuse_port=True, compression=None)
        lc.set_protocol_http_websocket()
        w.run(mgr)

    return run_workers(workers, one, listen=f"127.0.0.1:{port}")


# ----------------------------------------------------------------------------------
# hello world
# ----------------------------------------------------------------------------------
def hello_run(tmp: Path, workers: int, st: argparse.Namespace) -> dict[str, Any]:
    port = h.free_port()
    argv = [PY, SELF, "serve-hello", "--port", str(port), "--workers", str(workers)]
    srv = h.Server(f"hello-w{workers}", argv, port, tmp)
    srv.start()
    try:
        url = f"http://{h.HOST}:{port}/"
        h.wrk(url, CONNS, st.warmup)
        best: dict[str, Any] | None = None
        for _ in range(st.rounds):
            h.wait_quiet(5.0)
            meter = h.CpuMeter(srv.pid)
            meter.start()
            res = h.wrk(url, CONNS, st.seconds)
            load = meter.stop()
            rps = res["requests_per_s"]
            cpu_us = load.server_pct / 100.0 * load.wall / (rps * load.wall) * 1e6
            run = {"rps": rps, "cpu_us_per_request": cpu_us, "load": load.as_dict()}
            if best is None or rps > best["rps"]:
                best = run
        assert best is not None
        return best
    finally:
        srv.stop()


# ----------------------------------------------------------------------------------
# latency through Redis
# ----------------------------------------------------------------------------------
def _handshake(port: int, path: str) -> tuple[socket.socket, bytearray]:
    """A blocking WebSocket handshake; return the socket and what followed the 101."""
    s = socket.create_connection((h.HOST, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {h.HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(4096)
        if not data:
            raise h.BenchError(f"{path}: closed during the handshake")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        status = head.split(b"\r\n", 1)[0]
        raise h.BenchError(f"{path}: {status!r}")
    return s, bytearray(rest)


def _frames(buf: bytearray) -> list[bytes]:
    """Take whole unmasked server frames from ``buf`` (payloads < 64 KiB)."""
    out = []
    while len(buf) >= 2:
        n = buf[1] & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                break
            n = struct.unpack("!H", buf[2:4])[0]
            pos = 4
        if len(buf) < pos + n:
            break
        out.append(bytes(buf[pos : pos + n]))
        del buf[: pos + n]
    return out


def _masked(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


def wait_linked(port: int, timeout: float = 20.0) -> None:
    """Every worker answers 200 only once its Redis link is up: ask until a run of 20 ok."""
    deadline = time.monotonic() + timeout
    ok = 0
    while ok < 20:
        if time.monotonic() > deadline:
            raise h.BenchError("the workers did not link to Redis")
        with socket.create_connection((h.HOST, port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            ok = ok + 1 if s.recv(64).startswith(b"HTTP/1.1 200") else 0
        if not ok:
            time.sleep(0.05)


def _subscribe_all(
    port: int, subs: int, sel: selectors.BaseSelector, bufs: dict[socket.socket, bytearray]
) -> dict[str, int]:
    """Open ``subs`` /sub WebSockets; return how many each worker got (its greeting)."""
    split: dict[str, int] = {}
    for _ in range(subs):
        s, buf = _handshake(port, "/sub")
        while not (frames := _frames(buf)):
            buf += s.recv(4096)
        greeting = frames[0].decode()
        split[greeting] = split.get(greeting, 0) + 1
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        bufs[s] = bytearray()
        sel.register(s, selectors.EVENT_READ)
    return split


def latency_generator(port: int, subs: int, messages: int, warmup: int) -> dict[str, Any]:
    """Run in the generator process: connect, publish, measure; return the samples' stats."""
    h.raise_nofile()
    sel = selectors.DefaultSelector()
    bufs: dict[socket.socket, bytearray] = {}
    split = _subscribe_all(port, subs, sel, bufs)
    pub, _ = _handshake(port, "/pub")
    lat: list[float] = []
    fanout: list[float] = []
    first: list[float] = []
    cpu0 = time.process_time()
    for i in range(warmup + messages):
        t0 = time.time_ns()
        pub.sendall(_masked(b"%d %s" % (t0, b"x" * 40)))
        got = 0
        last = t0
        earliest = 0
        deadline = time.monotonic() + 10
        while got < subs:
            if time.monotonic() > deadline:
                raise h.BenchError(f"message {i}: {got} of {subs} subscribers got it")
            for key, _ in sel.select(1.0):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                data, anc, _flags, _addr = sock.recvmsg(65536, 64)
                now = _kernel_time(anc) or time.time_ns()
                buf = bufs[sock]
                buf += data
                for payload in _frames(buf):
                    if int(payload.split(b" ", 1)[0]) != t0:
                        continue  # an earlier message (cannot happen: one at a time)
                    got += 1
                    last = now
                    earliest = earliest or now
                    if i >= warmup:
                        lat.append((now - t0) / 1e6)
        if i >= warmup:
            fanout.append((last - t0) / 1e6)
            first.append((earliest - t0) / 1e6)
        time.sleep(0.005)  # pacing between messages: the system settles
    cpu = time.process_time() - cpu0
    lat.sort()
    fanout.sort()
    first.sort()
    return {
        "subscribers": subs,
        "split": split,
        "messages": messages,
        "p50_ms": _pct(lat, 50),
        "p99_ms": _pct(lat, 99),
        "max_ms": lat[-1],
        "mean_ms": statistics.fmean(lat),
        "first_p50_ms": _pct(first, 50),
        "first_p99_ms": _pct(first, 99),
        "fanout_p50_ms": _pct(fanout, 50),
        "fanout_p99_ms": _pct(fanout, 99),
        "gen_cpu_s": cpu,
    }


def _kernel_time(anc: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time (SO_TIMESTAMPNS, CLOCK_REALTIME ns) of what was read, or 0."""
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return int(sec * 1_000_000_000 + nsec)
    return 0


def _pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


def latency_run(tmp: Path, st: argparse.Namespace) -> dict[str, Any]:
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise h.BenchError("redis-server is not installed (tools/sysdeps.sh installs it)")
    rport = h.free_port()
    redis = h.Server(
        "redis",
        [redis_bin, "--port", str(rport), "--bind", h.HOST, "--save", "", "--appendonly", "no",
         "--dir", str(tmp)],
        rport,
        tmp,
    )  # fmt: skip
    redis.start()
    port = h.free_port()
    url = f"redis://{h.HOST}:{rport}/0"
    srv = h.Server("push-w2", [PY, SELF, "serve-push", "--port", str(port), "--redis", url],
                   port, tmp)  # fmt: skip
    try:
        srv.start()
        wait_linked(port)
        meter = h.CpuMeter(srv.pid)
        meter.start()
        r0 = h.tree_cpu_seconds(redis.pid)
        argv = [PY, SELF, "latency-gen", "--port", str(port), "--subs", str(st.subs),
                "--messages", str(st.messages), "--warmup", str(st.warmup_messages)]  # fmt: skip
        out = h.run_generator(argv, timeout=600)
        load = meter.stop()
        res: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        res["server_cpu_pct"] = round(load.server_pct, 1)
        res["redis_cpu_s"] = round(h.tree_cpu_seconds(redis.pid) - r0, 2)
        res["wall_s"] = round(load.wall, 2)
        return res
    finally:
        srv.stop()
        redis.stop()


# ----------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------
def report(hello: dict[int, dict[str, Any]], lat: dict[str, Any] | None, note: str) -> str:
    lines = [note, ""]
    lines.append("| Benchmark | mgpy | Target | Result |")
    lines.append("|---|---|---|---|")
    cells = []
    for w, r in sorted(hello.items()):
        name = "1 process" if w == 0 else f"--workers {w}"
        cells.append(f"{name}: {r['rps']:,.0f} req/s, {r['cpu_us_per_request']:.1f} µs CPU/req")
    verdict = "-"
    if 1 in hello and 2 in hello:
        growth = hello[2]["cpu_us_per_request"] / hello[1]["cpu_us_per_request"]
        verdict = "PASS" if growth <= TARGET_CPU_GROWTH else "MISS"
        verdict += f" ({growth:.2f}x)"
    lines.append(
        "| HTTP hello keep-alive, wrk -c50 | "
        + " · ".join(cells)
        + f" | CPU/req with 2 workers <= {TARGET_CPU_GROWTH:.2f}x 1 worker | {verdict} |"
    )
    if lat is not None:
        split = ", ".join(f"{k}: {v}" for k, v in sorted(lat["split"].items()))
        lines.append(
            f"| Publish -> receive, {lat['subscribers']} WebSockets over 2 workers via Redis "
            f"({split}), {lat['messages']} messages | p50 {lat['p50_ms']:.2f} ms · p99 "
            f"{lat['p99_ms']:.2f} ms · max {lat['max_ms']:.2f} ms; first subscriber p50 "
            f"{lat['first_p50_ms']:.2f} ms, p99 {lat['first_p99_ms']:.2f} ms; whole fan-out p50 "
            f"{lat['fanout_p50_ms']:.2f} ms, p99 {lat['fanout_p99_ms']:.2f} ms | - | - |"
        )
    lines += ["", "Load check (percent of one CPU):", "", "| Run | Server | Generator | Other |"]
    lines.append("|---|---|---|---|")
    for w, r in sorted(hello.items()):
        ld = r["load"]
        name = "1 process" if w == 0 else f"--workers {w}"
        lines.append(
            f"| hello / {name} | {ld['server_cpu_pct']:.0f}% | {ld['gen_cpu_pct']:.0f}% | "
            f"{ld['other_cpu_pct']:.0f}% |"
        )
    if lat is not None:
        lines.append(
            f"| latency (server = 2 workers; Redis used {lat['redis_cpu_s']} s CPU) | "
            f"{lat['server_cpu_pct']:.0f}% | {lat['gen_cpu_s'] / lat['wall_s'] * 100:.0f}% | "
            "- |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    s1 = sub.add_parser("serve-hello")
    s1.add_argument("--port", type=int, required=True)
    s1.add_argument("--workers", type=int, default=0)
    s2 = sub.add_parser("serve-push")
    s2.add_argument("--port", type=int, required=True)
    s2.add_argument("--redis", required=True)
    s2.add_argument("--workers", type=int, default=2)
    s3 = sub.add_parser("latency-gen")
    s3.add_argument("--port", type=int, required=True)
    for name, default in (("--subs", SUBS), ("--messages", 200), ("--warmup", 20)):
        s3.add_argument(name, type=int, default=default)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--subs", type=int, default=SUBS)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    ap.add_argument("--server-cpus", help="CPUs for the servers, e.g. 0-1 (default: one CPU)")
    a = ap.parse_args()
    if a.cmd == "serve-hello":
        return serve_hello(a.port, a.workers)
    if a.cmd == "serve-push":
        return serve_push(a.port, a.workers, a.redis)
    if a.cmd == "latency-gen":
        print(json.dumps(latency_generator(a.port, a.subs, a.messages, a.warmup)))
        return 0
    if a.quick:
        a.seconds, a.rounds, a.messages = 2.0, 1, 50
    a.warmup = max(1.0, a.seconds / 2)
    a.warmup_messages = 20
    if a.server_cpus:
        h.SERVER_CPU = a.server_cpus
    h.raise_nofile()
    t_start = time.monotonic()
    tmp = h.make_tempdir()
    hello = {w: hello_run(tmp, w, a) for w in (0, 1, 2)}
    lat: dict[str, Any] | None = None
    try:
        lat = latency_run(tmp, a)
    except h.BenchError as e:
        print(f"push_bench: latency not measured: {e}", file=sys.stderr)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    note = (
        f"mgpy push benchmark, {when}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; servers pinned to CPU {h.SERVER_CPU}, generators to "
        f"CPU {h.GEN_CPU}; {a.seconds:g} s per wrk run, best of {a.rounds}; total "
        f"{time.monotonic() - t_start:.0f} s."
    )
    text = report(hello, lat, note)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "push.md").write_text(text + "\n")
    data = {"note": note, "hello": {str(k): v for k, v in hello.items()}, "latency": lat}
    (RESULTS / "push.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

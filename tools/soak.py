"""Soak test: mixed load plus issue 13's abuse patterns against ``python -m mgpy``.

``make soak`` (or ``python tools/soak.py [--duration 300]``) starts the CLI on a free port
with a generated root and an upload directory, runs a steady mixed load for
``--duration`` seconds -- keep-alive GETs (identity, brotli, ranges, conditionals, HEAD,
404), WebSocket echo, multipart uploads, abrupt disconnects, a crowd of idle WebSockets
-- and, meanwhile, one abuse pattern after another:

1. 40 clients reading a 9.4 MB text file with ``Accept-Encoding: br`` at 10 KiB/s;
2. three rounds of 50 ``/ws/push`` clients that never read, fed until they are closed
   with 1008 (20 s apart);
3. a fragment flood: 10 WebSockets sending a million tiny (1-byte or empty) fragments;
4. slowloris: 100 connections sending a request head one byte a second;
5. descriptor exhaustion: idle keep-alive connections past the server's descriptor limit
   (``--nofile``), while new clients keep asking.

It prints the server's RSS and open descriptors at the start, the peak and the end (after
every client closed), with a line per phase, and exits 1 if the server died, memory did
not come back to within ``--rss-slack`` MiB of the start, or descriptors leaked.  Every
phase and the whole run are bounded in time; the run stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from soak_clients import (
    Reader,
    Sampler,
    announced_port,
    connect,
    fd_count,
    limit_nofile,
    multipart,
    request,
    rss_mib,
    rst_close,
    ws_connect,
    ws_frame,
    ws_frames,
    ws_read_message,
)

#: the whole run may last this much longer than --duration (phases that overrun, settling)
OVERRUN = 180.0
#: idle WebSockets held open for the whole run
IDLE_CROWD = 200
#: the abuse phases, in the order they run
PHASES = {
    "brotli": "brotli slow readers",
    "consumers": "slow consumers",
    "fragments": "fragment flood",
    "slowloris": "slowloris",
    "exhaustion": "descriptor exhaustion",
}


class Stats:
    """Counters shared by the load threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.n: dict[str, int] = {}

    def add(self, key: str, k: int = 1) -> None:
        with self.lock:
            self.n[key] = self.n.get(key, 0) + k

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.n)


def _text(size: int) -> bytes:
    rnd = random.Random(13)
    words = [
        bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(5000)
    ]
    return b" ".join(rnd.choices(words, k=size // 5))[:size]


def make_root(tmp: Path) -> Path:
    root = tmp / "www"
    root.mkdir()
    (root / "index.html").write_bytes(b"<!doctype html><title>soak</title>" + b"<p>hello</p>" * 50)
    (root / "app.js").write_bytes(b"function f(x){return x*2+1;}\n" * 2200)  # ~64 KiB
    (root / "big.txt").write_bytes(_text(9_400_000))
    (root / "blob.bin").write_bytes(os.urandom(1 << 20))
    return root


class Server:
    """``python -m mgpy`` in a subprocess, on a free port."""

    def __init__(self, python: str, root: Path, uploads: Path, nofile: int, cwd: Path) -> None:
        cmd = [python, "-m", "mgpy", "--root", str(root), "--listen", "127.0.0.1:0"]
        cmd += ["--upload-dir", str(uploads), "--log-level", "warning"]
        self.log = open(cwd / "server.log", "w")  # closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=str(cwd),
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            preexec_fn=lambda: limit_nofile(nofile),
        )
        port, line = announced_port(self.proc)
        if port is None:
            self.stop()
            raise SystemExit(f"soak: the server did not start: {line!r}")
        self.port = port
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


# -- the steady mixed load ------------------------------------------------------------------
def http_worker(port: int, stop: threading.Event, stats: Stats, seed: int) -> None:
    rnd = random.Random(seed)
    etags: dict[str, str] = {}
    s: socket.socket | None = None
    rd: Reader | None = None
    while not stop.is_set():
        try:
            if s is None:
                s = connect(port)
                rd = Reader(s)
            assert rd is not None
            kind = rnd.choice(["index", "js", "js-br", "range", "head", "cond", "blob", "404"])
            path = {"js": "/app.js", "js-br": "/app.js", "blob": "/blob.bin", "404": "/nope"}.get(
                kind, "/index.html" if kind != "range" else "/big.txt"
            )
            hs: dict[str, str] = {}
            method = "HEAD" if kind == "head" else "GET"
            if kind == "js-br":
                hs["Accept-Encoding"] = "br"
            elif kind == "range":
                a = rnd.randrange(9_000_000)
                hs["Range"] = f"bytes={a}-{a + rnd.randrange(1, 200_000)}"
            elif kind == "cond" and path in etags:
                hs["If-None-Match"] = etags[path]
            s.sendall(request(method, path, hs))
            r = rd.response(head_only=method == "HEAD")
            ok = {"404": (404,), "range": (206,), "cond": (200, 304)}.get(kind, (200,))
            if r.status == 503 and "retry-after" in r.headers:
                stats.add("http.busy")  # no descriptor left to open the file: come back
            elif r.status not in ok:
                stats.add("http.unexpected")
                stats.add(f"http.unexpected.{kind}.{r.status}")
            if "etag" in r.headers:
                etags[path] = r.headers["etag"]
            stats.add("http.requests")
        except (OSError, ValueError, AssertionError):
            stats.add("http.errors")
            if s is not None:
                s.close()
            s = None
    if s is not None:
        s.close()


def ws_worker(port: int, stop: threading.Event, stats: Stats, seed: int) -> None:
    rnd = random.Random(seed)
    s: socket.socket | None = None
    buf = bytearray()
    while not stop.is_set():
        try:
            if s is None:
                s, buf = ws_connect(port, "/ws")
            msg = os.urandom(rnd.choice([1, 100, 2000, 65536]))
            s.sendall(ws_frame(2, msg))
            op, data = ws_read_message(s, buf)
            if (op, data) != (2, msg):
                stats.add("ws.mismatch")
            stats.add("ws.messages")
        except OSError:
            stats.add("ws.errors")
            if s is not None:
                s.close()
            s = None
    if s is not None:
        s.close()


def upload_worker(port: int, stop: threading.Event, stats: Stats, uploads: Path) -> None:
    n = 0
    while not stop.wait(0.2):
        try:
            with connect(port) as s:
                ctype, body = multipart(f"soak{n % 50}.bin", os.urandom(256 * 1024))
                s.sendall(request("POST", "/upload", {"Content-Type": ctype}, body))
                r = Reader(s).response()
                stats.add("upload.ok" if r.status == 200 else f"upload.refused.{r.status}")
        except OSError:
            stats.add("upload.errors")
        n += 1
        if n % 50 == 0:
            for f in uploads.iterdir():
                f.unlink()


def churn_worker(port: int, stop: threading.Event, stats: Stats) -> None:
    """Connect, send part of a request, reset: abrupt disconnects."""
    while not stop.wait(0.01):
        try:
            s = connect(port)
            s.sendall(b"GET /index.html HTTP/1.1\r\nHo")
            rst_close(s)
            stats.add("churn.resets")
        except OSError:
            stats.add("churn.errors")


# -- abuse phases ---------------------------------------------------------------------------
def phase_brotli_readers(port: int, seconds: float) -> str:
    socks = []
    for _ in range(40):
        s = connect(port, rcvbuf=16384)
        s.sendall(request("GET", "/big.txt", {"Accept-Encoding": "br"}))
        s.setblocking(False)
        socks.append(s)
    got = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # 10 KiB/s each: 1 KiB per 100 ms
        time.sleep(0.1)
        for s in socks:
            try:
                got += len(s.recv(1024))
            except (BlockingIOError, InterruptedError):
                pass
    for s in socks:
        s.close()
    with connect(port) as s:  # and a fast reader still gets the whole file
        s.sendall(request("GET", "/big.txt", {"Accept-Encoding": "br"}))
        r = Reader(s).response()
    return (
        f"40 readers took {got / 1024:.0f} KiB in {seconds:.0f}s; "
        f"a fast one got {r.status}, {len(r.body)} bytes of br"
    )


class PushMonitor:
    """A /ws/push client reading the stats once a second (and relaying for phase 2)."""

    def __init__(self, port: int) -> None:
        self.s, self.buf = ws_connect(port, "/ws/push")
        self.stats: dict[str, Any] = {}
        self.seen = 0
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.s.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            self.buf += data
            for op, payload in ws_frames(self.buf):
                if op == 1 and payload.startswith(b'{"type":"stats"'):
                    self.stats = json.loads(payload)
                    self.seen += 1

    def wait_for(self, cond: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Whether ``cond(stats)`` holds within ``timeout`` seconds (checked at least once)."""
        end = time.monotonic() + timeout
        while True:
            if self.stats and cond(self.stats):
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)

    def close(self) -> None:
        self.s.close()


def phase_slow_consumers(port: int, mon: PushMonitor) -> str:
    base = mon.stats.get("ws_clients", 1)
    out = []
    message = ws_frame(1, b"x" * 64 * 1024)
    for rnd in range(3):
        t0 = time.monotonic()
        victims = [ws_connect(port, "/ws/push", rcvbuf=4096)[0] for _ in range(50)]
        mon.wait_for(lambda st: st.get("ws_clients", 0) >= base + 50, 5)
        end = time.monotonic() + 60
        while time.monotonic() < end and not mon.wait_for(
            lambda st: st.get("ws_clients", 0) <= base, 0
        ):
            mon.s.sendall(message)
            time.sleep(0.01)
        took = time.monotonic() - t0
        for v in victims:
            v.close()
        out.append(f"round {rnd + 1} dropped in {took:.0f}s")
        if rnd < 2:
            time.sleep(max(0.0, 20 - took))  # 20 s apart
    return ", ".join(out)


def phase_fragment_flood(port: int) -> str:
    codes = []
    conns = []
    for i in range(10):
        s, buf = ws_connect(port, "/ws")
        s.sendall(ws_frame(1, b"<", fin=False))
        conns.append((s, buf, ws_frame(0, b"x" if i % 2 else b"", fin=False) * 10_000))
    for _ in range(100):  # up to a million fragments each
        for s, _, data in conns:
            try:
                s.sendall(data)
            except OSError:
                pass
        if all(_closed(s) for s, _, _ in conns):
            break
    for s, buf, _ in conns:
        s.settimeout(10)
        try:
            op, payload = ws_read_message(s, buf)
            codes.append(int.from_bytes(payload[:2], "big") if op == 8 else op)
        except OSError:
            codes.append(0)
        s.close()
    return f"close codes {sorted(set(codes))}"


def _closed(s: socket.socket) -> bool:
    try:
        return bool(s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def phase_slowloris(port: int, seconds: float) -> str:
    socks = [connect(port) for _ in range(100)]
    for s in socks:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
    end = time.monotonic() + seconds
    closed = 0
    while time.monotonic() < end and closed < len(socks):
        time.sleep(1.0)
        closed = 0
        for s in socks:
            try:
                s.send(b"X")  # one byte a second
            except OSError:
                closed += 1
                continue
            if _closed(s):
                closed += 1
    for s in socks:
        s.close()
    return f"{closed}/100 cut by the server within {seconds:.0f}s (header_timeout)"


def phase_exhaustion(port: int, nofile: int) -> str:
    idle: list[socket.socket] = []
    served = stalled = 0
    for _ in range(nofile + 100):
        try:
            s = connect(port, timeout=3)
            s.sendall(request("GET", "/index.html"))
            Reader(s).response()
            served += 1
            idle.append(s)
        except OSError:
            stalled += 1
            if stalled >= 3:
                break
    closed = 0
    for s in idle:
        if _closed(s):
            closed += 1  # reclaimed (or timed out, keepalive_timeout) by the server
        s.close()
    return (
        f"{served} keep-alive clients served, {closed} of them closed by the server since, "
        f"{stalled} left waiting (limit {nofile} descriptors)"
    )


def run_load(port: int, uploads: Path) -> int:
    """``--load``: the mixed load in its own process (its own GIL) until SIGTERM; then
    print the counters as JSON."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stats = Stats()
    threads = [threading.Thread(target=http_worker, args=(port, stop, stats, i)) for i in range(3)]
    threads.append(threading.Thread(target=ws_worker, args=(port, stop, stats, 7)))
    threads.append(threading.Thread(target=upload_worker, args=(port, stop, stats, uploads)))
    threads.append(threading.Thread(target=churn_worker, args=(port, stop, stats)))
    for t in threads:
        t.daemon = True
        t.start()
    while not stop.wait(1.0):
        pass
    for t in threads:
        t.join(15)
    print(json.dumps(stats.snapshot()), flush=True)
    return 0


# -- the run ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=300.0, help="seconds of mixed load (300)")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs the server")
    p.add_argument("--nofile", type=int, default=1024, help="the server's descriptor limit")
    p.add_argument("--rss-slack", type=float, default=32.0, help="MiB the end may exceed start")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--load", nargs=2, metavar=("PORT", "UPLOADS"), help=argparse.SUPPRESS)
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"abuse phases to run, comma-separated (default: {','.join(PHASES)}; '' for none)",
    )
    a = p.parse_args(argv)
    if a.load:
        return run_load(int(a.load[0]), Path(a.load[1]))
    chosen = [n.strip() for n in a.phases.split(",") if n.strip()]
    if set(chosen) - PHASES.keys():
        p.error(f"unknown phase(s): {', '.join(sorted(set(chosen) - PHASES.keys()))}")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the clients need many
    tmp = Path(tempfile.mkdtemp(prefix="mgpy-soak-"))
    uploads = tmp / "uploads"
    uploads.mkdir()
    root = make_root(tmp)
    srv = Server(a.python, root, uploads, a.nofile, tmp)
    t_start = time.monotonic()
    hard_end = t_start + a.duration + OVERRUN
    alarm = threading.Timer(a.duration + OVERRUN + 30, lambda: os._exit(3))  # never hang
    alarm.daemon = True
    alarm.start()
    load: subprocess.Popen[str] | None = None
    ok = True
    try:
        mon = PushMonitor(srv.port)
        mon.wait_for(lambda st: True, 5)
        sampler = Sampler(srv.pid)
        start_rss, start_fds = sampler.start
        print(f"soak: mgpy pid {srv.pid} on port {srv.port}, {a.duration:.0f}s of mixed load")
        print(f"start: RSS {start_rss:7.1f} MiB  descriptors {start_fds}")
        crowd = [ws_connect(srv.port, "/ws")[0] for _ in range(IDLE_CROWD)]
        load = subprocess.Popen(
            [sys.executable, __file__, "--load", str(srv.port), str(uploads)],
            stdout=subprocess.PIPE,
            text=True,
        )
        phases: dict[str, Callable[[], str]] = {
            "brotli": lambda: phase_brotli_readers(srv.port, 30),
            "consumers": lambda: phase_slow_consumers(srv.port, mon),
            "fragments": lambda: phase_fragment_flood(srv.port),
            "slowloris": lambda: phase_slowloris(srv.port, 30),
            "exhaustion": lambda: phase_exhaustion(srv.port, a.nofile),
        }
        for name in chosen:
            fn = phases[name]
            if time.monotonic() > hard_end or not srv.alive():
                break
            t0 = time.monotonic()
            try:
                what = fn()
            except OSError as e:
                what = f"client error: {e}"
            rss, fds = sampler.sample()
            print(
                f"  {PHASES[name]:22s} {time.monotonic() - t0:5.0f}s  RSS {rss:7.1f} MiB (peak "
                f"{sampler.peak_rss:.1f})  fds {fds:5d}  {what}",
                flush=True,
            )
        while time.monotonic() - t_start < a.duration and srv.alive():
            time.sleep(min(5.0, a.duration - (time.monotonic() - t_start)))
        load.send_signal(signal.SIGTERM)
        out, _ = load.communicate(timeout=30)
        n: dict[str, int] = json.loads(out or "{}")
        for s in crowd:
            s.close()
        mon.close()
        # settle: every client is gone; the server closes its side, frees and trims
        end = time.monotonic() + 20
        while time.monotonic() < end and fd_count(srv.pid) > start_fds + 2:
            time.sleep(0.2)
        time.sleep(1.5)  # one trim interval (memtrim) after the last big close
        sampler.stop()
        end_rss, end_fds = rss_mib(srv.pid), fd_count(srv.pid)
        alive = srv.alive()
        print(f"peak:  RSS {sampler.peak_rss:7.1f} MiB  descriptors {sampler.peak_fds}")
        print(f"end:   RSS {end_rss:7.1f} MiB  descriptors {end_fds}")
        print("load:  " + ", ".join(f"{k} {v}" for k, v in sorted(n.items())))
        problems = []
        if not alive:
            problems.append("the server died")
        if end_rss > start_rss + a.rss_slack:
            problems.append(f"RSS did not come back ({end_rss - start_rss:+.1f} MiB)")
        if end_fds > start_fds + 2:
            problems.append(f"descriptors leaked ({end_fds - start_fds:+d})")
        if n.get("ws.mismatch") or n.get("http.unexpected", 0) > n.get("http.requests", 1) // 100:
            problems.append("wrong answers under load")
        ok = not problems
        print("soak: " + ("OK" if ok else "FAILED: " + "; ".join(problems)))
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        srv.stop()
        alarm.cancel()
        if a.keep:
            print(f"soak: files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

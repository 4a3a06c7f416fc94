"""Worker processes (mgpy.workers.run_workers): N processes on one port, restarts, signals.

The supervisor runs in a subprocess (``SCRIPT``: forking the test runner itself would
copy its threads); each worker answers HTTP with its slot and pid, and a WebSocket at
/ws.  Requests are real connections on 127.0.0.1 (a new one each time, so the kernel's
SO_REUSEPORT hashing spreads them).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until

SCRIPT = r"""
import json, os, sys
import mgpy
from mgpy.workers import run_workers

listen, n, delay, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

def serve(w):
    if mode == "unusable" and w.index == 1:
        return 2
    mgr = mgpy.Manager()

    def h(c, ev, d):
        if ev == mgpy.Ev.HTTP_REQUEST:
            body = {"worker": w.index, "pid": os.getpid(), "start": w.start, "count": w.count}
            mgpy.http_reply(c, 200, json.dumps(body))

    lc = mgr.bind(w.listen, h, reuse_port=True)
    lc.set_protocol_http_websocket()
    print(f"worker {w.index} pid {os.getpid()} ready on {lc.local[1]}", flush=True)
    w.run(mgr)
    print(f"worker {w.index} pid {os.getpid()} stopped", flush=True)

try:
    status = run_workers(n, serve, listen=listen, min_restart_delay=delay, grace=5)
except mgpy.Error as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
print(f"supervisor exit {status}", flush=True)
sys.exit(status)
"""


class Proc:
    """The supervisor subprocess; its output lines are collected by a thread."""

    def __init__(self, tmp: Path, listen: str, n: int = 2, delay: float = 0.3, mode: str = ""):
        script = tmp / "workers_app.py"
        script.write_text(SCRIPT)
        # no PYTHONUNBUFFERED: print(..., flush=True) is then one write per line, so the
        # lines of several workers on one pipe never interleave
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        self.p = subprocess.Popen(
            [sys.executable, str(script), listen, str(n), str(delay), mode or "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.q: queue.Queue[str] = queue.Queue()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if needle in line:
                    self.lines.remove(line)
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; output: {self.lines}")
            try:
                self.lines.append(self.q.get(timeout=left))
            except queue.Empty:
                pass

    def ready(self, n: int = 2) -> list[str]:
        """Wait until ``n`` workers listen; return their ready lines."""
        return [self.wait_for(" ready on ") for _ in range(n)]

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for p in started:
            p.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        r = conn.getresponse()
        assert r.status == 200
        data: dict[str, Any] = json.loads(r.read())
        return data
    finally:
        conn.close()


def both_serve(port: int, n: int = 2, timeout: float = 15.0) -> dict[int, int]:
    """Request until every slot answered; return {slot: pid}."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < n:
        assert time.monotonic() < deadline, f"only workers {seen} answered"
        r = get(port)
        seen[r["worker"]] = r["pid"]
    return seen


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_two_workers_share_one_port(tmp_path: Path, procs: list[Proc]) -> None:
    port = free_port()
    sup = Proc(tmp_path, f"127.0.0.1:{port}")
    procs.append(sup)
    ready = sup.ready()
    assert all(line.endswith(f"ready on {port}") for line in ready)
    pids = both_serve(port)
    assert len(set(pids.values())) == 2 and sup.p.pid not in pids.values()


def test_port_zero_is_resolved_once_for_every_worker(tmp_path: Path, procs: list[Proc]) -> None:
    sup = Proc(tmp_path, "127.0.0.1:0", n=3)
    procs.append(sup)
    ports = {line.rsplit(" ", 1)[1] for line in sup.ready(3)}
    assert len(ports) == 1
    assert len(both_serve(int(ports.pop()), n=3)) == 3


def test_a_killed_worker_is_restarted_and_the_others_serve_meanwhile(
    tmp_path: Path, procs: list[Proc]
) -> None:
    port = free_port()
    sup = Proc(tmp_path, f"127.0.0.1:{port}", delay=1.0)  # a 1 s gap before the restart
    procs.append(sup)
    sup.ready()
    pids = both_serve(port)
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    # reaped by the supervisor: its socket is closed
    wait_until(lambda: gone(victim), 10, "the killed worker reaped")
    served_meanwhile = []
    restarted: dict[str, Any] | None = None
    while restarted is None:
        assert time.monotonic() < deadline, "worker 0 was not restarted"
        r = get(port)  # every request succeeds: no failure while a worker is down
        if r["worker"] == 0:
            restarted = r
        else:
            served_meanwhile.append(r)
    assert served_meanwhile and all(r["pid"] == pids[1] for r in served_meanwhile)
    assert restarted["pid"] != victim and restarted["start"] == 2
    sup.wait_for("killed by SIGKILL; restarting in 1.0 s")


def test_sigterm_closes_workers_gracefully(tmp_path: Path, procs: list[Proc]) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    port = free_port()
    sup = Proc(tmp_path, f"127.0.0.1:{port}")
    procs.append(sup)
    sup.ready()
    both_serve(port)
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
        sup.p.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv(timeout=10)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1001  # going away
    assert sup.p.wait(15) == 0
    stopped = sorted(sup.wait_for(" stopped").split()[1] for _ in range(2))
    assert stopped == ["0", "1"]  # both left their loop and closed their Manager
    sup.wait_for("supervisor exit 0")
    with pytest.raises(OSError):
        get(port)  # nobody listens any more


def test_busy_port_is_a_one_line_error(tmp_path: Path, procs: list[Proc]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        sup = Proc(tmp_path, f"127.0.0.1:{s.getsockname()[1]}")
        procs.append(sup)
        assert sup.p.wait(15) == 2
        assert "address already in use" in sup.wait_for("error: cannot bind")


def test_a_worker_that_cannot_run_stops_everything_with_status_2(
    tmp_path: Path, procs: list[Proc]
) -> None:
    sup = Proc(tmp_path, "127.0.0.1:0", mode="unusable")
    procs.append(sup)
    assert sup.p.wait(15) == 2
    sup.wait_for("supervisor exit 2")


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path, procs: list[Proc]) -> None:
    port = free_port()
    sup = Proc(tmp_path, f"127.0.0.1:{port}")
    procs.append(sup)
    sup.ready()
    pids = both_serve(port)
    sup.p.kill()
    wait_until(
        lambda: all(gone(pid) or _zombie(pid) for pid in pids.values()),
        10,
        "the workers ending with their killed supervisor (they kept running)",
    )


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True

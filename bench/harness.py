"""Process plumbing for bench/run.py: servers, load generators, CPU and memory accounting.

Strategy: every server is a child process started through `taskset -c SERVER_CPU` in its
own session (so nginx's worker is stopped with its master), logging to a file; it counts as
up once its port accepts a TCP connection, and every wait is bounded.  Every load generator
(wrk, bench/loadgen/build/wsload) runs through `taskset -c GEN_CPU`.  Around each
measurement we sample three CPU clocks: the server's process tree (/proc/PID/stat), the
generator (RUSAGE_CHILDREN, which grows when the generator is reaped) and the whole machine
(/proc/stat).  Whatever the machine spent beyond those two is "other" load: when it is
high the numbers are noisy and the report says so.  Nothing here listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WSLOAD = BENCH / "loadgen" / "build" / "wsload"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class BenchError(Exception):
    """A server or generator failed; the message says which and why."""


def pick_cpus() -> tuple[str | None, str | None]:
    """Return (server CPU, generator CPU), or (None, None) on a one-CPU machine."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(cpus[0]), str(cpus[1])


SERVER_CPU, GEN_CPU = pick_cpus()


def pinned(cpu: str | None, argv: list[str]) -> list[str]:
    """Prefix argv with taskset when pinning is possible."""
    return ["taskset", "-c", cpu, *argv] if cpu is not None else argv


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE to the hard limit (children inherit it); return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle since boot (all CPUs)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def children_cpu_seconds() -> float:
    """User + system CPU of reaped children (the generators)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _descendants(pid: int) -> list[int]:
    pids = [pid]
    i = 0
    while i < len(pids):
        for task in _listdir(f"/proc/{pids[i]}/task"):
            with contextlib.suppress(OSError):
                kids = Path(f"/proc/{pids[i]}/task/{task}/children").read_text().split()
                pids.extend(int(k) for k in kids)
        i += 1
    return pids


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process and its live descendants."""
    total = 0.0
    for p in _descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{p}/stat").read_text()
            rest = stat[stat.rindex(")") + 2 :].split()
            total += (int(rest[11]) + int(rest[12])) / CLK_TCK
    return total


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    """Number of open file descriptors of a process."""
    return len(_listdir(f"/proc/{pid}/fd"))


def wait_quiet(max_wait: float, window: float = 0.5, limit_pct: float = 10.0) -> float:
    """Wait (at most max_wait s) for a window in which the machine was busy < limit_pct.

    Our own servers are idle between runs, so this measures other processes.  Returns the
    busy percentage of the last window.
    """
    deadline = time.monotonic() + max_wait
    while True:
        b0 = machine_busy_seconds()
        time.sleep(window)
        pct = (machine_busy_seconds() - b0) * 100.0 / window
        if pct < limit_pct or time.monotonic() >= deadline:
            return pct


@dataclass
class Load:
    """CPU use over one measurement, as percent of one CPU."""

    wall: float
    server_pct: float
    gen_pct: float
    other_pct: float

    def verdict(self) -> str:
        """Say which side limited the run."""
        if self.gen_pct >= 90 and self.gen_pct >= self.server_pct - 5:
            return "generator-bound (number is a lower bound)"
        if self.server_pct >= 85:
            return "server-bound"
        return "neither side saturated (latency-bound)"

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "wall_s": round(self.wall, 3),
            "server_cpu_pct": round(self.server_pct, 1),
            "gen_cpu_pct": round(self.gen_pct, 1),
            "other_cpu_pct": round(self.other_pct, 1),
            "verdict": self.verdict(),
        }


class CpuMeter:
    """Measure server, generator and other CPU between start() and stop()."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.t0 = self.s0 = self.g0 = self.m0 = 0.0

    def start(self) -> None:
        """Take the first sample."""
        self.t0 = time.monotonic()
        self.s0 = tree_cpu_seconds(self.pid)
        self.g0 = children_cpu_seconds()
        self.m0 = machine_busy_seconds()

    def stop(self, gen_cpu_override: float | None = None) -> Load:
        """Take the second sample; the generator must have been reaped already."""
        wall = time.monotonic() - self.t0
        server = tree_cpu_seconds(self.pid) - self.s0
        gen = children_cpu_seconds() - self.g0 if gen_cpu_override is None else gen_cpu_override
        other = max(0.0, machine_busy_seconds() - self.m0 - server - gen)
        pct = 100.0 / wall if wall > 0 else 0.0
        return Load(wall, server * pct, gen * pct, other * pct)


@dataclass
class Server:
    """A benchmark server child process, pinned to SERVER_CPU."""

    name: str
    argv: list[str]
    port: int
    logdir: Path
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.logdir / f"{self.name}-{self.port}.log"

    @property
    def pid(self) -> int:
        """The server's pid."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start the server and wait (bounded) until its port accepts connections."""
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(
                pinned(SERVER_CPU, self.argv),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError(f"{self.name} did not listen on port {self.port}: {self.tail()}")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 6) -> str:
        """The last lines of the server's log, on one line."""
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:]) or "(empty log)"

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL it if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stray workers of this group

    def wait_fds_below(self, limit: int, timeout: float = 15.0) -> None:
        """Wait (bounded) until the server has closed connections down to `limit` fds."""
        deadline = time.monotonic() + timeout
        while open_fds(self.pid) > limit and time.monotonic() < deadline:
            time.sleep(0.05)


def run_generator(argv: list[str], timeout: float) -> str:
    """Run a generator pinned to GEN_CPU; return its stdout or raise BenchError."""
    try:
        res = subprocess.run(
            pinned(GEN_CPU, argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{Path(argv[0]).name} timed out after {timeout:.0f}s") from e
    if res.returncode != 0:
        msg = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise BenchError(f"{Path(argv[0]).name} exited with {res.returncode}: {msg[0]}")
    return res.stdout


def last_json(out: str) -> dict[str, Any]:
    """The last JSON object printed by wsload."""
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            data: dict[str, Any] = json.loads(line)
            return data
    raise BenchError(f"wsload printed no result: {out[-200:]!r}")


def wsload(args: list[str], timeout: float) -> dict[str, Any]:
    """Run wsload with args and return its JSON result; errors in the result raise."""
    res = last_json(run_generator([str(WSLOAD), *args], timeout))
    if res.get("errors"):
        raise BenchError(
            f"wsload {args[0]}: {res['errors']} connection errors ({res.get('first_error', '?')})"
        )
    return res


_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def wrk(url: str, conns: int, seconds: float, timeout: float | None = None) -> dict[str, Any]:
    """Run `wrk -t1 -cN -dS url`; return requests/s, bytes/s and error counts."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", url]
    out = run_generator(argv, timeout or seconds + 30)
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m:
        raise BenchError(f"wrk printed no Requests/sec: {out[-300:]!r}")
    res: dict[str, Any] = {"requests_per_s": float(m.group(1))}
    m = re.search(r"Transfer/sec:\s*([\d.]+)([KMG]?B)", out)
    if m:
        res["bytes_per_s"] = float(m.group(1)) * _BYTES[m.group(2)]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    res["errors"] = errors
    if res["requests_per_s"] == 0:
        raise BenchError(f"wrk completed no request: {out.strip()[-300:]!r}")
    if errors:
        raise BenchError(f"wrk saw {errors} errors/non-2xx responses: {out.strip()[-300:]!r}")
    return res


class HeldGenerator:
    """A wsload run that prints a ready line and then waits on stdin (push --wait, hold)."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            pinned(GEN_CPU, [str(WSLOAD), *args]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def read_json(self, timeout: float) -> dict[str, Any]:
        """Read the next JSON line from stdout within timeout."""
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                raise BenchError(f"wsload gave no answer within {timeout:.0f}s")
        finally:
            sel.close()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(5)
            err = self.proc.stderr.read().strip() if self.proc.stderr else ""
            raise BenchError(f"wsload exited with {self.proc.returncode}: {err[-200:]}")
        data: dict[str, Any] = json.loads(line)
        return data

    def say(self, line: str) -> None:
        """Write one line to wsload's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> None:
        """Wait for exit (reaping it so its CPU shows in RUSAGE_CHILDREN); kill on timeout."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        """Tell wsload to quit and wait for it."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.say("quit")
        self.finish()


class IdlePoll:
    """Hold a PM QoS request of 0 us CPU wake-up latency (/dev/cpu_dma_latency) while open.

    Idle CPUs then poll instead of halting, so waking the server or the generator costs no
    inter-processor interrupt: in a VM each one is a VM exit that can cost tens of
    microseconds and makes the push timing swing by 2-3x from run to run.  The request ends
    when the file is closed (also when this process dies).  Needs root; without it, nothing
    changes and `active` is False.
    """

    def __init__(self) -> None:
        self.fd = -1

    @property
    def active(self) -> bool:
        """True while the request is held."""
        return self.fd >= 0

    def __enter__(self) -> IdlePoll:
        try:
            self.fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY | os.O_CLOEXEC)
            os.write(self.fd, struct.pack("i", 0))
        except OSError:
            if self.fd >= 0:
                os.close(self.fd)
            self.fd = -1
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def make_tempdir() -> Path:
    """A private scratch directory for logs, nginx's prefix and the static files."""
    return Path(tempfile.mkdtemp(prefix="mgpy-bench-"))
